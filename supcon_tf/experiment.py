"""The whole two-phase experiment as a plain-Python library call (no flags).

`run_experiment(ExperimentConfig(...))` runs, in `model_dir`:

1. `pretrain`: SupCon pretraining of the encoder (`SupConModel` + loss), saved as
   `encoder.keras`.
2. `classifier`: a linear head on the frozen encoder, saved as `classifier.keras`
   (images -> logits).
3. `baseline` (optional): the same encoder architecture trained end to end with
   cross-entropy, saved as `baseline.keras`.

Every phase logs its metrics to `logs/<phase>/history.csv` and, when the
`tensorboard` package is installed, to TensorBoard (`logs/<phase>`), checkpoints every epoch
(`keras.callbacks.BackupAndRestore` under `backup/<phase>`) and writes a completion
marker (`phases/<phase>.json`): running the same configuration again resumes an
interrupted phase at its last finished epoch and skips finished phases. Each epoch
sees the same shuffled batches whether or not the run was interrupted. The validation
split is monitored for model selection; the test split is evaluated once per model,
at the end. `report.json` holds the test accuracies, the configuration and timings.

Example:

>>> import tempfile
>>> config = ExperimentConfig(
...     pretrain_epochs=1, classifier_epochs=1, baseline=False, width_multiplier=0.25,
...     model_dir=tempfile.mkdtemp(), verbose=0, evaluate=False)
>>> report = run_experiment(config)
>>> sorted(report["supcon"])
['test_accuracy', 'test_loss', 'validation_accuracy']
"""

import dataclasses
import importlib.util
import json
import logging
import os
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from supcon_tf.augment import build_augmenter
from supcon_tf.data import load_dataset, make_dataset
from supcon_tf.distribute import (
    LEARNING_RATE_SCALINGS,
    MIXED_PRECISION_POLICIES,
    STRATEGIES,
    MidEpochBackupAndRestore,
    build_strategy,
    default_learning_rate_scaling,
    evaluate_classifier,
    fit_with_custom_loop,
    needs_custom_loop,
    per_replica_batch_size,
    scale_learning_rate,
    set_mixed_precision,
    synchronize_batch_norm,
    worker_model_dir,
)
from supcon_tf.encoders import build_encoder
from supcon_tf.evaluation import KNNMonitor, evaluate_run
from supcon_tf.layers import ProjectionHead
from supcon_tf.losses import SupervisedContrastiveLoss
from supcon_tf.models import (
    SupConModel,
    build_cross_entropy_classifier,
    build_linear_classifier,
)
from supcon_tf.optimizers import build_optimizer
from supcon_tf.schedules import SCHEDULES, build_schedule

PHASES = ("pretrain", "classifier", "baseline")
METHODS = ("supcon", "simclr")

# Configuration fields that may change between an interrupted run and its resumption
# (the batch size is global, so a run may resume on other devices or another strategy).
_RESUMABLE_FIELDS = (
    "model_dir",
    "verbose",
    "evaluate",
    "knn_monitor",
    "knn_monitor_every",
    "strategy",
    "tpu",
    "tpu_zone",
    "gcp_project",
)


