"""Deprecated: moved to `supcon_tf.experiment.phases`.

This module only re-exports the names it used to define, from
`supcon_tf.experiment.phases`, and emits a `DeprecationWarning` when imported.
Import from `supcon_tf.experiment.phases` (or `supcon_tf.experiment`) instead.

The functions now take the few values they need instead of the whole configuration:
`fit_phase(model, run, phase, batches, num_examples, epochs, batch_size, ...)`,
`build_phase_optimizer(recipe, ...)` and `compile_classifier(model, recipe, ...)` with
a `TrainingRecipe` (`ExperimentConfig.training_recipe()`). `training_batches` is gone:
`supcon_tf.experiment.inputs.ArrayInputs.training_batches` gives the same batches.
"""

import warnings

from supcon_tf.experiment.phases import (
    build_phase_optimizer,
    compile_classifier,
    evaluate_split,
    fit_phase,
)

warnings.warn(
    "`supcon_tf.phases` is deprecated; import from `supcon_tf.experiment.phases` "
    "(or `supcon_tf.experiment`) instead.",
    DeprecationWarning,
    stacklevel=2,
)

__all__ = [
    "build_phase_optimizer",
    "compile_classifier",
    "evaluate_split",
    "fit_phase",
]
