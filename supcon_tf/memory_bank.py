"""Deprecated: `supcon_tf.memory_bank` moved to `supcon_tf.models.memory_bank`.

This module only re-exports the names it used to define, from their new home, and emits
a `DeprecationWarning` when imported.
Import from `supcon_tf.models.memory_bank` (or `supcon_tf.models`) instead.
"""

import warnings

from supcon_tf.models.memory_bank import (
    MemoryBank,
)

warnings.warn(
    "`supcon_tf.memory_bank` is deprecated; import from `supcon_tf.models.memory_bank` instead.",
    DeprecationWarning,
    stacklevel=2,
)

__all__ = [
    "MemoryBank",
]
