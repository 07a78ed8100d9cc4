"""Deprecated: `supcon_tf.momentum_encoder` moved to `supcon_tf.models.momentum_encoder`.

Import from there (or from `supcon_tf.models`); importing this module warns; its old public names stay importable from here.
"""

from supcon_tf._moved import reexport

__all__ = reexport(
    globals(),
    "supcon_tf.momentum_encoder",
    "supcon_tf.models.momentum_encoder",
    ("MomentumEncoder check_momentum track_loss train_step"),
)
