"""Deprecated: `supcon_tf.schedules` moved to `supcon_tf.training.schedules`.

Import from there (or from `supcon_tf.training`); importing this module warns; its old public names stay importable from here.
"""

from supcon_tf._moved import reexport

__all__ = reexport(
    globals(),
    "supcon_tf.schedules",
    "supcon_tf.training.schedules",
    (
        "REFERENCE_BATCH_SIZE SCHEDULES WarmupCosineDecay build_schedule plot_schedule "
        "scale_learning_rate"
    ),
)
