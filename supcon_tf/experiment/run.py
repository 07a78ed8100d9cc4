"""`run_experiment`: the method, in order: check, claim the folder, pretrain, classify, compare.

1. The configuration was checked when it was built (`ExperimentConfig`).
2. The run folder is read, never written: a different configuration there is refused,
   and a finished run says where its report is and stops (unless `reevaluate`).
3. Preflight (`supcon_tf.experiment.preflight`): paths, data, image sizes and every
   stage's batch size, in seconds. `dry_run` stops here.
4. The folder is claimed (`run.lock`, `config.json`, the caller's records such as
   `flags.json`); nothing was written before.
5. The stages (`supcon_tf.experiment.stages`): pretraining, the classifier on the
   frozen encoder, the cross-entropy baseline, the one-stage hybrid and, with the
   class-disjoint split, a linear probe of each arm's frozen encoder on the unseen classes.
6. `report.json` (`supcon_tf.experiment.report`), with the budgets of the two arms and
   the retrieval section (`supcon_tf.evaluation.retrieval_section.evaluate_retrieval`: the test images
   of all classes, or of the unseen ones), `report.md`, then the end-of-run evaluation.
"""

import contextlib
import dataclasses
import logging
import time

import tensorflow as tf

from supcon_tf.data.streaming import input_error_message
from supcon_tf.errors import DataError, UsageError
from supcon_tf.evaluation import evaluate_run, write_report_md
from supcon_tf.evaluation.retrieval_section import evaluate_retrieval
from supcon_tf.experiment.config import RESUMABLE_FIELDS, ExperimentConfig
from supcon_tf.experiment.inputs import unseen_inputs
from supcon_tf.experiment.preflight import preflight
from supcon_tf.experiment.report import build_report, stage_summary
from supcon_tf.experiment.runs import REPORT_FILE, RunDirectory, stop_on_sigterm
from supcon_tf.experiment.stages import UNSEEN_PROBES, Stages
from supcon_tf.files import join
from supcon_tf.training.distribute import (
    build_strategy,
    per_replica_batch_size,
    training_scope,
    worker_model_dir,
)


def run_experiment(config, records=None, on_preflight=None):
    """Runs SupCon pretraining, the frozen-encoder classifier and the baseline.

    Args:
        config: an `ExperimentConfig`.
        records: optional `{file name: JSON-compatible payload}` written into
            `model_dir` beside `config.json` once preflight passed (the command line
            writes `flags.json` so).
        on_preflight: optional function called with the `Preflight` once preflight
            passed, before its notes and before anything is written (the command line
            states its settings so: after a mistake in the data, only the error shows).

    Returns:
        The report dict also written to `<model_dir>/report.json`:
        `{"supcon": {"test_accuracy", "validation_accuracy", "test_loss"}` (the
        frozen-encoder classifier after SupCon or SimCLR pretraining, see "method"),
        "cross_entropy": {...} and "budget": {...} (when `config.baseline`),
        "config": {...}, "timings": {...}, "dataset": {...}, "history": {...}}`.
        A finished run's stored report (see the module docstring); with `dry_run`,
        preflight's summary (`{"dry_run": True, "dataset": ..., "batch_sizes": ...}`).

    Raises:
        UsageError, DataError: a mistake found before anything was written.

    Example:

    >>> ExperimentConfig(views=0)
    Traceback (most recent call last):
    ...
    supcon_tf.errors.UsageError: `views` must be an integer >= 1, got 0.
    """
    if not isinstance(config, ExperimentConfig):
        raise UsageError(
            f"`config` must be an ExperimentConfig, got {type(config).__name__}; build one "
            "with ExperimentConfig(...)."
        )
    if config.deterministic:
        tf.config.experimental.enable_op_determinism()
    strategy, config = _distribute(config)
    run = RunDirectory(config.model_dir)
    defaults = _defaults()
    run.check_config(
        dataclasses.asdict(config), resumable_fields=RESUMABLE_FIELDS, defaults=defaults
    )
    finished = run.complete_report()
    if finished is not None and _is_complete(finished, config) and not config.dry_run:
        logging.warning(
            "Already complete: report at %s (pass --reevaluate to evaluate it again).",
            join(run.root, REPORT_FILE),
        )
        return finished
    checked = preflight(config)
    _check_unseen_batch_size(config, checked.inputs)
    if on_preflight is not None:
        on_preflight(checked)
    for note in checked.notes:
        logging.warning("%s", note)
    if config.dry_run:
        return {"dry_run": True, **checked.summary()}
    with run.lock(), stop_on_sigterm() as stop_requested:
        run.record_config(
            dataclasses.asdict(config),
            resumable_fields=RESUMABLE_FIELDS,
            records=records,
            defaults=defaults,
        )
        start = time.perf_counter()
        stages = Stages(config, checked.inputs, run, stop_requested)
        with training_scope(strategy, config.mixed_precision), _input_errors_as_data_errors():
            results = {"pretrain": stages.run("pretrain", stages.pretrain)}
            results["classifier"] = stages.run("classifier", stages.train_classifier)
            if config.baseline:
                results["baseline"] = stages.run("baseline", stages.train_baseline)
            if config.method == "hybrid":
                results["hybrid"] = stages.run("hybrid", stages.train_hybrid)
            if unseen_inputs(checked.inputs) is not None:
                for arm in ("supcon", "cross_entropy") if config.baseline else ("supcon",):
                    phase = UNSEEN_PROBES[arm]
                    results[phase] = stages.run(
                        phase, lambda arm=arm: stages.train_unseen_probe(arm)
                    )
        report = build_report(
            config, checked.inputs, strategy, results, time.perf_counter() - start
        )
        report["retrieval"] = _retrieval(config, checked.inputs, run, results)
        run.write_report(report)
        write_report_md(report, run.root)
        if report.get("budget") and report["budget"]["note"]:
            logging.warning("%s", report["budget"]["note"])
        _evaluate(config, checked.inputs, run, report)
    return report


