"""Deprecated: `supcon_tf.selection` moved to `supcon_tf.training.selection`.

This module only re-exports the names it used to define, from their new home, and emits
a `DeprecationWarning` when imported.
Import from `supcon_tf.training.selection` (or `supcon_tf.training`) instead.
"""

import warnings

from supcon_tf.training.selection import (
    MONITORS,
    BestEpoch,
    is_file,
    join,
    read_text,
    write_atomically,
)

warnings.warn(
    "`supcon_tf.selection` is deprecated; import from `supcon_tf.training.selection` instead.",
    DeprecationWarning,
    stacklevel=2,
)

__all__ = [
    "BestEpoch",
    "MONITORS",
    "is_file",
    "join",
    "read_text",
    "write_atomically",
]
