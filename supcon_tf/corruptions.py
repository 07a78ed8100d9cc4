"""Deprecated: the corruptions moved to `supcon_tf.evaluation.corruptions`.

This module only re-exports the names it used to define, from their new homes
(`supcon_tf.evaluation.corruptions`, and `corruption_table` from
`supcon_tf.evaluation.report`, `plot_corruption_results` from
`supcon_tf.evaluation.plots`), and emits a `DeprecationWarning` when imported. Import
from `supcon_tf.evaluation.corruptions` (or `supcon_tf.evaluation`) instead.
"""

import warnings

from supcon_tf.evaluation.corruptions import (
    COLOR_CORRUPTIONS,
    CORRUPTION_FUNCTIONS,
    CORRUPTIONS,
    SEVERITIES,
    brightness,
    contrast,
    corrupt,
    default_corruptions,
    defocus_blur,
    evaluate_corruptions,
    fog,
    gaussian_blur,
    gaussian_noise,
    impulse_noise,
    jpeg_compression,
    pixelate,
    saturate,
    shot_noise,
    speckle_noise,
)
from supcon_tf.evaluation.plots import plot_corruption_results
from supcon_tf.evaluation.report import corruption_table

warnings.warn(
    "`supcon_tf.corruptions` is deprecated; import from `supcon_tf.evaluation.corruptions` "
    "(or `supcon_tf.evaluation`) instead.",
    DeprecationWarning,
    stacklevel=2,
)

__all__ = [
    "COLOR_CORRUPTIONS",
    "CORRUPTIONS",
    "CORRUPTION_FUNCTIONS",
    "SEVERITIES",
    "brightness",
    "contrast",
    "corrupt",
    "corruption_table",
    "default_corruptions",
    "defocus_blur",
    "evaluate_corruptions",
    "fog",
    "gaussian_blur",
    "gaussian_noise",
    "impulse_noise",
    "jpeg_compression",
    "pixelate",
    "plot_corruption_results",
    "saturate",
    "shot_noise",
    "speckle_noise",
]
