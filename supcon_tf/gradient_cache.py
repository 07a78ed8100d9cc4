"""Deprecated: `supcon_tf.gradient_cache` moved to `supcon_tf.models.gradient_cache`.

This module only re-exports the names it used to define, from their new home, and emits
a `DeprecationWarning` when imported.
Import from `supcon_tf.models.gradient_cache` (or `supcon_tf.models`) instead.
"""

import warnings

from supcon_tf.models.gradient_cache import (
    check_chunk_size,
    track_loss,
    train_step,
)

warnings.warn(
    "`supcon_tf.gradient_cache` is deprecated; import from `supcon_tf.models.gradient_cache` instead.",
    DeprecationWarning,
    stacklevel=2,
)

__all__ = [
    "check_chunk_size",
    "track_loss",
    "train_step",
]
