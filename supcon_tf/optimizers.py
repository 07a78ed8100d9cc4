"""Deprecated: moved to `supcon_tf.training.optimizers`; importing this module warns."""

from supcon_tf._moved import reexport

__all__ = reexport(
    globals(),
    __name__,
    "supcon_tf.training.optimizers",
    ("LARS OPTIMIZERS build_optimizer"),
)
