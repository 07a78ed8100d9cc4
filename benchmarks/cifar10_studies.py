"""The two long CIFAR-10 studies, one command each: runs the arms and seeds, writes a table.

`keras_example_2020`: the first Keras example's full protocol (`--preset=keras_example_2020`:
small CNN, no augmentation, 50 + 50 epochs, batch 256), both arms, per seed.

`budget`: SupCon (`--preset=cifar10_cpu_budget`) against cross-entropy with the same
encoder and augmentation, and the 2020 example's protocol (its SupCon arm), each arm given
the same wall-clock training time (`--minutes`). A 3-epoch timing run measures what
every phase costs per epoch (between epoch ends in its TensorBoard log) and once
(building, tracing: the rest of its time); the epochs of each arm are then the most
that fit the budget (SupCon: pretraining after the classifier's epochs are paid for;
its classifier keeps the preset's epoch count). `--arms recipe` and `--arms 2020`
split the study into two processes that can run side by side. The SupCon recipe is
chosen on the validation split: each `--candidates` entry (extra flags on top of the
preset that change SupCon's settings only, e.g. views, temperature, projection head)
trains at the first seed, the one with the best validation accuracy trains at the other
seeds; the cross-entropy arm trains alongside the first candidate at the first seed and
alongside the winner at the others. The table reports the measured phase times next to
the accuracies, so the budget actually used is visible. Pin the study to one core
(`taskset -c 1 python ...`) to give every arm the same machine while other work runs on
the other core.

Every arm runs `python -m supcon_tf.train` in its own process; model selection uses the
validation split (see the presets), the test split is evaluated once per model.

    tar -xzf ../shared/data/cifar10-jpeg.tar.gz -C /tmp/cifar10
    python benchmarks/cifar10_studies.py keras_example_2020 --data_dir=/tmp/cifar10 --seeds 0
    taskset -c 1 python benchmarks/cifar10_studies.py budget --data_dir=/tmp/cifar10 \\
        --minutes=6 --seeds 0 1 2 --candidate="--temperature=0.1" --candidate="--temperature=0.5" \\
        --root=runs/cifar10_budget

Both print a markdown table and write `<root>/results.json`. These take hours on a 2-core
CPU: 50 + 50 epochs of the 2020 protocol (and its 50-epoch baseline) took 92 minutes for one seed, mostly
on one core; the budget study takes about 10 budgets plus the timing runs.
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
sys.path.insert(0, str(ROOT))

from supcon_tf.experiment.presets import get_preset  # noqa: E402

STUDIES = ("keras_example_2020", "budget")
ARMS = ("recipe", "2020")
EPOCH_FLAGS = ("pretrain_epochs", "classifier_epochs", "baseline_epochs")


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


def epoch_end_times(model_dir, phase):
    """Wall-clock times at which `phase`'s epochs ended, from its TensorBoard log."""
    import tensorflow as tf
    from tensorflow.core.util import event_pb2

    times = []
    for path in sorted(tf.io.gfile.glob(f"{model_dir}/logs/{phase}/train/events.out.tfevents*")):
        for record in tf.data.TFRecordDataset(path):
            event = event_pb2.Event.FromString(record.numpy())
            if any(value.tag == "epoch_loss" for value in event.summary.value):
                times.append(event.wall_time)
    return sorted(times)


def phase_costs(model_dir, preset, data_dir, extra=(), baseline=True, epochs=3):
    """`{phase: (fixed seconds, seconds per epoch)}` of `preset`, from one timing run.

    The run trains every phase for `epochs` epochs. An epoch's cost is the median time
    between two epoch ends in the phase's TensorBoard log (training and validation, the
    first epoch's tracing excluded); the rest of the phase's time is what it costs once
    (building, tracing), so short arms are not under-budgeted.
    """
    phases = ("pretrain", "classifier", "baseline") if baseline else ("pretrain", "classifier")
    flags = [f"--{name}={epochs}" for name in EPOCH_FLAGS]
    report = train(
        model_dir,
        preset,
        data_dir,
        seed=0,
        extra=[*extra, *flags, *([] if baseline else ["--nobaseline"])],
    )
    costs = {}
    for phase in phases:
        ends = epoch_end_times(model_dir, phase)
        if len(ends) != epochs:
            raise RuntimeError(
                f"{model_dir}: {len(ends)} epoch ends in the {phase} log, expected {epochs} "
                "(the timing needs TensorBoard logs: pip install tensorboard)."
            )
        per_epoch = float(np.median(np.diff(ends)))
        seconds = report["timings"][f"{phase}_seconds"]
        costs[phase] = (max(seconds - epochs * per_epoch, 0.0), per_epoch)
    return costs


