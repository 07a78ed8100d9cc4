"""Deprecated: moved to `supcon_tf.experiment.phases`; importing this module warns."""

from supcon_tf._moved import reexport

__all__ = reexport(
    globals(),
    __name__,
    "supcon_tf.experiment.phases",
    "build_phase_optimizer compile_classifier evaluate_split fit_phase",
)