def _check_unseen_batch_size(config, inputs):
    """`DataError` when the unseen classes' probe batch exceeds their training images."""
    unseen = unseen_inputs(inputs)
    batch_size = config.classifier_stage().batch_size
    if unseen is not None and batch_size > unseen.num_train:
        flag = "classifier_batch_size" if config.classifier_batch_size else "batch_size"
        raise DataError(
            f"The linear probe on the unseen classes trains on their {unseen.num_train} "
            f"training images of {inputs.name}, fewer than its batch size {batch_size}; set "
            f"--{flag} to at most {unseen.num_train}, or list more --unseen_classes."
        )


def _retrieval(config, inputs, run, results):
    """report.json's "retrieval": the run's encoders on the evaluated classes' test images."""
    unseen = unseen_inputs(inputs)
    evaluated = unseen or inputs
    probes = None
    if unseen is not None:
        probes = {
            arm: stage_summary(results[phase])
            for arm, phase in UNSEEN_PROBES.items()
            if phase in results
        }
    return evaluate_retrieval(
        run.root,
        evaluated if evaluated.streamed else evaluated.splits,
        batch_size=config.classifier_stage().batch_size,
        split=config.split,
        linear_probe=probes,
    )


def _is_complete(report, config):
    """Whether a stored report holds everything `config` asks for."""
    return not config.reevaluate and (not config.evaluate or "evaluation" in report)


def _evaluate(config, inputs, run, report):
    """The end-of-run evaluation (adds "evaluation" to report.json, writes report.md)."""
    if not config.evaluate:
        return
    # A streamed dataset is evaluated batch by batch, through the run's evaluation crop.
    data = inputs if inputs.streamed else inputs.splits
    report["evaluation"] = evaluate_run(
        run.root, data, seed=config.seed, batch_size=config.classifier_stage().batch_size
    )


@contextlib.contextmanager
def _input_errors_as_data_errors():
    """Re-raises a streamed dataset's bad input (an error naming the file) as `DataError`."""
    try:
        yield
    except tf.errors.InvalidArgumentError as error:
        message = input_error_message(error)
        if message is None:
            raise
        raise DataError(message) from error


def _distribute(config):
    """The run's `tf.distribute` strategy, and `config` with this worker's `model_dir`."""
    # The strategy comes first: a multi-worker strategy must exist before other TF work.
    strategy = build_strategy(config.strategy, config.tpu, config.tpu_zone, config.gcp_project)
    try:
        per_replica_batch_size(config.batch_size, strategy)
        per_replica_batch_size(config.classifier_stage().batch_size, strategy)
    except UsageError:
        raise
    except ValueError as error:
        raise UsageError(str(error)) from error
    # Workers other than the chief write their files into a folder of their own.
    model_dir = worker_model_dir(config.model_dir, strategy)
    return strategy, dataclasses.replace(config, model_dir=model_dir)


def _defaults():
    """The options' default values (a run folder written before an option existed lacks it)."""
    return {
        field.name: field.default
        for field in dataclasses.fields(ExperimentConfig)
        if field.default is not dataclasses.MISSING
    }
