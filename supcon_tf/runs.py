"""Deprecated: moved to `supcon_tf.experiment.runs`.

This module only re-exports the names it used to define and emits a `DeprecationWarning`
when imported. Import from `supcon_tf.experiment.runs` (or `supcon_tf.experiment`) instead.
"""

from supcon_tf._moved import reexport

__all__ = reexport(
    globals(),
    __name__,
    "supcon_tf.experiment.runs",
    (
        "LOCK_FILE PhasePaths REMOTE_LOCK_SETTLE_SECONDS RunDirectory RunLockedError "
        "StopSignal resume_position stop_on_sigterm write_json"
    ),
)
