"""The two long CIFAR-10 studies, one command each: runs the arms and seeds, writes a table.

`keras_example_2020`: the first Keras example's full protocol (`--preset=keras_example_2020`:
small CNN, no augmentation, 50 + 50 epochs, batch 256), both arms, per seed.

`budget`: SupCon (`--preset=cifar10_cpu_budget`) against cross-entropy with the same
encoder and augmentation, and the 2020 example's protocol, each arm given the same
wall-clock training time (`--minutes`). A one-epoch timing run of each preset measures
the seconds per epoch of every phase; the epochs of each arm are then the most that fit
the budget (SupCon: pretraining after the classifier's epochs are paid for; its
classifier keeps the preset's epoch count). The table reports the measured phase times
next to the accuracies, so the budget actually used is visible.

Every arm runs `python -m supcon_tf.train` in its own process; model selection uses the
validation split (see the presets), the test split is evaluated once per model.

    tar -xzf ../shared/data/cifar10-jpeg.tar.gz -C /tmp/cifar10
    python benchmarks/cifar10_studies.py keras_example_2020 --data_dir=/tmp/cifar10 --seeds 0
    python benchmarks/cifar10_studies.py budget --data_dir=/tmp/cifar10 --minutes=20 \\
        --seeds 0 1 2 --root=runs/cifar10_budget

Both print a markdown table and write `<root>/results.json`. These take hours on a 2-core
CPU (50 + 50 epochs of the 2020 protocol alone: several hours per seed there).
"""

import argparse
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
STUDIES = ("keras_example_2020", "budget")


def train(model_dir, preset, data_dir, seed, extra=()):
    """Runs `supcon-train --preset=...` in a new process; returns its report.json."""
    command = [
        sys.executable,
        "-m",
        "supcon_tf.train",
        f"--preset={preset}",
        f"--dataset={data_dir}",
        f"--model_dir={model_dir}",
        f"--seed={seed}",
        "--noevaluate",
        "--noknn_monitor",
        "--verbose=2",
        *extra,
    ]
    environment = dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="2")
    subprocess.run(command, cwd=ROOT, env=environment, check=True)
    return json.loads((Path(model_dir) / "report.json").read_text())


def seconds_per_epoch(root, preset, data_dir):
    """`{phase: seconds}` of one epoch of each phase of `preset` (a timing run)."""
    extra = ["--pretrain_epochs=1", "--classifier_epochs=1", "--baseline_epochs=1"]
    report = train(root / f"timing_{preset}", preset, data_dir, seed=0, extra=extra)
    return {
        phase: report["timings"][f"{phase}_seconds"]
        for phase in ("pretrain", "classifier", "baseline")
    }


def budget_epochs(per_epoch, budget_seconds, classifier_epochs=None):
    """Epochs per phase that fit `budget_seconds` for each arm (at least 1 each).

    SupCon's classifier trains `classifier_epochs` epochs and pretraining gets the rest
    of the budget; with `classifier_epochs=None` both phases train the same number of
    epochs (the 2020 example's 50 + 50 ratio).

    >>> budget_epochs({"pretrain": 10.0, "classifier": 2.0, "baseline": 4.0}, 120, 10)
    {'pretrain_epochs': 10, 'classifier_epochs': 10, 'baseline_epochs': 30}
    >>> budget_epochs({"pretrain": 10.0, "classifier": 2.0, "baseline": 4.0}, 120)
    {'pretrain_epochs': 10, 'classifier_epochs': 10, 'baseline_epochs': 30}
    """
    if classifier_epochs is None:
        pretrain = budget_seconds / (per_epoch["pretrain"] + per_epoch["classifier"])
        classifier_epochs = max(1, math.floor(pretrain))
    else:
        pretrain = (budget_seconds - classifier_epochs * per_epoch["classifier"]) / per_epoch[
            "pretrain"
        ]
    return {
        "pretrain_epochs": max(1, math.floor(pretrain)),
        "classifier_epochs": classifier_epochs,
        "baseline_epochs": max(1, math.floor(budget_seconds / per_epoch["baseline"])),
    }


def rows_of(report, arm_prefix, seed):
    """One row per arm of a supcon-train report."""
    timings = report["timings"]
    return [
        {
            "arm": f"{arm_prefix} SupCon",
            "seed": seed,
            "test_accuracy": report["supcon"]["test_accuracy"],
            "validation_accuracy": report["supcon"]["validation_accuracy"],
            "epochs": report["config"]["pretrain_epochs"],
            "train_seconds": timings["pretrain_seconds"] + timings["classifier_seconds"],
        },
        {
            "arm": f"{arm_prefix} cross-entropy",
            "seed": seed,
            "test_accuracy": report["cross_entropy"]["test_accuracy"],
            "validation_accuracy": report["cross_entropy"]["validation_accuracy"],
            "epochs": report["config"]["baseline_epochs"],
            "train_seconds": timings["baseline_seconds"],
        },
    ]


def table(rows):
    """Markdown: mean and (min-max) over seeds of each arm."""
    lines = [
        "| arm | seeds | test accuracy, mean (min-max) | epochs | training seconds, mean |",
        "|---|---|---|---|---|",
    ]
    for arm in dict.fromkeys(row["arm"] for row in rows):
        group = [row for row in rows if row["arm"] == arm]
        accuracy = np.array([row["test_accuracy"] for row in group])
        epochs = sorted({row["epochs"] for row in group})
        lines.append(
            f"| {arm} | {len(group)} | {accuracy.mean():.4f} ({accuracy.min():.4f}-"
            f"{accuracy.max():.4f}) | {', '.join(map(str, epochs))} "
            f"| {np.mean([row['train_seconds'] for row in group]):.0f} |"
        )
    return "\n".join(lines)


def run_study(study, data_dir, seeds, root, minutes):
    rows = []
    if study == "keras_example_2020":
        for seed in seeds:
            report = train(root / f"seed{seed}", "keras_example_2020", data_dir, seed)
            rows += rows_of(report, "2020 protocol (50 + 50 epochs)", seed)
        return rows
    budget_seconds = 60 * minutes
    # The budget recipe's classifier keeps its 10 epochs; the 2020 protocol splits evenly.
    arms = (
        ("cifar10_cpu_budget", "budget recipe", 10),
        ("keras_example_2020", "2020 protocol", None),
    )
    for preset, label, classifier_epochs in arms:
        per_epoch = seconds_per_epoch(root, preset, data_dir)
        epochs = budget_epochs(per_epoch, budget_seconds, classifier_epochs)
        extra = [f"--{name}={value}" for name, value in epochs.items()]
        for seed in seeds:
            report = train(root / f"{preset}_seed{seed}", preset, data_dir, seed, extra)
            rows += rows_of(report, f"{label}, {minutes} min", seed)
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("study", choices=STUDIES)
    parser.add_argument("--data_dir", required=True, help="CIFAR-10 image folder or .npz.")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--minutes", type=float, default=20.0, help="Budget per arm (budget).")
    parser.add_argument("--root", default=None, help="Folder of the runs.")
    arguments = parser.parse_args()
    root = Path(arguments.root or f"runs/cifar10_{arguments.study}")
    root.mkdir(parents=True, exist_ok=True)
    rows = run_study(arguments.study, arguments.data_dir, arguments.seeds, root, arguments.minutes)
    (root / "results.json").write_text(json.dumps(rows, indent=2) + "\n")
    print(table(rows))


if __name__ == "__main__":
    main()