@dataclasses.dataclass
class ExperimentConfig:
    """Every setting of a two-phase SupCon experiment (the `supcon-train` flags).

    The defaults train on digits in a few minutes on 2 CPU cores. They were chosen by
    validation accuracy of the SupCon classifier among batch sizes 64 / 128,
    30 / 50 pretraining epochs, 10 / 20 / 30 classifier epochs and the `"none"` /
    `"translate"` augmentations (see benchmarks/RESULTS.md).

    Attributes:
        dataset: dataset name or path (see `supcon_tf.data.load_dataset`).
        data_dir: folder with local copies of named datasets.
        validation_fraction: share of the training data held out for validation.
        encoder: encoder name (see `supcon_tf.encoders.ENCODERS`).
        width_multiplier: encoder width multiplier.
        stem: ResNet stem, `"cifar"` or `"imagenet"`.
        method: `"supcon"` (labels) or `"simclr"` (no labels) pretraining.
        views: augmented views per image in pretraining.
        batch_size: images per batch (each gives `views` views in pretraining). Global:
            all replicas together; each of R replicas gets `batch_size / R` images, and
            the contrastive loss still contrasts the whole global batch.
        pretrain_epochs: epochs of contrastive pretraining.
        classifier_epochs: epochs of the classifier on the frozen encoder.
        baseline_epochs: epochs of the cross-entropy baseline (`None`: the same as
            `pretrain_epochs + classifier_epochs`, the SupCon budget).
        temperature: loss temperature.
        projection_units: embedding width of the projection head.
        projection_batch_norm: BatchNorm in the projection head's hidden layer.
        optimizer: optimizer name (see `supcon_tf.optimizers.build_optimizer`).
        learning_rate: (peak) learning rate of every phase, for a global batch of 256
            when `learning_rate_scaling` scales it (see below).
        learning_rate_scaling: how the learning rate follows the global batch size:
            `"auto"` (the optimizer's rule: linear `lr x batch / 256` for SGD/LARS,
            square root for LAMB, none for Adam/AdamW/RMSprop), `"linear"`, `"sqrt"`
            or `"none"` (use `learning_rate` as given; the presets, whose published
            learning rates are already for their batch size, use this).
        weight_decay: weight decay (0 disables it; decoupled for Keras' optimizers,
            L2 inside the trust ratio for LARS).
        momentum: momentum of LARS, SGD and RMSprop.
        lr_schedule: `"constant"` or `"cosine"` (see `supcon_tf.schedules.build_schedule`),
            applied per phase over that phase's epochs.
        warmup_epochs: linear warmup epochs at the start of each phase.
        final_learning_rate: the floor the cosine schedule ends at (scaled with the
            learning rate by `learning_rate_scaling`).
        preset: name of the `supcon_tf.presets` preset the values came from (a record).
        augment: augmentation policy (see `supcon_tf.augment.build_augmenter`).
        augment_magnitude: RandAugment magnitude in [0, 10] (randaugment policies).
        augment_strength: colour-jitter strength `s` (simaugment, stacked_randaugment).
        classifier_hidden_units: optional hidden layer of the classifier heads.
        classifier_dropout: dropout of the classifier heads.
        baseline: also train the cross-entropy baseline.
        strategy: `tf.distribute` strategy: `"default"` (one device), `"mirrored"`
            (local GPUs), `"multi_worker"` (machines listed in `TF_CONFIG`) or `"tpu"`.
        tpu, tpu_zone, gcp_project: the TPU to use with `strategy="tpu"` (name or
            address; `None` reads `TPU_NAME`), its zone and Google Cloud project.
        mixed_precision: `"none"`, `"mixed_float16"` (with loss scaling) or
            `"mixed_bfloat16"`; the losses are computed in float32.
        sync_batchnorm: BatchNorm layers use the statistics of the global batch
            (synchronised across replicas) instead of each replica's shard.
        backup_steps: back up the training state every this many steps, so that a
            killed run resumes mid-epoch at its last backup (0: at the end of every
            epoch).
        model_dir: output folder (checkpoints, logs, models, report.json).
        seed: seed of the validation split, weights, shuffling and augmentation.
        verbose: Keras progress-bar mode (0 silent, 1 bars, 2 one line per epoch).
        evaluate: at the end, run `supcon_tf.evaluation.evaluate_run` (ECE, per-class
            accuracy, kNN, alignment/uniformity, t-SNE, corruptions; report.md and plots).
        knn_monitor: log the weighted kNN accuracy of the encoder on the validation split
            (`val_knn_accuracy`) during pretraining (`supcon_tf.evaluation.KNNMonitor`).
        knn_monitor_every: epochs between two kNN measurements.

    Example:

    >>> config = ExperimentConfig(dataset="digits", pretrain_epochs=2, batch_size=32)
    >>> config.method, config.model_dir
    ('supcon', 'runs/supcon')
    """

    dataset: str = "digits"
    data_dir: str | None = None
    validation_fraction: float = 0.1
    encoder: str = "small_cnn"
    width_multiplier: float = 1.0
    stem: str = "cifar"
    method: str = "supcon"
    views: int = 2
    batch_size: int = 64
    pretrain_epochs: int = 30
    classifier_epochs: int = 20
    baseline_epochs: int | None = None
    temperature: float = 0.1
    projection_units: int = 128
    projection_batch_norm: bool = False
    optimizer: str = "adam"
    learning_rate: float = 1e-3
    weight_decay: float = 0.0
    momentum: float = 0.9
    lr_schedule: str = "constant"
    warmup_epochs: int = 0
    final_learning_rate: float = 0.0
    preset: str | None = None
    augment: str = "none"
    augment_magnitude: float = 9.0
    augment_strength: float = 1.0
    classifier_hidden_units: int | None = None
    classifier_dropout: float = 0.0
    baseline: bool = True
    learning_rate_scaling: str = "auto"
    strategy: str = "default"
    tpu: str | None = None
    tpu_zone: str | None = None
    gcp_project: str | None = None
    mixed_precision: str = "none"
    sync_batchnorm: bool = False
    backup_steps: int = 0
    model_dir: str = "runs/supcon"
    seed: int = 0
    verbose: int = 1
    evaluate: bool = True
    knn_monitor: bool = True
    knn_monitor_every: int = 5

    def __post_init__(self):
        for name in ("views", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"`{name}` must be a positive integer, got {value!r}.")
        for name in ("pretrain_epochs", "classifier_epochs", "knn_monitor_every"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"`{name}` must be a positive integer, got {value!r}.")
        if self.baseline_epochs is not None and (
            not isinstance(self.baseline_epochs, int) or self.baseline_epochs < 1
        ):
            raise ValueError(
                f"`baseline_epochs` must be a positive integer or None, got {self.baseline_epochs!r}."
            )
        if self.method not in METHODS:
            raise ValueError(f"Unknown `method` {self.method!r}. Expected one of {METHODS}.")
        if self.method == "simclr" and self.views < 2:
            raise ValueError(
                f"SimCLR pretraining needs at least 2 views (its only positives), got views={self.views}."
            )
        if not self.temperature > 0:
            raise ValueError(f"`temperature` must be positive, got {self.temperature!r}.")
        if not self.learning_rate > 0:
            raise ValueError(f"`learning_rate` must be positive, got {self.learning_rate!r}.")
        if self.lr_schedule not in SCHEDULES:
            raise ValueError(
                f"Unknown `lr_schedule` {self.lr_schedule!r}. Expected one of {SCHEDULES}."
            )
        if isinstance(self.warmup_epochs, bool) or not isinstance(self.warmup_epochs, int):
            raise ValueError(f"`warmup_epochs` must be an integer, got {self.warmup_epochs!r}.")
        if self.warmup_epochs < 0:
            raise ValueError(f"`warmup_epochs` must be >= 0, got {self.warmup_epochs}.")
        if not 0 <= self.final_learning_rate <= self.learning_rate:
            raise ValueError(
                f"`final_learning_rate` must be in [0, learning_rate={self.learning_rate}], "
                f"got {self.final_learning_rate!r}."
            )
        if not self.model_dir:
            raise ValueError("`model_dir` must be a folder path, got an empty string.")
        self._check_distribution()

    def _check_distribution(self):
        if self.strategy not in STRATEGIES:
            raise ValueError(f"Unknown `strategy` {self.strategy!r}. Expected one of {STRATEGIES}.")
        tpu_fields = [name for name in ("tpu", "tpu_zone", "gcp_project") if getattr(self, name)]
        if tpu_fields and self.strategy != "tpu":
            raise ValueError(
                f"{', '.join(tpu_fields)} only apply to strategy='tpu', got {self.strategy!r}."
            )
        if self.mixed_precision not in MIXED_PRECISION_POLICIES:
            raise ValueError(
                f"Unknown `mixed_precision` {self.mixed_precision!r}. Expected one of "
                f"{MIXED_PRECISION_POLICIES}."
            )
        scalings = ("auto", *LEARNING_RATE_SCALINGS)
        if self.learning_rate_scaling not in scalings:
            raise ValueError(
                f"Unknown `learning_rate_scaling` {self.learning_rate_scaling!r}. Expected one "
                f"of {scalings}."
            )
        if (
            isinstance(self.backup_steps, bool)
            or not isinstance(self.backup_steps, int)
            or self.backup_steps < 0
        ):
            raise ValueError(
                f"`backup_steps` must be a non-negative integer (0: every epoch), got "
                f"{self.backup_steps!r}."
            )

    def scaled_learning_rate(self):
        """The learning rate of every phase after scaling to the global batch size."""
        rule = self.learning_rate_scaling
        if rule == "auto":
            rule = default_learning_rate_scaling(self.optimizer)
        return scale_learning_rate(self.learning_rate, self.batch_size, rule)


