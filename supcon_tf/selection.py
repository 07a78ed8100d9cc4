"""Deprecated: moved to `supcon_tf.training.selection`; importing this module warns."""

from supcon_tf._moved import reexport

__all__ = reexport(
    globals(),
    __name__,
    "supcon_tf.training.selection",
    ("BestEpoch MONITORS is_file join read_text write_atomically"),
)
