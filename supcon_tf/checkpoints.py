"""Deprecated: `supcon_tf.checkpoints` moved to `supcon_tf.training.checkpoints`.

Import from there (or from `supcon_tf.training`); importing this module warns; its old public names stay importable from here.
"""

from supcon_tf._moved import reexport

__all__ = reexport(
    globals(),
    "supcon_tf.checkpoints",
    "supcon_tf.training.checkpoints",
    (
        "CheckpointError FORMAT_VERSION NonFiniteTrainingError StopRequested TrainingCheckpoint "
        "latest_position training_position write_atomically"
    ),
)