def _build_augmenter(config):
    return build_augmenter(
        config.augment,
        seed=config.seed,
        magnitude=config.augment_magnitude,
        strength=config.augment_strength,
    )


def _phase_paths(model_dir, phase):
    root = Path(model_dir)
    return {
        "backup": root / "backup" / phase,
        "logs": root / "logs" / phase,
        "marker": root / "phases" / f"{phase}.json",
    }


def _resume_position(backup_dir, backup_steps):
    """`(epoch, steps done in it)` where the phase's backup resumes (`(0, 0)` if fresh).

    A mid-epoch backup (`backup_steps > 0`) records the index of the last batch done.
    """
    for name in ("training_metadata.json", "training_metadata.json.bkp"):
        path = Path(backup_dir) / name
        if path.is_file() and (Path(backup_dir) / "latest.weights.h5").is_file():
            metadata = json.loads(path.read_text())
            steps_done = int(metadata.get("batch", -1)) + 1 if backup_steps else 0
            return int(metadata["epoch"]), steps_done
    return 0, 0


def _tensorboard_available():
    """TensorBoard logging needs the `tensorboard` package (a TensorFlow extra)."""
    if importlib.util.find_spec("tensorboard") is None:
        logging.warning(
            "The tensorboard package is not installed: logging metrics to "
            "logs/<phase>/history.csv only (pip install tensorboard for TensorBoard logs)."
        )
        return False
    return True


