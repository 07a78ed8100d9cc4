"""Deprecated: moved to `supcon_tf.models.momentum_encoder`; importing this module warns."""

from supcon_tf._moved import reexport

__all__ = reexport(
    globals(),
    __name__,
    "supcon_tf.models.momentum_encoder",
    ("MomentumEncoder check_momentum track_loss train_step"),
)
