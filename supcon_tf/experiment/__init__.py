"""The whole two-phase experiment as a plain-Python library call (no flags).

`run_experiment(ExperimentConfig(...))` runs, in `model_dir`:

1. `pretrain`: SupCon pretraining of the encoder (`SupConModel` + loss), saved as
   `encoder.keras`.
2. `classifier`: a linear head on the frozen encoder, saved as `classifier.keras`
   (images -> logits).
3. `baseline` (optional): the same encoder architecture trained end to end with
   cross-entropy, saved as `baseline.keras`.

Every phase logs its metrics to `logs/<phase>/history.csv` and, when the
`tensorboard` package is installed, to TensorBoard (`logs/<phase>`), checkpoints every epoch
(`supcon_tf.training.checkpoints.TrainingCheckpoint` under `backup/<phase>`) and writes a completion
marker (`phases/<phase>.json`): running the same configuration again resumes an
interrupted phase exactly where its last checkpoint left it (mid-epoch with
`backup_steps`) and skips finished phases. Each epoch sees the same shuffled batches
whether or not the run was interrupted. One process at a time trains in a folder
(`run.lock`); SIGTERM saves at the next step and raises
`supcon_tf.training.checkpoints.StopRequested`; a NaN or Inf loss raises
`supcon_tf.training.checkpoints.NonFiniteTrainingError` (see docs/reliability.md). The validation
split is monitored for model selection; the test split is evaluated once per model,
at the end. `report.json` holds the test accuracies, the configuration and timings.

The classifier stage trains with a recipe of its own (`classifier_optimizer`,
`classifier_learning_rate`, ...: `ExperimentConfig.classifier_stage`), as the
reference implementations do. Both classifier phases (the SupCon classifier and the
baseline) keep their best validation epoch (the lowest validation loss by default,
`best_epoch_monitor`) by the same rule (`supcon_tf.training.selection.BestEpoch`), and may
stop early (`early_stopping_patience`); the chosen epoch is in `report.json`
(`selected_epoch`).

Before anything is written or trained, `preflight` resolves the whole run in seconds
(paths, data, image sizes, every stage's batch size) and stops at the first mistake
with a `supcon_tf.errors.UsageError` or `DataError`; the run folder is claimed only
then, so a refused command leaves nothing behind. A finished run started again says
where its report is (`reevaluate` evaluates it again); `dry_run` stops after
preflight.

The package, one job per module, in the order of the method:

- `config`: `ExperimentConfig`, every option checked once, where it enters;
- `presets`: published recipes as data (`--preset`);
- `inputs`: the data in RAM or streamed, behind one interface;
- `preflight`: the checks before anything is written;
- `components`: the encoder, heads, loss and augmenter of a configuration;
- `phases`: training and evaluating one phase, resumable;
- `features`: the classifier stage's data as frozen features, embedded once;
- `stages`: pretraining, classifier, baseline, hybrid;
- `runs`: the run folder, its lock and its resumption rules;
- `report`: `report.json`, with the budgets of the two arms;
- `run`: `run_experiment`, the order of it all.

Example:

>>> import tempfile
>>> config = ExperimentConfig(
...     pretrain_epochs=1, classifier_epochs=1, baseline=False, width_multiplier=0.25,
...     model_dir=tempfile.mkdtemp(), verbose=0, evaluate=False)
>>> report = run_experiment(config)
>>> sorted(report["supcon"])
['epochs_trained', 'selected_epoch', 'test_accuracy', 'test_loss', 'validation_accuracy']
"""

from supcon_tf.experiment.components import contrastive_loss
from supcon_tf.experiment.config import (
    LOSSES,
    METHODS,
    PHASES,
    PROJECTION_HEADS,
    RESUMABLE_FIELDS,
    SUPCON_ONLY_OPTIONS,
    ExperimentConfig,
    TrainingRecipe,
)
from supcon_tf.experiment.inputs import DataSource
from supcon_tf.experiment.preflight import Preflight, preflight
from supcon_tf.experiment.presets import PRESETS, apply_preset, get_preset, preset_notes
from supcon_tf.experiment.report import budget
from supcon_tf.experiment.run import run_experiment
from supcon_tf.experiment.runs import RunDirectory, RunLockedError
from supcon_tf.models import HIDDEN_ACTIVATIONS
from supcon_tf.training.distribute import (
    LEARNING_RATE_SCALINGS,
    MIXED_PRECISION_POLICIES,
    STRATEGIES,
)
from supcon_tf.training.optimizers import OPTIMIZERS
from supcon_tf.training.schedules import SCHEDULES
from supcon_tf.training.selection import MONITORS

__all__ = [
    "HIDDEN_ACTIVATIONS",
    "LEARNING_RATE_SCALINGS",
    "LOSSES",
    "METHODS",
    "MIXED_PRECISION_POLICIES",
    "MONITORS",
    "OPTIMIZERS",
    "PHASES",
    "PRESETS",
    "PROJECTION_HEADS",
    "RESUMABLE_FIELDS",
    "SCHEDULES",
    "STRATEGIES",
    "SUPCON_ONLY_OPTIONS",
    "DataSource",
    "ExperimentConfig",
    "Preflight",
    "RunDirectory",
    "RunLockedError",
    "TrainingRecipe",
    "apply_preset",
    "budget",
    "contrastive_loss",
    "get_preset",
    "preflight",
    "preset_notes",
    "run_experiment",
]
