"""Deprecated: moved to `supcon_tf.models.gradient_cache`; importing this module warns."""

from supcon_tf._moved import reexport

__all__ = reexport(
    globals(),
    __name__,
    "supcon_tf.models.gradient_cache",
    ("check_chunk_size track_loss train_step"),
)