def budget_epochs(costs, budget_seconds, classifier_epochs=None):
    """Epochs per phase that fit `budget_seconds` for each arm (at least 1 each).

    `costs`: `{phase: (fixed seconds, seconds per epoch)}` (see `phase_costs`). SupCon's
    classifier trains `classifier_epochs` epochs and pretraining gets the rest of the
    budget; with `classifier_epochs=None` both phases train the same number of epochs
    (the 2020 example's 50 + 50 ratio). `baseline_epochs` is there when `costs` has a
    `"baseline"` phase.

    >>> costs = {"pretrain": (4.0, 10.0), "classifier": (2.0, 2.0), "baseline": (6.0, 4.0)}
    >>> budget_epochs(costs, 126, 10)
    {'pretrain_epochs': 10, 'classifier_epochs': 10, 'baseline_epochs': 30}
    >>> budget_epochs(costs, 126)
    {'pretrain_epochs': 10, 'classifier_epochs': 10, 'baseline_epochs': 30}
    """
    (pretrain_fixed, pretrain), (classifier_fixed, classifier) = (
        costs["pretrain"],
        costs["classifier"],
    )
    supcon_seconds = budget_seconds - pretrain_fixed - classifier_fixed
    if classifier_epochs is None:
        classifier_epochs = max(1, math.floor(supcon_seconds / (pretrain + classifier)))
        pretrain_epochs = classifier_epochs
    else:
        pretrain_epochs = math.floor((supcon_seconds - classifier_epochs * classifier) / pretrain)
    epochs = {"pretrain_epochs": max(1, pretrain_epochs), "classifier_epochs": classifier_epochs}
    if "baseline" in costs:
        baseline_fixed, baseline = costs["baseline"]
        epochs["baseline_epochs"] = max(1, math.floor((budget_seconds - baseline_fixed) / baseline))
    return epochs


def rows_of(report, arm_prefix, seed):
    """One row per arm of a supcon-train report (SupCon, and cross-entropy if it ran)."""
    timings, config = report["timings"], report["config"]
    rows = [
        {
            "arm": f"{arm_prefix} SupCon",
            "seed": seed,
            "test_accuracy": report["supcon"]["test_accuracy"],
            "validation_accuracy": report["supcon"]["validation_accuracy"],
            "epochs": f"{config['pretrain_epochs']} + {config['classifier_epochs']}",
            "train_seconds": timings["pretrain_seconds"] + timings["classifier_seconds"],
        }
    ]
    if "cross_entropy" in report:
        rows.append(
            {
                "arm": f"{arm_prefix} cross-entropy",
                "seed": seed,
                "test_accuracy": report["cross_entropy"]["test_accuracy"],
                "validation_accuracy": report["cross_entropy"]["validation_accuracy"],
                "epochs": str(config["baseline_epochs"]),
                "train_seconds": timings["baseline_seconds"],
            }
        )
    return rows


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


def run_study(study, data_dir, seeds, root, minutes, candidates=("",), arms=ARMS):
    if study == "keras_example_2020":
        rows = []
        for seed in seeds:
            report = train(root / f"seed{seed}", "keras_example_2020", data_dir, seed)
            rows += rows_of(report, "2020 protocol (50 + 50 epochs)", seed)
        return rows
    rows = []
    if "recipe" in arms:
        rows += run_budget_recipe(data_dir, seeds, root, minutes, candidates)
    if "2020" in arms:
        rows += run_budget_2020(data_dir, seeds, root, minutes)
    return rows


