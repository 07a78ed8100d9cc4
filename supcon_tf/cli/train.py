"""`supcon-train`: SupCon pretraining, a frozen-encoder classifier and a baseline.

Usage (also `python -m supcon_tf.train`):

    supcon-train                       # digits, offline, a few minutes on a CPU
    supcon-train --dataset=cifar10 --encoder=resnet18 --model_dir=runs/cifar10

Writes `flags.json`, `report.json`, `encoder.keras`, `classifier.keras`,
`baseline.keras`, checkpoints and logs into `--model_dir` (a local folder or a
`tf.io.gfile` URL such as `gs://bucket/run`); running the same command again resumes
an interrupted run.

A mistake prints one line, `supcon-train: error: <what is wrong>; <what to do>`
(`--traceback` shows the traceback). Exit status: 0 done; 2 a wrong flag or option;
1 missing or unfitting data, `--model_dir` in use by another process or a NaN/Inf
loss; 75 (`EX_TEMPFAIL`) stopped by SIGTERM after saving its state: run the same
command again to resume.
"""

import sys

from absl import flags, logging

from supcon_tf.cli.console import run_command
from supcon_tf.cli.flags import (
    apply_preset_to_flags,
    config_from_flags,
    define_flags,
    flag_groups,
    flag_values_dict,
)
from supcon_tf.cli.summary import settings_summary
from supcon_tf.errors import UsageError
from supcon_tf.experiment import run_experiment
from supcon_tf.experiment.runs import RunLockedError
from supcon_tf.files import join
from supcon_tf.training.checkpoints import NonFiniteTrainingError, StopRequested

# Stopped by SIGTERM with its state saved: retry later (sysexits.h EX_TEMPFAIL).
EXIT_STOPPED = 75

define_flags()
FLAGS = flags.FLAGS


def main(argv):
    try:
        preset_flags = apply_preset_to_flags(FLAGS)
    except (ValueError, flags.IllegalFlagValueError) as error:
        raise UsageError(str(error)) from error
    if not FLAGS["verbose"].present and not sys.stdout.isatty():
        FLAGS.verbose = 2  # One line per epoch: no progress-bar escape codes in a log file.
    config = config_from_flags(FLAGS)
    model_dir = config.model_dir
    summary = settings_summary(FLAGS, preset_flags)
    try:
        # The settings and flags.json (written with config.json) come once preflight passed.
        report = run_experiment(
            config,
            records={"flags.json": flag_values_dict(FLAGS)},
            on_preflight=lambda _: logging.info("%s", summary),
        )
    except StopRequested as stopped:
        logging.warning("%s", stopped)
        sys.exit(EXIT_STOPPED)
    if report.get("dry_run"):
        print(
            f"Dry run: the checks passed in {report['preflight_seconds']:.1f} s; nothing written."
        )
        return
    print(f"SupCon ({report['method']}) test accuracy: {report['supcon']['test_accuracy']:.4f}")
    if "hybrid" in report:
        print(f"Hybrid (one-stage) test accuracy: {report['hybrid']['test_accuracy']:.4f}")
    if "cross_entropy" in report:
        print(f"Cross-entropy test accuracy: {report['cross_entropy']['test_accuracy']:.4f}")
    if (report.get("budget") or {}).get("note"):
        print(report["budget"]["note"])
    print(f"Report: {join(model_dir, 'report.json')}")
    if "evaluation" in report:
        print(f"Evaluation (ECE, kNN, corruptions, plots): {join(model_dir, 'report.md')}")


def run():
    """Console-script entry point."""
    run_command(
        main,
        "supcon-train",
        __doc__,
        flag_groups,
        FLAGS,
        expected=(RunLockedError, NonFiniteTrainingError),
    )


if __name__ == "__main__":
    run()
