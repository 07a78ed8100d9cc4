"""Deprecated: moved to `supcon_tf.experiment.runs`.

This module only re-exports the names it used to define, from
`supcon_tf.experiment.runs`, and emits a `DeprecationWarning` when imported.
Import from `supcon_tf.experiment.runs` (or `supcon_tf.experiment`) instead.
"""

import warnings

from supcon_tf.experiment.runs import (
    LOCK_FILE,
    REMOTE_LOCK_SETTLE_SECONDS,
    PhasePaths,
    RunDirectory,
    RunLockedError,
    StopSignal,
    resume_position,
    stop_on_sigterm,
    write_json,
)

warnings.warn(
    "`supcon_tf.runs` is deprecated; import from `supcon_tf.experiment.runs` "
    "(or `supcon_tf.experiment`) instead.",
    DeprecationWarning,
    stacklevel=2,
)

__all__ = [
    "LOCK_FILE",
    "PhasePaths",
    "REMOTE_LOCK_SETTLE_SECONDS",
    "RunDirectory",
    "RunLockedError",
    "StopSignal",
    "resume_position",
    "stop_on_sigterm",
    "write_json",
]