def _fit(model, config, phase, x, y, epochs, augmenter=None, validation=None, callbacks=()):
    """Fits one phase with per-epoch backup, TensorBoard logs and exact resumption."""
    paths = _phase_paths(config.model_dir, phase)
    initial_epoch, steps_done = _resume_position(paths["backup"], config.backup_steps)
    initial_epoch = min(initial_epoch, epochs)
    steps_per_epoch = len(x) // config.batch_size
    if steps_per_epoch < 1:
        raise ValueError(
            f"The batch size {config.batch_size} exceeds the {len(x)} training images; "
            "lower --batch_size."
        )
    history = {}
    if initial_epoch < epochs:
        stream = make_dataset(
            x,
            y,
            batch_size=config.batch_size,
            shuffle=True,
            seed=config.seed,
            augment=augmenter,
            drop_remainder=True,
            epochs=epochs,
            initial_epoch=initial_epoch,
        )
        # Resuming mid-epoch: skip the batches done before the backup; the backup
        # callback ends training at the uninterrupted run's last step.
        stream = stream.skip(steps_done)
        validation_data = None
        if validation is not None and len(validation[0]):
            validation_data = make_dataset(*validation, batch_size=config.batch_size)
        paths["logs"].mkdir(parents=True, exist_ok=True)
        # Extra callbacks (e.g. KNNMonitor) come before the loggers, which then see their
        # logs; an epoch's log row is written before its checkpoint.
        callbacks = [
            *callbacks,
            keras.callbacks.CSVLogger(str(paths["logs"] / "history.csv"), append=True),
            MidEpochBackupAndRestore(str(paths["backup"]), config.backup_steps or "epoch"),
        ]
        custom_loop = needs_custom_loop(tf.distribute.get_strategy())
        if not custom_loop and _tensorboard_available():
            callbacks.append(keras.callbacks.TensorBoard(str(paths["logs"])))
        # Keras 3's fit does not run under MultiWorkerMirroredStrategy (#20585).
        if custom_loop:
            result = fit_with_custom_loop(
                model,
                stream,
                epochs,
                steps_per_epoch,
                callbacks=callbacks,
                initial_epoch=initial_epoch,
                validation_data=validation_data,
            )
        else:
            result = model.fit(
                stream,
                epochs=epochs,
                steps_per_epoch=steps_per_epoch,
                validation_data=validation_data,
                callbacks=callbacks,
                shuffle=False,
                verbose=config.verbose,
            )
        history = {
            key: [float(value) for value in values] for key, values in result.history.items()
        }
    return history, initial_epoch


