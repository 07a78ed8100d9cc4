"""The class-disjoint study: train on 5 CIFAR-10 classes, retrieve among the 5 never seen.

The metric-learning protocol (`supcon-train --split=class_disjoint`): pretraining, the
linear classifier and the cross-entropy baseline see the first five classes (airplane,
automobile, bird, cat, deer); the report scores each encoder on the other five, never
seen in training: retrieval among their test images (leave-one-out, cosine: Recall@1,
MAP@R, ...) and a linear probe trained on their training images.

Three methods, one protocol: SupCon and SimCLR (`--method`), each run also trains the
cross-entropy baseline with the same encoder, augmentation and epochs; the baseline's
features are scored the same way. Every arm gets the same encoder (`--encoder`), the
same augmentation (`--augment`, two views) and the same number of epochs; several seeds;
the table gives mean and spread (sample standard deviation). The cross-entropy arm
trains in the SupCon runs (the SimCLR runs pass `--nobaseline`).

    python benchmarks/class_disjoint.py --archive=../shared/data/cifar10-jpeg.tar.gz \\
        --train_per_class=1000 --test_per_class=500 --seeds 0 1 2

It extracts a class-balanced subset of the archive (the first N images per class and
split), runs the arms in fresh processes (`python -m supcon_tf.cli.train`), prints a
Markdown table and appends it to benchmarks/results/class_disjoint.md.
"""

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.common import (  # noqa: E402
    append_results,
    extract_cifar10_subset,
    markdown_table,
)

METHODS = ("supcon", "simclr")
# (row label, method run, arm in its report)
ARMS = (
    ("SupCon", "supcon", "supcon"),
    ("SimCLR", "simclr", "supcon"),
    ("cross-entropy", "supcon", "cross_entropy"),
)
METRICS = (
    ("R@1", "recall_at_1"),
    ("R@4", "recall_at_4"),
    ("MAP@R", "map_at_r"),
    ("MRR", "mean_reciprocal_rank"),
)


def train(dataset, model_dir, method, seed, flags):
    """One `supcon-train --split=class_disjoint` run in a fresh process; its report."""
    command = [
        sys.executable,
        "-m",
        "supcon_tf.cli.train",
        f"--dataset={dataset}",
        "--split=class_disjoint",
        f"--method={method}",
        f"--seed={seed}",
        f"--model_dir={model_dir}",
        "--noevaluate",
        *flags,
        # The cross-entropy arm trains once per seed, beside SupCon.
        *(["--nobaseline"] if method == "simclr" else []),
    ]
    start = time.monotonic()
    completed = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    if completed.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{completed.stderr[-3000:]}")
    report = json.loads(Path(model_dir, "report.json").read_text())
    report["study_seconds"] = time.monotonic() - start
    return report


def arm_figures(report, arm):
    """`{metric: value}` of one arm on the unseen classes (retrieval and linear probe)."""
    retrieval = report["retrieval"]
    figures = {key: retrieval["models"][arm][key] for _, key in METRICS}
    figures["probe"] = retrieval["linear_probe"][arm]["test_accuracy"]
    return figures


def summarize(reports):
    """Table rows `[arm, metric mean ± std, ...]` from `{(method, seed): report}`."""
    rows = []
    for label, method, arm in ARMS:
        runs = [arm_figures(r, arm) for (m, _), r in sorted(reports.items()) if m == method]
        cells = [label, str(len(runs))]
        for key in [key for _, key in METRICS] + ["probe"]:
            values = [run[key] for run in runs]
            spread = statistics.stdev(values) if len(values) > 1 else 0.0
            cells.append(f"{statistics.mean(values):.3f} ± {spread:.3f}")
        rows.append(cells)
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--archive", default=str(ROOT.parent / "shared/data/cifar10-jpeg.tar.gz"))
    parser.add_argument("--root", default="runs/class_disjoint")
    parser.add_argument("--train_per_class", type=int, default=1000)
    parser.add_argument("--test_per_class", type=int, default=500)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument(
        "--flags",
        default="--encoder=small_cnn --augment=simple --views=2 --batch_size=256 "
        "--pretrain_epochs=15 --classifier_epochs=5 --baseline_epochs=20",
        help="supcon-train flags shared by every arm (encoder, augmentation, budget).",
    )
    parser.add_argument("--no-append", dest="append", action="store_false")
    arguments = parser.parse_args(argv)
    root = Path(arguments.root)
    dataset = root / "data"
    if not (dataset / "train").is_dir():
        extract_cifar10_subset(
            arguments.archive, dataset, arguments.train_per_class, arguments.test_per_class
        )
    reports = {}
    for seed in arguments.seeds:
        for method in METHODS:
            model_dir = root / f"{method}-seed{seed}"
            reports[method, seed] = train(dataset, model_dir, method, seed, arguments.flags.split())
            print(f"{method} seed {seed}: {reports[method, seed]['study_seconds']:.0f} s")
    header = ["arm (unseen classes)", "seeds", *[name for name, _ in METRICS], "linear probe"]
    table = markdown_table(header, summarize(reports))
    seconds = sum(report["study_seconds"] for report in reports.values())
    unseen = next(iter(reports.values()))["retrieval"]["classes"]
    body = (
        f"Unseen classes: {', '.join(unseen)}; {arguments.train_per_class} training and "
        f"{arguments.test_per_class} test images per class; flags `{arguments.flags}`; "
        f"{len(reports)} runs, {seconds / 60:.1f} min in all. Mean ± standard deviation "
        "over the seeds.\n\n" + table
    )
    print(body)
    if arguments.append:
        command = "python benchmarks/class_disjoint.py " + " ".join(argv or sys.argv[1:])
        append_results("Class-disjoint retrieval on CIFAR-10", command, body)


if __name__ == "__main__":
    main()
