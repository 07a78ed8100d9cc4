"""Deprecated: `supcon_tf.memory_bank` moved to `supcon_tf.models.memory_bank`.

Import from there (or from `supcon_tf.models`); importing this module warns; its old public names stay importable from here.
"""

from supcon_tf._moved import reexport

__all__ = reexport(
    globals(),
    "supcon_tf.memory_bank",
    "supcon_tf.models.memory_bank",
    ("MemoryBank"),
)
