"""SupCon against cross-entropy under one fair protocol, one claim at a time.

`compare(config, grid, seeds)` runs, in `config.model_dir`:

1. **The grid.** For each `StabilityGrid` point and each of `grid_seeds` seeds, one
   `run_experiment` trains both arms on the same data, encoder, augmentation and epoch
   budget (`config`'s, the point's optimizer, learning rate and augmentation applied to
   SupCon pretraining and to the cross-entropy baseline alike; the linear stage keeps
   `config`'s classifier recipe): `runs/<point>/seed_<seed>/`.
2. **The recipes.** Each method's recipe is its grid point with the best mean
   validation accuracy (`claims.select_recipes`); the test split plays no part.
3. **The seeds.** Each method trains at its recipe with `seeds` seeds (a run the grid
   already holds is reused), and for each seed the two classifiers are evaluated
   together (`evaluate_run`: top-1, ECE, the corruptions at 5 severities with the
   corruption errors relative to the cross-entropy model): `final/seed_<seed>/`.
4. **The claims.** `claims.json` (the three records, the grid's runs, the protocol),
   `claims.md` (the three tables) and `plots/{accuracy,robustness,stability}.png`.

Every run is a resumable `run_experiment` folder and every evaluation is kept, so a
comparison killed part way resumes where it stopped when started again.

Example (a tiny grid on the digits; a few minutes on a CPU):

>>> import tempfile
>>> from supcon_tf.experiment import ExperimentConfig
>>> config = ExperimentConfig(pretrain_epochs=1, classifier_epochs=1, width_multiplier=0.25,
...                           verbose=0, model_dir=tempfile.mkdtemp())
>>> grid = StabilityGrid(optimizers=("adam",), learning_rate_factors=(1.0,),
...                      augmentations=("none",))
>>> claims = compare(config, grid, seeds=1, corruption_samples=50)  # doctest: +SKIP
>>> sorted(claims)  # doctest: +SKIP
['accuracy', 'labels', 'plots', 'protocol', 'robustness', 'runs', 'stability']
"""

import dataclasses
import json
import logging
import time

import tensorflow as tf

from supcon_tf import checks
from supcon_tf.comparison import claims as claim_records
from supcon_tf.comparison import plots
from supcon_tf.comparison.grid import StabilityGrid
from supcon_tf.errors import UsageError
from supcon_tf.evaluation import evaluate_run
from supcon_tf.experiment import ExperimentConfig, run_experiment
from supcon_tf.experiment.inputs import open_inputs
from supcon_tf.files import is_file, join, read_text, write_atomically

CLAIMS_FILE = "claims.json"
TABLES_FILE = "claims.md"
# The classifier files of the two arms in a run folder, and their names in the claims.
ARM_FILES = {"supcon": "classifier.keras", "cross_entropy": "baseline.keras"}


@dataclasses.dataclass(frozen=True)
class Protocol:
    """What a comparison holds fixed (recorded in `claims.json`)."""

    seeds: tuple
    grid_seeds: tuple
    corruption_samples: int
    corruptions: tuple | None


def compare(
    config,
    grid=None,
    seeds=3,
    grid_seeds=1,
    corruption_samples=1000,
    corruptions=None,
):
    """Runs the comparison (see the module docstring) and returns the claims record.

    Args:
        config: the `ExperimentConfig` both arms share (`model_dir` is the comparison's
            folder; its optimizer, learning rate and augmentation are the grid's).
        grid: the `StabilityGrid` (default: the star of SGD, Adam, LARS x 0.1, 1, 10 x
            the centre rate x none, simple, RandAugment around Adam, 1e-3, simple).
        seeds: seeds of the accuracy and robustness claims (`config.seed` onwards).
        grid_seeds: seeds of each grid point (their mean validation accuracy chooses
            the recipes).
        corruption_samples: test images corrupted per seed (at least 10).
        corruptions: corruption names (default: the 15 of CIFAR-10-C that apply).

    Returns:
        The dict written to `claims.json`: `"accuracy"`, `"robustness"`,
        `"stability"`, `"runs"` (every grid record) and `"protocol"`.

    Raises:
        UsageError: a setting the comparison cannot use (see `check_config`).
    """
    grid = grid or StabilityGrid()
    protocol = Protocol(
        seeds=_seed_range(config.seed, checks.integer("seeds", seeds, minimum=1)),
        grid_seeds=_seed_range(config.seed, checks.integer("grid_seeds", grid_seeds, minimum=1)),
        corruption_samples=checks.integer("corruption_samples", corruption_samples, minimum=10),
        corruptions=tuple(corruptions) if corruptions else None,
    )
    check_config(config)
    points = grid.points()
    records = []
    started = time.perf_counter()
    for seed in protocol.grid_seeds:
        for point in points:
            records += _grid_records(_train(config, point, seed), point, seed)
    selected = claim_records.select_recipes(records)
    by_name = {point.name: point for point in points}
    evaluations = {
        seed: _evaluate_seed(config, protocol, seed, by_name, selected, records)
        for seed in protocol.seeds
    }
    claims = {
        "labels": claim_records.arm_labels(config.method),
        "accuracy": claim_records.accuracy_claim(evaluations, selected),
        "robustness": claim_records.robustness_claim(evaluations),
        "stability": claim_records.stability_claim(
            records,
            points,
            selected,
            anchor=grid.centre_point().name if grid.design == "star" else None,
        ),
        "runs": records,
        "protocol": {
            **dataclasses.asdict(protocol),
            "grid": [point.overrides() for point in points],
            "grid_design": grid.design,
            "config": dataclasses.asdict(config),
            "seconds": time.perf_counter() - started,
        },
    }
    claims["plots"] = _plots(config.model_dir, claims)
    write_atomically(join(config.model_dir, CLAIMS_FILE), json.dumps(claims, indent=2))
    write_atomically(join(config.model_dir, TABLES_FILE), claim_records.markdown_tables(claims))
    return claims


