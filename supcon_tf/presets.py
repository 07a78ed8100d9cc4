"""Deprecated: moved to `supcon_tf.experiment.presets`; importing this module warns."""

from supcon_tf._moved import reexport

__all__ = reexport(
    globals(),
    __name__,
    "supcon_tf.experiment.presets",
    (
        "PRESETS SOURCE_GOOGLE SOURCE_KERAS_EXAMPLE SOURCE_KERAS_EXAMPLE_2020 "
        "SOURCE_PAPER SOURCE_SUPCONTRAST SOURCE_SUPCONTRAST_LINEAR apply_preset "
        "get_preset"
    ),
)
