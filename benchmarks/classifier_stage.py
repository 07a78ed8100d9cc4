"""Which classifier-stage recipe trains a linear probe well? Measured on the validation split.

For each seed, one `supcon-train` run (default settings, or those given with `--set`)
pretrains the encoder and trains the cross-entropy baseline; then every candidate
classifier recipe trains a classifier on that same frozen encoder (a copy of the run
folder's pretraining phase, so `run_experiment` itself trains the candidate). Each
candidate is scored on the **validation split only**: accuracy and ECE (15 bins) of the
selected epoch. The test split is not read here; evaluate the chosen recipe once, with
`supcon-train`, afterwards.

Run (prints a markdown table; `--output` keeps the JSON):

    python benchmarks/classifier_stage.py --seeds 0 1 2 --root=/tmp/classifier_stage
    python benchmarks/classifier_stage.py --candidates adam_1e-2_std sgd_0.1_cosine_std \\
        --set dataset=/tmp/cifar10_subset --set augment=simple --seeds 0
"""

import argparse
import dataclasses
import json
import os
import shutil
import time
from pathlib import Path

import keras
import numpy as np

from supcon_tf.data import load_dataset
from supcon_tf.evaluation import expected_calibration_error
from supcon_tf.experiment import ExperimentConfig, run_experiment
from supcon_tf.experiment.runs import RunDirectory
from supcon_tf.files import join


def _recipe(optimizer, learning_rate, schedule="constant", standardize=False, select=True):
    return {
        "classifier_optimizer": optimizer,
        "classifier_learning_rate": learning_rate,
        "classifier_lr_schedule": schedule,
        "classifier_standardize": standardize,
        "select_best_epoch": select,
    }


# Candidate classifier-stage recipes (ExperimentConfig overrides). SGD learning rates are
# per 256 images (`learning_rate_scaling="auto"` scales them linearly to the batch).
CANDIDATES = {
    # The stage as it was: the pretraining optimizer (Adam 1e-3), the last epoch.
    "adam_1e-3_last": _recipe("adam", 1e-3, select=False),
    "adam_1e-3": _recipe("adam", 1e-3),
    "adam_1e-3_std": _recipe("adam", 1e-3, standardize=True),
    "adam_1e-2": _recipe("adam", 1e-2),
    "adam_1e-2_std": _recipe("adam", 1e-2, standardize=True),
    "adam_1e-2_cosine_std": _recipe("adam", 1e-2, "cosine", standardize=True),
    # SupContrast main_linear.py's optimizer (SGD 0.1 per 256, momentum 0.9), cosine.
    "sgd_0.1_cosine": _recipe("sgd", 0.1, "cosine"),
    "sgd_0.1_cosine_std": _recipe("sgd", 0.1, "cosine", standardize=True),
    "sgd_1.0_cosine_std": _recipe("sgd", 1.0, "cosine", standardize=True),
}


def parse_overrides(items):
    """`["name=value", ...]` -> `{name: value}`, values typed like the config's defaults."""
    defaults = ExperimentConfig()
    overrides = {}
    for item in items:
        name, _, text = item.partition("=")
        if not hasattr(defaults, name):
            raise ValueError(f"--set {item!r}: no ExperimentConfig field {name!r}.")
        default = getattr(defaults, name)
        if isinstance(default, bool):
            value = text.lower() in ("1", "true", "yes")
        elif isinstance(default, int) and text.lower() != "none":
            value = int(text)
        elif isinstance(default, float):
            value = float(text)
        else:
            value = None if text.lower() == "none" else text
        overrides[name] = value
    return overrides


def validation_scores(model_dir, data, phase):
    """`(accuracy, ECE)` of `<phase>.keras` on the validation split."""
    model = keras.saving.load_model(Path(model_dir) / f"{phase}.keras")
    logits = model.predict(data.x_val, batch_size=256, verbose=0)
    probabilities = keras.ops.convert_to_numpy(keras.ops.softmax(logits))
    accuracy = float(np.mean(np.argmax(probabilities, axis=-1) == data.y_val))
    return accuracy, expected_calibration_error(data.y_val, probabilities)


