"""Deprecated: `supcon_tf.momentum_encoder` moved to `supcon_tf.models.momentum_encoder`.

This module only re-exports the names it used to define, from their new home, and emits
a `DeprecationWarning` when imported.
Import from `supcon_tf.models.momentum_encoder` (or `supcon_tf.models`) instead.
"""

import warnings

from supcon_tf.models.momentum_encoder import (
    MomentumEncoder,
    check_momentum,
    track_loss,
    train_step,
)

warnings.warn(
    "`supcon_tf.momentum_encoder` is deprecated; import from `supcon_tf.models.momentum_encoder` instead.",
    DeprecationWarning,
    stacklevel=2,
)

__all__ = [
    "MomentumEncoder",
    "check_momentum",
    "track_loss",
    "train_step",
]
