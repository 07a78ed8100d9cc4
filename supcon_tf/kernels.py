"""Deprecated: `supcon_tf.kernels` moved to `supcon_tf.losses.kernels`.

This module only re-exports the names it used to define, from their new home, and emits
a `DeprecationWarning` when imported.
Import from `supcon_tf.losses.kernels` (or `supcon_tf.losses`) instead.
"""

import warnings

from supcon_tf.losses.kernels import (
    AUTO_DENSE_MAX_ELEMENTS,
    DEFAULT_BLOCK_ELEMENTS,
    DENOMINATOR_MODES,
    IMPLEMENTATIONS,
    MIN_BLOCK_ROWS,
    Positives,
    Variant,
    anchor_losses,
    check_implementation,
    check_variant,
    choose_implementation,
    default_block_size,
)

warnings.warn(
    "`supcon_tf.kernels` is deprecated; import from `supcon_tf.losses.kernels` instead.",
    DeprecationWarning,
    stacklevel=2,
)

__all__ = [
    "AUTO_DENSE_MAX_ELEMENTS",
    "DEFAULT_BLOCK_ELEMENTS",
    "DENOMINATOR_MODES",
    "IMPLEMENTATIONS",
    "MIN_BLOCK_ROWS",
    "Positives",
    "Variant",
    "anchor_losses",
    "check_implementation",
    "check_variant",
    "choose_implementation",
    "default_block_size",
]
