"""Deprecated: `supcon_tf.layers` moved to `supcon_tf.models.layers`.

Import from there (or from `supcon_tf.models`); importing this module warns; its old public names stay importable from here.
"""

from supcon_tf._moved import reexport

__all__ = reexport(
    globals(),
    "supcon_tf.layers",
    "supcon_tf.models.layers",
    ("L2Normalize ProjectionHead"),
)
