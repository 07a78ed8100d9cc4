"""`supcon-train`: SupCon pretraining, a frozen-encoder classifier and a baseline.

Usage (also `python -m supcon_tf.train`):

    supcon-train                       # digits, offline, a few minutes on a CPU
    supcon-train --dataset=cifar10 --encoder=resnet18 --model_dir=runs/cifar10

Writes `flags.json`, `report.json`, `encoder.keras`, `classifier.keras`,
`baseline.keras`, checkpoints and logs into `--model_dir` (a local folder or a
`tf.io.gfile` URL such as `gs://bucket/run`); running the same command again resumes
an interrupted run.

Exit status: 0 done; 1 an error (bad flag values, `--model_dir` in use by another
process, a NaN/Inf loss: the message says which); 75 (`EX_TEMPFAIL`) stopped by
SIGTERM after saving its state: run the same command again to resume.
"""

import sys

from absl import app, flags, logging

from supcon_tf.checkpoints import NonFiniteTrainingError, StopRequested
from supcon_tf.cli.flags import (
    apply_preset_to_flags,
    config_from_flags,
    define_flags,
    flag_groups,
    flag_values_dict,
)
from supcon_tf.cli.usage import grouped_help_parser
from supcon_tf.experiment import run_experiment
from supcon_tf.experiment.runs import RunLockedError
from supcon_tf.files import join

# Stopped by SIGTERM with its state saved: retry later (sysexits.h EX_TEMPFAIL).
EXIT_STOPPED = 75

define_flags()
FLAGS = flags.FLAGS


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
    try:
        preset_flags = apply_preset_to_flags(FLAGS)
    except (ValueError, flags.IllegalFlagValueError) as error:
        raise app.UsageError(str(error)) from error
    if preset_flags:
        logging.info("--preset=%s set %s", FLAGS.preset, ", ".join(preset_flags))
    config = config_from_flags(FLAGS)
    model_dir = config.model_dir
    logging.info("Training with %s", config)
    try:
        # flags.json is written with config.json, once preflight has passed.
        report = run_experiment(config, records={"flags.json": flag_values_dict(FLAGS)})
    except StopRequested as stopped:
        logging.warning("%s", stopped)
        sys.exit(EXIT_STOPPED)
    except (RunLockedError, NonFiniteTrainingError) as error:
        logging.error("%s", error)
        sys.exit(1)
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
    app.run(main, flags_parser=grouped_help_parser(__doc__, flag_groups, FLAGS))


if __name__ == "__main__":
    run()
