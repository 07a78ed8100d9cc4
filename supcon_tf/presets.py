"""Deprecated: moved to `supcon_tf.experiment.presets`.

This module only re-exports the names it used to define, from
`supcon_tf.experiment.presets`, and emits a `DeprecationWarning` when imported.
Import from `supcon_tf.experiment.presets` (or `supcon_tf.experiment`) instead.
"""

import warnings

from supcon_tf.experiment.presets import (
    PRESETS,
    SOURCE_GOOGLE,
    SOURCE_KERAS_EXAMPLE,
    SOURCE_KERAS_EXAMPLE_2020,
    SOURCE_PAPER,
    SOURCE_SUPCONTRAST,
    SOURCE_SUPCONTRAST_LINEAR,
    apply_preset,
    get_preset,
)

warnings.warn(
    "`supcon_tf.presets` is deprecated; import from `supcon_tf.experiment.presets` "
    "(or `supcon_tf.experiment`) instead.",
    DeprecationWarning,
    stacklevel=2,
)

__all__ = [
    "PRESETS",
    "SOURCE_GOOGLE",
    "SOURCE_KERAS_EXAMPLE",
    "SOURCE_KERAS_EXAMPLE_2020",
    "SOURCE_PAPER",
    "SOURCE_SUPCONTRAST",
    "SOURCE_SUPCONTRAST_LINEAR",
    "apply_preset",
    "get_preset",
]
