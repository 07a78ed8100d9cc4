"""Deprecated: moved to `supcon_tf.training.checkpoints`; importing this module warns."""

from supcon_tf._moved import reexport

__all__ = reexport(
    globals(),
    __name__,
    "supcon_tf.training.checkpoints",
    (
        "CheckpointError FORMAT_VERSION NonFiniteTrainingError StopRequested TrainingCheckpoint "
        "latest_position training_position write_atomically"
    ),
)
