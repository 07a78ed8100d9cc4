"""Deprecated: moved to `supcon_tf.experiment.runs`; importing this module warns."""

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
