"""Deprecated: `supcon_tf.encoders` moved to `supcon_tf.models.encoders`.

This module only re-exports the names it used to define, from their new home, and emits
a `DeprecationWarning` when imported.
Import from `supcon_tf.models.encoders` (or `supcon_tf.models`) instead.
"""

import warnings

from supcon_tf.models.encoders import (
    ENCODERS,
    STEMS,
    build_encoder,
)

warnings.warn(
    "`supcon_tf.encoders` is deprecated; import from `supcon_tf.models.encoders` instead.",
    DeprecationWarning,
    stacklevel=2,
)

__all__ = [
    "ENCODERS",
    "STEMS",
    "build_encoder",
]
