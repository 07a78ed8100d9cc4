"""Deprecated: `supcon_tf.kernels` moved to `supcon_tf.losses.kernels`.

Import from there (or from `supcon_tf.losses`); importing this module warns; its old public names stay importable from here.
"""

from supcon_tf._moved import reexport

__all__ = reexport(
    globals(),
    "supcon_tf.kernels",
    "supcon_tf.losses.kernels",
    (
        "AUTO_DENSE_MAX_ELEMENTS DEFAULT_BLOCK_ELEMENTS DENOMINATOR_MODES IMPLEMENTATIONS "
        "MIN_BLOCK_ROWS Positives Variant anchor_losses check_implementation check_variant "
        "choose_implementation default_block_size"
    ),
)
