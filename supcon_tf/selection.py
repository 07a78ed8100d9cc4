"""Deprecated: `supcon_tf.selection` moved to `supcon_tf.training.selection`.

Import from there (or from `supcon_tf.training`); importing this module warns; its old public names stay importable from here.
"""

from supcon_tf._moved import reexport

__all__ = reexport(
    globals(),
    "supcon_tf.selection",
    "supcon_tf.training.selection",
    ("BestEpoch MONITORS is_file join read_text write_atomically"),
)