def check_config(config):
    """Refuses a configuration the comparison cannot run, with what to do instead."""
    if not isinstance(config, ExperimentConfig):
        raise UsageError(f"`config` must be an ExperimentConfig, got {type(config).__name__}.")
    if config.method == "hybrid":
        raise UsageError(
            "--method=hybrid trains one model with both losses; compare pretrains with "
            "--method=supcon or simclr and trains cross-entropy alone."
        )
    if config.split != "standard":
        raise UsageError(
            f"--split={config.split}: the comparison scores the classes it trained on; "
            "use --split=standard (supcon-train evaluates class-disjoint runs)."
        )


def _seed_range(first, count):
    return tuple(range(first, first + count))


def _run_config(config, point, seed):
    return dataclasses.replace(
        config,
        **point.overrides(),
        seed=seed,
        baseline=True,
        evaluate=False,
        model_dir=join(config.model_dir, "runs", point.name, f"seed_{seed}"),
    )


def _train(config, point, seed):
    """The report of both arms at `point` with `seed` (trained now or stored)."""
    run_config = _run_config(config, point, seed)
    start = time.perf_counter()
    report = run_experiment(run_config)
    logging.info(
        "%s seed %d: SupCon %.4f, cross-entropy %.4f test top-1 (%.0f s)",
        point.name,
        seed,
        report["supcon"]["test_accuracy"],
        report["cross_entropy"]["test_accuracy"],
        time.perf_counter() - start,
    )
    return report


def _grid_records(report, point, seed):
    return [
        {
            "method": method,
            "point": point.name,
            "seed": seed,
            "validation_accuracy": report[method]["validation_accuracy"],
            "test_accuracy": report[method]["test_accuracy"],
            "selected_epoch": report[method]["selected_epoch"],
        }
        for method in ARM_FILES
    ]


def _evaluate_seed(config, protocol, seed, points, selected, records):
    """Trains (or finds) each method's recipe at `seed` and evaluates both classifiers."""
    folder = join(config.model_dir, "final", f"seed_{seed}")
    report_path = join(folder, "report.json")
    if is_file(report_path):
        stored = json.loads(read_text(report_path))
        if stored.get("recipes") == selected and "evaluation" in stored:
            return stored["evaluation"]
    trained = {(record["point"], record["seed"]) for record in records}
    for method, point_name in selected.items():
        point = points[point_name]
        if (point_name, seed) not in trained:
            _train(config, point, seed)
            trained.add((point_name, seed))
        source = join(_run_config(config, point, seed).model_dir, ARM_FILES[method])
        tf.io.gfile.makedirs(folder)
        tf.io.gfile.copy(source, join(folder, ARM_FILES[method]), overwrite=True)
    inputs = open_inputs(config.data_source())
    evaluation = evaluate_run(
        folder,
        inputs if inputs.streamed else inputs.splits,
        corruptions=list(protocol.corruptions) if protocol.corruptions else None,
        corruption_samples=protocol.corruption_samples,
        tsne_samples=0,
        batch_size=config.classifier_stage().batch_size,
        seed=seed,
    )
    write_atomically(
        report_path,
        json.dumps({"recipes": selected, "seed": seed, "evaluation": evaluation}, indent=2),
    )
    return evaluation


def _plots(root, claims):
    """Writes the three PNGs; returns their paths relative to `root`."""
    drawn = {}
    for name, draw in (
        ("accuracy", plots.plot_accuracy),
        ("robustness", plots.plot_robustness),
        ("stability", plots.plot_stability),
    ):
        draw(claims[name], join(root, "plots", f"{name}.png"), claims["labels"])
        drawn[name] = f"plots/{name}.png"
    return drawn
