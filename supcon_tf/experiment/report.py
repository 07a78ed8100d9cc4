"""`report.json` of a run: the test results, and whether the two arms were comparable.

`build_report` gathers the stages' results, the configuration, the data, the timings
and the training history. `budget` says what each arm was trained for (SupCon:
pretraining + classifier epochs; cross-entropy: the baseline's epochs) and, when they
differ, a sentence printed beside the numbers (`budget_note`): a comparison of unequal
budgets is never shown as if it were fair.

Example:

>>> from supcon_tf.experiment import ExperimentConfig
>>> budget(ExperimentConfig(pretrain_epochs=3, classifier_epochs=2))["equal"]
True
>>> print(budget(ExperimentConfig(pretrain_epochs=1, classifier_epochs=1,
...                               baseline_epochs=50))["note"])
Unequal budgets: SupCon trained 2 epochs (1 pretraining + 1 classifier), cross-entropy 50 \
epochs; the accuracies are not a like-for-like comparison.
"""

import dataclasses

import keras
import numpy as np
import tensorflow as tf

from supcon_tf.experiment.presets import preset_notes


def budget(config):
    """The epochs of each arm, whether they are equal, and a note when they are not.

    Returns:
        `{"supcon_epochs", "pretrain_epochs", "classifier_epochs",
        "cross_entropy_epochs", "equal", "note"}` (`note` is `None` when equal);
        `None` without a baseline.
    """
    if not config.baseline:
        return None
    supcon = config.pretrain_epochs + config.classifier_epochs
    cross_entropy = config.effective_baseline_epochs()
    equal = supcon == cross_entropy
    note = None
    if not equal:
        note = (
            f"Unequal budgets: SupCon trained {supcon} epochs ({config.pretrain_epochs} "
            f"pretraining + {config.classifier_epochs} classifier), cross-entropy "
            f"{cross_entropy} epochs; the accuracies are not a like-for-like comparison."
        )
    return {
        "supcon_epochs": supcon,
        "pretrain_epochs": config.pretrain_epochs,
        "classifier_epochs": config.classifier_epochs,
        "cross_entropy_epochs": cross_entropy,
        "equal": equal,
        "note": note,
    }


def dataset_summary(inputs):
    """The dataset's JSON summary in `report.json` and in a dry run: name, kind, sizes
    (and, streamed, where the validation split came from)."""
    summary = {
        "name": inputs.name,
        "streamed": inputs.streamed,
        "num_classes": inputs.num_classes,
        "input_shape": list(inputs.input_shape),
        "train": inputs.num_train,
        "validation": inputs.num_validation,
        "test": inputs.num_test,
    }
    if inputs.streamed:
        summary["validation_source"] = inputs.validation_source
    return summary


def stage_summary(result):
    """A classifier stage's results in `report.json`: test and validation accuracy, test
    loss, and the epoch kept (`None` for stages without selection).

    Example:

    >>> stage_summary({"test_accuracy": 0.9, "validation_accuracy": 0.8, "test_loss": 0.3,
    ...                "history": {}})["selected_epoch"] is None
    True
    """
    keys = ("test_accuracy", "validation_accuracy", "test_loss")
    selection = {key: result.get(key) for key in ("selected_epoch", "epochs_trained")}
    return {**{key: result[key] for key in keys}, **selection}


def build_report(config, inputs, strategy, results, seconds):
    """The `report.json` contents: test results, configuration, data, timings, history.

    (The run adds `"retrieval"`, see `supcon_tf.evaluation.retrieval_section.evaluate_retrieval`.)
    """
    report = {
        "supcon": stage_summary(results["classifier"]),
        "method": config.method,
        "config": dataclasses.asdict(config),
        "dataset": dataset_summary(inputs),
        "timings": {
            **{f"{phase}_seconds": result["seconds"] for phase, result in results.items()},
            "total_seconds_this_invocation": seconds,
        },
        "history": {phase: result["history"] for phase, result in results.items()},
        "distribution": {
            "strategy": config.strategy,
            "num_replicas": strategy.num_replicas_in_sync,
            "global_batch_size": config.batch_size,
            "learning_rate": config.scaled_learning_rate(),
            "mixed_precision": config.mixed_precision,
        },
        "versions": {
            "keras": keras.__version__,
            "tensorflow": tf.__version__,
            "numpy": np.__version__,
        },
    }
    if config.baseline:
        report["cross_entropy"] = stage_summary(results["baseline"])
        report["budget"] = budget(config)
    if config.preset:
        report["preset"] = {
            "name": config.preset,
            "changes": preset_notes(config.preset, dataclasses.asdict(config)),
        }
    if inputs.streamed:
        # Unreadable images this process left out (with skip_corrupt_images).
        skipped = inputs.splits.skipped_images
        report["dataset"].update(skipped_images=list(skipped), num_skipped_images=len(skipped))
    if "hybrid" in results:
        # One-stage hybrid_weight x SupCon + CE, beside the two-stage "supcon" result.
        report["hybrid"] = stage_summary(results["hybrid"])
    return report
