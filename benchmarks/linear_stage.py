"""Does the frozen-feature linear stage keep the image path's accuracy, and what does it cost?

For each seed, one `supcon-train` run pretrains the encoder (`--preset` and `--flag`
settings, no baseline); then the classifier stage trains on that same frozen encoder
twice, each in a fresh process: once with this tree's code (the encoder embeds the
data once, `supcon_tf.experiment.features`) and once with the code of `--old_tree`, a
copy of the package from before that change, whose stage runs the encoder on every
batch of every epoch. Both arms see the same batches, recipe and best-epoch rule.
The table gives each arm's validation and test accuracy and the stage's cost as the
budget study measures it (`benchmarks/cifar10_studies.phase_costs`): seconds per epoch
(the median time between epoch ends in its TensorBoard log) and the fixed rest
(loading, embedding, tracing).

    git -C /work/main archive 69d48b5 supcon_tf | tar -x -C /tmp/linear_old
    python benchmarks/linear_stage.py --old_tree=/tmp/linear_old --data_dir=/tmp/cifar10_1000 \\
        --preset=cifar10_cpu_budget --flag=--pretrain_epochs=3 --seeds 0 1 2

Prints a markdown table and writes `<root>/results.json`.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.cifar10_studies import epoch_end_times  # noqa: E402

ARMS = ("frozen features", "image path (before)")


def train(model_dir, tree, flags):
    """`python -m supcon_tf.train` with the package of `tree`; returns its report.json."""
    command = [sys.executable, "-m", "supcon_tf.train", f"--model_dir={model_dir}", *flags]
    environment = dict(os.environ, PYTHONPATH=str(tree), TF_CPP_MIN_LOG_LEVEL="2")
    subprocess.run(command, cwd=tree, env=environment, check=True)
    return json.loads((Path(model_dir) / "report.json").read_text())


def copy_pretraining(source, destination):
    """A new run folder holding `source`'s finished pretraining (encoder and marker)."""
    marker = Path("phases") / "pretrain.json"
    (destination / marker).parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(source / "encoder.keras", destination / "encoder.keras")
    shutil.copy(source / marker, destination / marker)


def stage_row(arm, seed, model_dir, report):
    """One arm's accuracies and the cost of its classifier stage."""
    supcon, epochs = report["supcon"], report["config"]["classifier_epochs"]
    ends = epoch_end_times(model_dir, "classifier")
    per_epoch = float(np.median(np.diff(ends))) if len(ends) > 1 else float("nan")
    seconds = report["timings"]["classifier_seconds"]
    return {
        "arm": arm,
        "seed": seed,
        "validation_accuracy": supcon["validation_accuracy"],
        "test_accuracy": supcon["test_accuracy"],
        "selected_epoch": supcon["selected_epoch"],
        "seconds": seconds,
        "seconds_per_epoch": per_epoch,
        "fixed_seconds": max(seconds - epochs * per_epoch, 0.0),
    }


def run_seed(root, seed, flags, old_tree):
    """Pretraining once, then the classifier stage of each arm; one row per arm."""
    flags = [*flags, f"--seed={seed}", "--nobaseline", "--noevaluate", "--noknn_monitor"]
    pretrained = root / f"seed{seed}" / "pretrain"
    train(pretrained, ROOT, flags)
    rows = []
    for arm, tree in zip(ARMS, (ROOT, Path(old_tree)), strict=True):
        model_dir = root / f"seed{seed}" / arm.split()[0]
        copy_pretraining(pretrained, model_dir)
        rows.append(stage_row(arm, seed, model_dir, train(model_dir, tree, flags)))
    return rows


def table(rows):
    """Markdown: per arm, each seed's test accuracy, the means and the stage's cost."""
    lines = [
        "| linear stage | test accuracy per seed | test, mean | validation, mean "
        "| selected epochs | fixed seconds | seconds per epoch |",
        "|---|---|---|---|---|---|---|",
    ]
    for arm in ARMS:
        group = [row for row in rows if row["arm"] == arm]
        if not group:
            continue

        def mean(key, group=group):
            return float(np.mean([row[key] for row in group]))

        accuracies = ", ".join(f"{row['test_accuracy']:.4f}" for row in group)
        lines.append(
            f"| {arm} | {accuracies} "
            f"| {mean('test_accuracy'):.4f} | {mean('validation_accuracy'):.4f} "
            f"| {', '.join(str(row['selected_epoch']) for row in group)} "
            f"| {mean('fixed_seconds'):.1f} | {mean('seconds_per_epoch'):.2f} |"
        )
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old_tree", required=True, help="A copy of the package before.")
    parser.add_argument("--data_dir", required=True, help="Dataset (folder, .npz or name).")
    parser.add_argument("--preset", default=None, help="supcon-train --preset, if any.")
    parser.add_argument(
        "--flag", action="append", default=[], help="Extra supcon-train flag (repeatable)."
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--root", default="runs/linear_stage", help="Folder of the runs.")
    arguments = parser.parse_args()
    root = Path(arguments.root).resolve()
    root.mkdir(parents=True, exist_ok=True)
    flags = [f"--dataset={arguments.data_dir}", *arguments.flag]
    if arguments.preset:
        flags.insert(0, f"--preset={arguments.preset}")
    rows = []
    for seed in arguments.seeds:
        rows += run_seed(root, seed, flags, arguments.old_tree)
    (root / "results.json").write_text(json.dumps(rows, indent=2) + "\n")
    print(table(rows))


if __name__ == "__main__":
    main()
