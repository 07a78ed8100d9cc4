"""Deprecated: moved to `supcon_tf.training.schedules`; importing this module warns."""

from supcon_tf._moved import reexport

__all__ = reexport(
    globals(),
    __name__,
    "supcon_tf.training.schedules",
    (
        "REFERENCE_BATCH_SIZE SCHEDULES WarmupCosineDecay build_schedule plot_schedule "
        "scale_learning_rate"
    ),
)
