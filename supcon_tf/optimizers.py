"""Deprecated: `supcon_tf.optimizers` moved to `supcon_tf.training.optimizers`.

This module only re-exports the names it used to define, from their new home, and emits
a `DeprecationWarning` when imported.
Import from `supcon_tf.training.optimizers` (or `supcon_tf.training`) instead.
"""

import warnings

from supcon_tf.training.optimizers import (
    LARS,
    OPTIMIZERS,
    build_optimizer,
)

warnings.warn(
    "`supcon_tf.optimizers` is deprecated; import from `supcon_tf.training.optimizers` instead.",
    DeprecationWarning,
    stacklevel=2,
)

__all__ = [
    "LARS",
    "OPTIMIZERS",
    "build_optimizer",
]