def run_budget_recipe(data_dir, seeds, root, minutes, candidates):
    """The budget recipe (chosen among `candidates` on validation) and cross-entropy."""
    budget_seconds = 60 * minutes
    label = f"{minutes:g} min"
    first, *others = seeds
    # The budget recipe keeps its classifier epochs.
    classifier_epochs = get_preset("cifar10_cpu_budget")["flags"]["classifier_epochs"]
    costs = [
        phase_costs(
            root / f"timing_candidate{index}",
            "cifar10_cpu_budget",
            data_dir,
            candidate.split(),
            baseline=index == 0,
        )
        for index, candidate in enumerate(candidates)
    ]

    def budget_run(index, seed, baseline):
        # The candidates' timing runs have no baseline: its cost is the first run's.
        epochs = budget_epochs({**costs[0], **costs[index]}, budget_seconds, classifier_epochs)
        extra = [*candidates[index].split(), *(f"--{k}={v}" for k, v in epochs.items())]
        if not baseline:
            extra.append("--nobaseline")
        model_dir = root / f"cifar10_cpu_budget_candidate{index}_seed{seed}"
        report = train(model_dir, "cifar10_cpu_budget", data_dir, seed, extra)
        rows = rows_of(report, f"budget recipe {candidates[index] or '(preset)'}, {label}", seed)
        # The candidates differ in SupCon's settings only: one cross-entropy arm.
        for row in rows[1:]:
            row["arm"] = f"budget recipe, {label}, cross-entropy"
        return rows

    rows = []
    for index in range(len(candidates)):
        rows += budget_run(index, first, baseline=index == 0)
    supcon_rows = [row for row in rows if row["arm"].endswith("SupCon")]
    chosen = max(range(len(candidates)), key=lambda i: supcon_rows[i]["validation_accuracy"])
    print(f"Chosen on validation: {candidates[chosen] or '(preset)'}", flush=True)
    for seed in others:
        rows += budget_run(chosen, seed, baseline=True)
    return rows


def run_budget_2020(data_dir, seeds, root, minutes):
    """The 2020 example's protocol (its SupCon arm) in the same budget."""
    budget_seconds = 60 * minutes
    costs = phase_costs(
        root / "timing_keras_example_2020", "keras_example_2020", data_dir, baseline=False
    )
    epochs = budget_epochs(costs, budget_seconds)
    extra = [f"--{name}={epochs[name]}" for name in ("pretrain_epochs", "classifier_epochs")]
    rows = []
    for seed in seeds:
        model_dir = root / f"keras_example_2020_seed{seed}"
        report = train(model_dir, "keras_example_2020", data_dir, seed, [*extra, "--nobaseline"])
        rows += rows_of(report, f"2020 protocol, {minutes:g} min", seed)
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("study", choices=STUDIES)
    parser.add_argument("--data_dir", required=True, help="CIFAR-10 image folder or .npz.")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--minutes", type=float, default=20.0, help="Budget per arm (budget).")
    parser.add_argument(
        "--candidate",
        action="append",
        dest="candidates",
        help="budget, repeatable: a SupCon recipe to choose from on validation, as extra "
        'flags of supcon-train (--candidate="--views=1"). Default: the preset as it is.',
    )
    parser.add_argument(
        "--arms",
        nargs="+",
        choices=ARMS,
        default=list(ARMS),
        help="budget: the budget recipe with its cross-entropy arm, the 2020 protocol, or "
        "both (two processes, one core each, can run them side by side).",
    )
    parser.add_argument("--root", default=None, help="Folder of the runs.")
    arguments = parser.parse_args()
    root = Path(arguments.root or f"runs/cifar10_{arguments.study}")
    root.mkdir(parents=True, exist_ok=True)
    rows = run_study(
        arguments.study,
        arguments.data_dir,
        arguments.seeds,
        root,
        arguments.minutes,
        arguments.candidates or [""],
        arguments.arms,
    )
    (root / "results.json").write_text(json.dumps(rows, indent=2) + "\n")
    print(table(rows))


if __name__ == "__main__":
    main()
