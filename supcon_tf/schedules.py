"""Deprecated: `supcon_tf.schedules` moved to `supcon_tf.training.schedules`.

This module only re-exports the names it used to define, from their new home, and emits
a `DeprecationWarning` when imported.
Import from `supcon_tf.training.schedules` (or `supcon_tf.training`) instead.
"""

import warnings

from supcon_tf.training.schedules import (
    REFERENCE_BATCH_SIZE,
    SCHEDULES,
    WarmupCosineDecay,
    build_schedule,
    plot_schedule,
    scale_learning_rate,
)

warnings.warn(
    "`supcon_tf.schedules` is deprecated; import from `supcon_tf.training.schedules` instead.",
    DeprecationWarning,
    stacklevel=2,
)

__all__ = [
    "REFERENCE_BATCH_SIZE",
    "SCHEDULES",
    "WarmupCosineDecay",
    "build_schedule",
    "plot_schedule",
    "scale_learning_rate",
]
