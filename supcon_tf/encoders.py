"""Deprecated: moved to `supcon_tf.models.encoders`; importing this module warns."""

from supcon_tf._moved import reexport

__all__ = reexport(
    globals(),
    __name__,
    "supcon_tf.models.encoders",
    ("ENCODERS STEMS build_encoder"),
)
