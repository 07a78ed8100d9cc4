"""Deprecated: moved to `supcon_tf.experiment.phases`.

This module only re-exports the names it used to define and emits a `DeprecationWarning`
when imported. Import from `supcon_tf.experiment.phases` (or `supcon_tf.experiment`) instead.

The functions now take the few values they need instead of the whole configuration:
`fit_phase(model, run, phase, batches, num_examples, epochs, batch_size, ...)`,
`build_phase_optimizer(recipe, ...)` and `compile_classifier(model, recipe, ...)` with
a `TrainingRecipe` (`ExperimentConfig.training_recipe()`). `training_batches` is gone:
`supcon_tf.experiment.inputs.ArrayInputs.training_batches` gives the same batches.
"""

from supcon_tf._moved import reexport

__all__ = reexport(
    globals(),
    __name__,
    "supcon_tf.experiment.phases",
    "build_phase_optimizer compile_classifier evaluate_split fit_phase",
)
