"""Deprecated: `supcon_tf.layers` moved to `supcon_tf.models.layers`.

This module only re-exports the names it used to define, from their new home, and emits
a `DeprecationWarning` when imported.
Import from `supcon_tf.models.layers` (or `supcon_tf.models`) instead.
"""

import warnings

from supcon_tf.models.layers import (
    L2Normalize,
    ProjectionHead,
)

warnings.warn(
    "`supcon_tf.layers` is deprecated; import from `supcon_tf.models.layers` instead.",
    DeprecationWarning,
    stacklevel=2,
)

__all__ = [
    "L2Normalize",
    "ProjectionHead",
]
