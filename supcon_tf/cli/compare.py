"""`supcon-compare`: does SupCon beat cross-entropy on my data? One command, three claims.

Usage (also `python -m supcon_tf.cli.compare`):

    supcon-compare --smoke                                  # digits, a minute on a CPU
    supcon-compare --dataset=cifar10 --encoder=resnet18 --pretrain_epochs=100 \\
        --model_dir=runs/compare_cifar10

Trains SupCon (or SimCLR, `--method`) and cross-entropy under one fair protocol: the
same data, encoder, augmentation and epoch budget (every `supcon-train` flag applies
to both arms); each method's recipe chosen on the validation split from a grid of
optimizers x learning rates x augmentations (`--optimizers`, `--learning_rate_factors`,
`--augmentations`; `--grid_design=star` varies one at a time around the middle values,
7 recipes, `full` trains all 27); `--seeds` seeds at each recipe. Then writes into `--model_dir`:

* `claims.md`: the accuracy (top-1, ECE), corruption robustness (accuracy and ECE per
  severity, mCE, relative mCE) and hyperparameter stability (std and max - min of
  top-1 over the grid) tables, also printed;
* `claims.json`: the same records, every run of the grid and the protocol;
* `plots/accuracy.png`, `plots/robustness.png`, `plots/stability.png`;
* `runs/<recipe>/seed_<n>/`: each `supcon-train` run, `final/seed_<n>/`: the two
  classifiers evaluated together.

Running the same command again resumes where it stopped. Each recipe is a whole
`supcon-train` run of both arms: size the epochs to your budget, or narrow the grid.

A mistake prints one line, `supcon-compare: error: <what is wrong>; <what to do>`
(`--traceback` shows the traceback).
"""

import sys

from absl import flags

from supcon_tf.cli.console import run_command
from supcon_tf.cli.flags import config_from_flags, flag_groups
from supcon_tf.cli.flags import define_flags as define_training_flags
from supcon_tf.comparison import (
    CLAIMS_FILE,
    TABLES_FILE,
    StabilityGrid,
    compare,
    markdown_tables,
)
from supcon_tf.comparison.grid import (
    DEFAULT_AUGMENTATIONS,
    DEFAULT_LEARNING_RATE_FACTORS,
    DEFAULT_OPTIMIZERS,
    DESIGNS,
)
from supcon_tf.errors import UsageError
from supcon_tf.experiment.runs import RunLockedError
from supcon_tf.files import join
from supcon_tf.training.checkpoints import NonFiniteTrainingError

COMPARISON_FLAGS = (
    "seeds",
    "grid_seeds",
    "optimizers",
    "learning_rate_factors",
    "augmentations",
    "grid_design",
    "corruption_samples",
    "smoke",
)
# --smoke: a few seconds per run on the digits, every step of the protocol exercised.
SMOKE_SETTINGS = {
    "pretrain_epochs": 1,
    "classifier_epochs": 1,
    "width_multiplier": 0.25,
    "knn_monitor": False,
    "seeds": 2,
    "optimizers": ["adam", "sgd"],
    "learning_rate_factors": ["1"],
    "augmentations": ["none"],
    "corruption_samples": 20,
}
DEFAULT_MODEL_DIR = "runs/compare"


def define_flags(flag_values=flags.FLAGS):
    """Defines the `supcon-train` flags and the comparison's own (once)."""
    define_training_flags(flag_values)
    if "grid_seeds" in flag_values:
        return
    flag_values.set_default("model_dir", DEFAULT_MODEL_DIR)
    flags.DEFINE_integer(
        "seeds",
        3,
        "Seeds of the accuracy and robustness claims (from --seed on).",
        lower_bound=1,
        flag_values=flag_values,
    )
    flags.DEFINE_integer(
        "grid_seeds",
        1,
        "Seeds of each grid recipe (their mean validation accuracy chooses).",
        lower_bound=1,
        flag_values=flag_values,
    )
    flags.DEFINE_list(
        "optimizers",
        list(DEFAULT_OPTIMIZERS),
        "Optimizers of the grid.",
        flag_values=flag_values,
    )
    flags.DEFINE_list(
        "learning_rate_factors",
        [f"{factor:g}" for factor in DEFAULT_LEARNING_RATE_FACTORS],
        "Learning rates of the grid, as factors of each optimizer's centre rate (SGD 0.1 and "
        "LARS 0.4 per 256 images, Adam 1e-3).",
        flag_values=flag_values,
    )
    flags.DEFINE_list(
        "augmentations",
        list(DEFAULT_AUGMENTATIONS),
        "Augmentations of the grid.",
        flag_values=flag_values,
    )
    flags.DEFINE_enum(
        "grid_design",
        "star",
        DESIGNS,
        "star: vary one axis at a time around the middle values (7 recipes of 3 x 3 x 3); "
        "full: every combination (27).",
        flag_values=flag_values,
    )
    flags.DEFINE_integer(
        "corruption_samples",
        1000,
        "Test images corrupted per seed (15 corruptions x 5 severities each).",
        lower_bound=10,
        flag_values=flag_values,
    )
    flags.DEFINE_bool(
        "smoke",
        False,
        "A tiny comparison on the digits (1 epoch, 2 recipes, 2 seeds) that "
        "checks every step in a minute; flags given explicitly still apply.",
        flag_values=flag_values,
    )


def compare_flag_groups():
    """The `supcon-train` flag groups plus the comparison's."""
    return {"comparison": COMPARISON_FLAGS, **flag_groups()}


def _apply_smoke(flag_values):
    for name, value in SMOKE_SETTINGS.items():
        if not flag_values[name].present:
            flag_values[name].value = value


def _factors(values):
    try:
        return tuple(float(value) for value in values)
    except ValueError as error:
        raise UsageError(
            f"--learning_rate_factors must be numbers, got {','.join(values)}; "
            "e.g. --learning_rate_factors=0.1,1,10"
        ) from error


def main(argv):
    del argv
    flag_values = flags.FLAGS
    if flag_values.smoke:
        _apply_smoke(flag_values)
    if not flag_values["verbose"].present:
        flag_values.verbose = 0  # One line per run below, not a progress bar per phase.
    grid = StabilityGrid(
        optimizers=tuple(flag_values.optimizers),
        learning_rate_factors=_factors(flag_values.learning_rate_factors),
        augmentations=tuple(flag_values.augmentations),
        design=flag_values.grid_design,
    )
    config = config_from_flags(flag_values)
    claims = compare(
        config,
        grid,
        seeds=flag_values.seeds,
        grid_seeds=flag_values.grid_seeds,
        corruption_samples=flag_values.corruption_samples,
    )
    sys.stdout.write(markdown_tables(claims))
    print(f"Tables: {join(config.model_dir, TABLES_FILE)}")
    print(f"Records: {join(config.model_dir, CLAIMS_FILE)}")
    print(
        "Figures: " + ", ".join(join(config.model_dir, path) for path in claims["plots"].values())
    )


def run():
    """Console-script entry point."""
    define_flags()
    run_command(
        main,
        "supcon-compare",
        __doc__,
        compare_flag_groups,
        expected=(RunLockedError, NonFiniteTrainingError),
    )


if __name__ == "__main__":
    run()