def run_seed(root, seed, overrides, candidates):
    """The baseline and every candidate on one seed's pretrained encoder; rows of results."""
    base = ExperimentConfig(
        **{**overrides, "seed": seed, "evaluate": False, "verbose": 0},
        model_dir=str(root / f"seed{seed}" / "pretrain"),
    )
    start = time.perf_counter()
    report = run_experiment(base)
    data = load_dataset(base.dataset, base.data_dir, base.validation_fraction, seed=seed)
    rows = []
    if base.baseline:
        accuracy, ece = validation_scores(base.model_dir, data, "baseline")
        rows.append(
            {
                "candidate": "cross-entropy baseline",
                "seed": seed,
                "validation_accuracy": accuracy,
                "validation_ece": ece,
                "selected_epoch": report["cross_entropy"]["selected_epoch"],
                "seconds": report["timings"]["baseline_seconds"],
            }
        )
    pretrained = RunDirectory(base.model_dir)
    for name in candidates:
        config = dataclasses.replace(
            base, baseline=False, model_dir=str(root / f"seed{seed}" / name), **CANDIDATES[name]
        )
        run = RunDirectory(config.model_dir)
        # The candidate reuses the pretrained encoder: its pretraining phase is finished.
        os.makedirs(run.root, exist_ok=True)  # RunDirectory writes nothing until a run claims it
        shutil.copy(join(pretrained.root, "encoder.keras"), join(run.root, "encoder.keras"))
        marker = run.phase_paths("pretrain").marker
        os.makedirs(os.path.dirname(marker), exist_ok=True)
        shutil.copy(pretrained.phase_paths("pretrain").marker, marker)
        candidate = run_experiment(config)
        accuracy, ece = validation_scores(config.model_dir, data, "classifier")
        rows.append(
            {
                "candidate": name,
                "seed": seed,
                "validation_accuracy": accuracy,
                "validation_ece": ece,
                "selected_epoch": candidate["supcon"]["selected_epoch"],
                "seconds": candidate["timings"]["classifier_seconds"],
            }
        )
    print(f"seed {seed}: {time.perf_counter() - start:.0f} s", flush=True)
    return rows


def table(rows):
    """Markdown table: mean and spread (min-max) over seeds, per candidate."""
    lines = [
        "| classifier stage | validation accuracy | validation ECE (15 bins) | selected epoch "
        "| seconds |",
        "|---|---|---|---|---|",
    ]
    names = list(dict.fromkeys(row["candidate"] for row in rows))
    for name in names:
        group = [row for row in rows if row["candidate"] == name]

        def summary(key, digits=4, group=group):
            values = np.array([row[key] for row in group], dtype=float)
            if len(values) == 1:
                return f"{values[0]:.{digits}f}"
            return (
                f"{values.mean():.{digits}f} ({values.min():.{digits}f}-{values.max():.{digits}f})"
            )

        epochs = ", ".join(str(row["selected_epoch"]) for row in group)
        lines.append(
            f"| {name} | {summary('validation_accuracy')} | {summary('validation_ece')} "
            f"| {epochs} | {summary('seconds', 1)} |"
        )
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument(
        "--candidates", nargs="+", choices=sorted(CANDIDATES), default=list(CANDIDATES)
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="ExperimentConfig field for every run (repeatable), e.g. dataset=PATH.",
    )
    parser.add_argument("--root", default="runs/classifier_stage", help="Folder of the runs.")
    parser.add_argument("--output", default=None, help="Also write the rows as JSON here.")
    arguments = parser.parse_args()
    overrides = parse_overrides(arguments.set)
    root = Path(arguments.root)
    rows = []
    for seed in arguments.seeds:
        rows.extend(run_seed(root, seed, overrides, arguments.candidates))
    if arguments.output:
        Path(arguments.output).write_text(json.dumps(rows, indent=2) + "\n")
    print(table(rows))


if __name__ == "__main__":
    main()
