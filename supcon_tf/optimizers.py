"""Deprecated: `supcon_tf.optimizers` moved to `supcon_tf.training.optimizers`.

Import from there (or from `supcon_tf.training`); importing this module warns; its old public names stay importable from here.
"""

from supcon_tf._moved import reexport

__all__ = reexport(
    globals(),
    "supcon_tf.optimizers",
    "supcon_tf.training.optimizers",
    ("LARS OPTIMIZERS build_optimizer"),
)
