"""Deprecated: `supcon_tf.checkpoints` moved to `supcon_tf.training.checkpoints`.

This module only re-exports the names it used to define, from their new home, and emits
a `DeprecationWarning` when imported.
Import from `supcon_tf.training.checkpoints` (or `supcon_tf.training`) instead.
"""

import warnings

from supcon_tf.training.checkpoints import (
    FORMAT_VERSION,
    CheckpointError,
    NonFiniteTrainingError,
    StopRequested,
    TrainingCheckpoint,
    latest_position,
    training_position,
    write_atomically,
)

warnings.warn(
    "`supcon_tf.checkpoints` is deprecated; import from `supcon_tf.training.checkpoints` instead.",
    DeprecationWarning,
    stacklevel=2,
)

__all__ = [
    "CheckpointError",
    "FORMAT_VERSION",
    "NonFiniteTrainingError",
    "StopRequested",
    "TrainingCheckpoint",
    "latest_position",
    "training_position",
    "write_atomically",
]
