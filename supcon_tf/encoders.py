"""Deprecated: `supcon_tf.encoders` moved to `supcon_tf.models.encoders`.

Import from there (or from `supcon_tf.models`); importing this module warns; its old public names stay importable from here.
"""

from supcon_tf._moved import reexport

__all__ = reexport(
    globals(),
    "supcon_tf.encoders",
    "supcon_tf.models.encoders",
    ("ENCODERS STEMS build_encoder"),
)