def _knn_monitors(encoder, data, config, max_samples=5000):
    """`[KNNMonitor]` on (seeded subsets of) the training and validation splits, or `[]`."""
    if not config.knn_monitor or len(data.x_val) == 0:
        return []
    rng = np.random.default_rng(config.seed)
    bank = rng.permutation(len(data.x_train))[:max_samples]
    queries = rng.permutation(len(data.x_val))[:max_samples]
    return [
        KNNMonitor(
            encoder,
            (data.x_train[bank], data.y_train[bank]),
            (data.x_val[queries], data.y_val[queries]),
            every_n_epochs=config.knn_monitor_every,
            batch_size=config.batch_size,
        )
    ]


def _evaluate(model, config, x, y):
    if len(x) == 0:
        return None, None
    if needs_custom_loop(tf.distribute.get_strategy()):
        return evaluate_classifier(model, make_dataset(x, y, batch_size=config.batch_size))
    loss, accuracy = model.evaluate(
        make_dataset(x, y, batch_size=config.batch_size), verbose=0, return_dict=False
    )
    return float(loss), float(accuracy)


def _build_optimizer(config, epochs, num_examples):
    """The phase's optimizer, its learning rate following `config.lr_schedule`."""
    steps_per_epoch = max(num_examples // config.batch_size, 1)
    peak = config.scaled_learning_rate()
    learning_rate = build_schedule(
        config.lr_schedule,
        peak,
        total_steps=epochs * steps_per_epoch,
        warmup_steps=min(config.warmup_epochs, epochs) * steps_per_epoch,
        final_learning_rate=config.final_learning_rate * peak / config.learning_rate,
    )
    return build_optimizer(
        config.optimizer,
        learning_rate=learning_rate,
        weight_decay=config.weight_decay,
        momentum=config.momentum,
    )


def _compile_classifier(model, config, epochs, num_examples):
    model.compile(
        optimizer=_build_optimizer(config, epochs, num_examples),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
    )


def _write_json(path, payload):
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(path.suffix + ".tmp")
    temporary.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")
    os.replace(temporary, path)


def _check_same_config(config, model_dir):
    """Refuses to resume a run made with a different configuration."""
    path = model_dir / "config.json"
    current = dataclasses.asdict(config)
    if path.is_file():
        previous = json.loads(path.read_text())
        differences = sorted(
            key
            for key in set(previous) | set(current)
            if key not in _RESUMABLE_FIELDS and previous.get(key) != current.get(key)
        )
        if differences:
            details = ", ".join(
                f"{key}: {previous.get(key)!r} -> {current.get(key)!r}" for key in differences
            )
            raise ValueError(
                f"{model_dir} holds a run with a different configuration ({details}); "
                "use a new model_dir, or delete it to start over."
            )
    _write_json(path, current)


def _run_phase(config, phase, train_and_save):
    """Runs `train_and_save()` unless the phase's completion marker exists."""
    marker = _phase_paths(config.model_dir, phase)["marker"]
    if marker.is_file():
        return json.loads(marker.read_text()), True
    keras.utils.set_random_seed(config.seed + PHASES.index(phase))
    start = time.perf_counter()
    result = train_and_save()
    result["seconds"] = time.perf_counter() - start
    _write_json(marker, result)
    return result, False


def run_experiment(config):
    """Runs SupCon pretraining, the frozen-encoder classifier and the baseline.

    Args:
        config: an `ExperimentConfig`.

    Returns:
        The report dict also written to `<model_dir>/report.json`:
        `{"supcon": {"test_accuracy", "validation_accuracy", "test_loss"}` (the
        frozen-encoder classifier after SupCon or SimCLR pretraining, see "method"),
        "cross_entropy": {...} (when `config.baseline`), "config": {...},
        "timings": {...}, "dataset": {...}, "history": {...}}`.

    Example:

    >>> ExperimentConfig(views=0)
    Traceback (most recent call last):
    ...
    ValueError: `views` must be a positive integer, got 0.
    """
    if not isinstance(config, ExperimentConfig):
        raise ValueError(f"`config` must be an ExperimentConfig, got {type(config).__name__}.")
    # The strategy comes first: a multi-worker strategy must exist before other TF work.
    strategy = build_strategy(config.strategy, config.tpu, config.tpu_zone, config.gcp_project)
    per_replica_batch_size(config.batch_size, strategy)
    # Workers other than the chief write their files into a folder of their own.
    config = dataclasses.replace(
        config, model_dir=str(worker_model_dir(config.model_dir, strategy))
    )
    model_dir = Path(config.model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    _check_same_config(config, model_dir)
    start = time.perf_counter()
    data = load_dataset(
        config.dataset, config.data_dir, config.validation_fraction, seed=config.seed
    )
    # Fail on a bad policy name before any training.
    _build_augmenter(config)
    encoder_path = model_dir / "encoder.keras"
    validation = (data.x_val, data.y_val)

    def new_encoder():
        return build_encoder(config.encoder, data.input_shape, config.width_multiplier, config.stem)

    def pretrain():
        model = SupConModel(
            new_encoder(),
            projection_head=ProjectionHead(
                output_units=config.projection_units, batch_norm=config.projection_batch_norm
            ),
            augmenter=_build_augmenter(config),
            num_views=config.views,
        )
        model.compile(
            optimizer=_build_optimizer(config, config.pretrain_epochs, len(data.x_train)),
            loss=SupervisedContrastiveLoss(temperature=config.temperature),
        )
        synchronize_batch_norm(model, config.sync_batchnorm)
        model(data.x_train[:2])
        labels = data.y_train if config.method == "supcon" else None
        history, initial_epoch = _fit(
            model,
            config,
            "pretrain",
            data.x_train,
            labels,
            config.pretrain_epochs,
            callbacks=_knn_monitors(model.encoder, data, config),
        )
        model.encoder.save(encoder_path)
        return {"history": history, "resumed_from_epoch": initial_epoch}

    def classify(phase, model, epochs, path):
        _compile_classifier(model, config, epochs, len(data.x_train))
        model(data.x_train[:2])
        history, initial_epoch = _fit(
            model,
            config,
            phase,
            data.x_train,
            data.y_train,
            epochs,
            augmenter=_build_augmenter(config),
            validation=validation,
        )
        model.save(model_dir / path)
        _, validation_accuracy = _evaluate(model, config, *validation)
        test_loss, test_accuracy = _evaluate(model, config, data.x_test, data.y_test)
        return {
            "test_accuracy": test_accuracy,
            "test_loss": test_loss,
            "validation_accuracy": validation_accuracy,
            "history": history,
            "resumed_from_epoch": initial_epoch,
        }

    def train_classifier():
        encoder = keras.saving.load_model(encoder_path)
        model = build_linear_classifier(
            encoder,
            data.num_classes,
            hidden_units=config.classifier_hidden_units,
            dropout=config.classifier_dropout,
        )
        return classify("classifier", model, config.classifier_epochs, "classifier.keras")

    def train_baseline():
        model = build_cross_entropy_classifier(
            new_encoder(),
            data.num_classes,
            hidden_units=config.classifier_hidden_units,
            dropout=config.classifier_dropout,
        )
        synchronize_batch_norm(model, config.sync_batchnorm)
        epochs = config.baseline_epochs or config.pretrain_epochs + config.classifier_epochs
        return classify("baseline", model, epochs, "baseline.keras")

    # Models and optimizers are built under the strategy's scope; the global policy is
    # restored afterwards so that the call leaves no global state behind.
    previous_policy = keras.mixed_precision.global_policy()
    set_mixed_precision(config.mixed_precision)
    try:
        with strategy.scope():
            results = {"pretrain": _run_phase(config, "pretrain", pretrain)[0]}
            results["classifier"] = _run_phase(config, "classifier", train_classifier)[0]
            if config.baseline:
                results["baseline"] = _run_phase(config, "baseline", train_baseline)[0]
    finally:
        keras.mixed_precision.set_global_policy(previous_policy)

    def summary(result):
        keys = ("test_accuracy", "validation_accuracy", "test_loss")
        return {key: result[key] for key in keys}

    report = {
        "supcon": summary(results["classifier"]),
        "method": config.method,
        "config": dataclasses.asdict(config),
        "dataset": {
            "name": data.name,
            "num_classes": data.num_classes,
            "input_shape": list(data.input_shape),
            "train": len(data.x_train),
            "validation": len(data.x_val),
            "test": len(data.x_test),
        },
        "timings": {
            **{f"{phase}_seconds": result["seconds"] for phase, result in results.items()},
            "total_seconds_this_invocation": time.perf_counter() - start,
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
        report["cross_entropy"] = summary(results["baseline"])
    _write_json(model_dir / "report.json", report)
    if config.evaluate:
        # Adds "evaluation" to report.json and writes report.md and plots/.
        report["evaluation"] = evaluate_run(model_dir, data, seed=config.seed)
    return report
