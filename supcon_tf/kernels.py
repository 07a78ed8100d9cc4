"""Deprecated: moved to `supcon_tf.losses.kernels`; importing this module warns."""

from supcon_tf._moved import reexport

__all__ = reexport(
    globals(),
    __name__,
    "supcon_tf.losses.kernels",
    (
        "DEFAULT_BLOCK_ELEMENTS DENOMINATOR_MODES IMPLEMENTATIONS "
        "MIN_BLOCK_ROWS Positives Variant anchor_losses check_implementation check_variant "
        "choose_implementation default_block_size"
    ),
)
