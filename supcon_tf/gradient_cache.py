"""Deprecated: `supcon_tf.gradient_cache` moved to `supcon_tf.models.gradient_cache`.

Import from there (or from `supcon_tf.models`); importing this module warns; its old public names stay importable from here.
"""

from supcon_tf._moved import reexport

__all__ = reexport(
    globals(),
    "supcon_tf.gradient_cache",
    "supcon_tf.models.gradient_cache",
    ("check_chunk_size track_loss train_step"),
)
