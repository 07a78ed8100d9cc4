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
(`supcon_tf.checkpoints.TrainingCheckpoint` under `backup/<phase>`) and writes a completion
marker (`phases/<phase>.json`): running the same configuration again resumes an
interrupted phase exactly where its last checkpoint left it (mid-epoch with
`backup_steps`) and skips finished phases. Each epoch sees the same shuffled batches
whether or not the run was interrupted. One process at a time trains in a folder
(`run.lock`); SIGTERM saves at the next step and raises
`supcon_tf.checkpoints.StopRequested`; a NaN or Inf loss raises
`supcon_tf.checkpoints.NonFiniteTrainingError` (see docs/reliability.md). The validation
split is monitored for model selection; the test split is evaluated once per model,
at the end. `report.json` holds the test accuracies, the configuration and timings.

The classifier stage trains with a recipe of its own (`classifier_optimizer`,
`classifier_learning_rate`, ...: `ExperimentConfig.classifier_stage`), as the
reference implementations do. Both classifier phases (the SupCon classifier and the
baseline) keep their best validation epoch (the lowest validation loss by default,
`best_epoch_monitor`) by the same rule (`supcon_tf.selection.BestEpoch`), and may
stop early (`early_stopping_patience`); the chosen epoch is in `report.json`
(`selected_epoch`).

Where to look: the run folder and its resumption rules (configuration check,
markers, backups) are `supcon_tf.runs`; training and evaluating one phase is
`supcon_tf.phases`; strategies and precision are `supcon_tf.distribute`.

Example:

>>> import tempfile
>>> config = ExperimentConfig(
...     pretrain_epochs=1, classifier_epochs=1, baseline=False, width_multiplier=0.25,
...     model_dir=tempfile.mkdtemp(), verbose=0, evaluate=False)
>>> report = run_experiment(config)
>>> sorted(report["supcon"])
['epochs_trained', 'selected_epoch', 'test_accuracy', 'test_loss', 'validation_accuracy']
"""

import contextlib
import dataclasses
import logging
import time

import keras
import numpy as np
import tensorflow as tf

from supcon_tf.augment import build_augmenter
from supcon_tf.data.streaming import check_fraction, input_error_message
from supcon_tf.distribute import (
    LEARNING_RATE_SCALINGS,
    MIXED_PRECISION_POLICIES,
    STRATEGIES,
    build_strategy,
    default_learning_rate_scaling,
    per_replica_batch_size,
    scale_learning_rate,
    synchronize_batch_norm,
    training_scope,
    worker_model_dir,
)
from supcon_tf.encoders import build_encoder
from supcon_tf.evaluation import KNNMonitor, evaluate_run
from supcon_tf.files import join
from supcon_tf.gradient_cache import check_chunk_size
from supcon_tf.inputs import open_inputs
from supcon_tf.layers import ProjectionHead
from supcon_tf.losses import NPairsLoss, SupervisedContrastiveLoss
from supcon_tf.models import (
    HIDDEN_ACTIVATIONS,
    HybridSupConModel,
    SupConModel,
    build_cross_entropy_classifier,
    build_linear_classifier,
)
from supcon_tf.optimizers import OPTIMIZERS
from supcon_tf.phases import build_phase_optimizer, compile_classifier, evaluate_split, fit_phase
from supcon_tf.runs import RunDirectory, stop_on_sigterm
from supcon_tf.schedules import SCHEDULES
from supcon_tf.selection import MONITORS, BestEpoch

PHASES = ("pretrain", "classifier", "baseline", "hybrid")
METHODS = ("supcon", "simclr", "hybrid")
PROJECTION_HEADS = ("mlp", "none")
LOSSES = ("supcon", "npairs")

# The options of `SupervisedContrastiveLoss` that `loss="npairs"` does not have, with
# the default it needs.
SUPCON_ONLY_OPTIONS = {
    "base_temperature": None,
    "contrast_mode": "all",
    "summation": "out",
    "denominator_mode": "all",
    "positives_cap": None,
    "implementation": "auto",
    "block_size": None,
}

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
    "deterministic",
    "implementation",
    "block_size",
)


@dataclasses.dataclass
class ExperimentConfig:
    """Every setting of a two-phase SupCon experiment (the `supcon-train` flags).

    The defaults train on digits in a few minutes on 2 CPU cores. They were chosen by
    validation accuracy of the SupCon classifier among batch sizes 64 / 128,
    30 / 50 pretraining epochs, 10 / 20 / 30 classifier epochs and the `"none"` /
    `"translate"` augmentations; the classifier stage's (Adam 1e-2, constant,
    standardised features, best validation epoch) by validation accuracy and ECE among
    nine linear-stage recipes, on digits (three seeds) and a CIFAR-10 subset; the best
    epoch by validation loss rather than accuracy, by validation ECE at equal accuracy
    (see benchmarks/RESULTS.md).

    Attributes:
        dataset: dataset name or path: a named dataset, `.npz` file or image folder
            held in RAM (see `supcon_tf.data.load_dataset`), or a streamed one: an
            image folder with `image_size`, a TFRecord shard folder or `"tfds:<name>"`
            (see `supcon_tf.data.open_streaming_dataset` and `supcon_tf.inputs`).
        data_dir: folder with local copies of named datasets (and TFDS's data folder).
        validation_fraction: share of the training data held out for validation.
        image_size: side of the square crops of a streamed dataset (random-resized
            crops per view for training, a central crop for evaluation); `None` for
            datasets held in RAM, which keep their own size.
        crop_min_area: smallest training crop of a streamed dataset, as a fraction of
            the image area; 1.0 trains on whole images; `None`: 0.08 at 96 px and
            above, 0.2 below (see `supcon_tf.data.streaming.crop_settings`).
        center_crop_fraction: evaluation crop of a streamed dataset, as a fraction of
            the shorter side; `None`: 0.875 at 96 px and above, 1.0 below.
        skip_corrupt_images: leave unreadable images of a streamed dataset out (listed
            in `report.json` under `dataset.skipped_images`) instead of stopping with
            an error naming the file.
        encoder: encoder name (see `supcon_tf.encoders.ENCODERS`).
        width_multiplier: encoder width multiplier.
        stem: ResNet stem, `"cifar"` or `"imagenet"`.
        method: `"supcon"` (labels) or `"simclr"` (no labels) pretraining; `"hybrid"`:
            SupCon pretraining and its frozen-encoder classifier (the two-stage
            result) and, beside it, a one-stage `HybridSupConModel` trained on
            `hybrid_weight x SupCon + cross-entropy` of a linear head for
            `pretrain_epochs` (report.json "hybrid").
        hybrid_weight: weight `lambda` of the SupCon term of `method="hybrid"`.
        views: augmented views per image in pretraining.
        batch_size: images per batch (each gives `views` views in pretraining). Global:
            all replicas together; each of R replicas gets `batch_size / R` images, and
            the contrastive loss still contrasts the whole global batch.
        gradient_cache_chunk_size: `None` (default) or images per chunk of gradient
            caching in pretraining (see `SupConModel`): the whole batch's loss and
            gradient at the activation memory of one chunk, for about one extra
            forward pass; BatchNorm statistics become per chunk.
        memory_size: 0 (default) or the number of past samples in the label-aware
            memory bank of pretraining (see `SupConModel`): extra contrasts for every
            anchor, positives by label.
        momentum_encoder: fill the memory bank with the embeddings of a MoCo key
            network (an exponential moving average of the encoder and projection head,
            see `SupConModel`) instead of the trained network's own; needs
            `memory_size > 0`.
        encoder_momentum: the key network's momentum `m` in [0, 1):
            `key <- m key + (1 - m) query` after every step (not the optimizer's
            `momentum`).
        pretrain_epochs: epochs of contrastive pretraining.
        classifier_epochs: epochs of the classifier on the frozen encoder.
        baseline_epochs: epochs of the cross-entropy baseline (`None`: the same as
            `pretrain_epochs + classifier_epochs`, the SupCon budget).
        temperature: loss temperature.
        projection_head: `"mlp"` (`supcon_tf.layers.ProjectionHead`, the paper's) or
            `"none"` (the loss sees the encoder's features, as in the first Keras
            example).
        loss: pretraining loss: `"supcon"` (`SupervisedContrastiveLoss`, with the
            options below) or `"npairs"` (`NPairsLoss`, the original Keras example's
            loss; the options below must keep their defaults).
        base_temperature: the loss is scaled by `temperature / base_temperature`
            (`None`: no scaling).
        contrast_mode: `"all"` (every view is an anchor) or `"one"` (view 0 only).
        summation: `"out"` (Eq. 2 of the paper) or `"in"` (Eq. 3).
        denominator_mode: `"all"` (the paper), `"one_positive"` (SINCERE) or
            `"only_negatives"` (DCL); see docs/loss.md.
        positives_cap: `None` or the most positive views per anchor besides its own
            sample's other views (a multiple of `views`; google-research's cap).
        implementation: loss kernel, `"auto"`, `"dense"` or `"blocked"`.
        block_size: anchor rows per block of the blocked kernel (`None`: automatic).
        projection_units: embedding width of the projection head.
        projection_batch_norm: BatchNorm in the projection head's hidden layer.
        optimizer: optimizer name (see `supcon_tf.optimizers.build_optimizer`) of
            pretraining and the baseline.
        learning_rate: (peak) learning rate of pretraining and the baseline, for a
            global batch of 256 when `learning_rate_scaling` scales it (see below).
        learning_rate_scaling: how the learning rate follows the global batch size:
            `"auto"` (the optimizer's rule: linear `lr x batch / 256` for SGD/LARS,
            square root for LAMB, none for Adam/AdamW/RMSprop), `"linear"`, `"sqrt"`
            or `"none"` (use `learning_rate` as given; the presets, whose published
            learning rates are already for their batch size, use this).
        weight_decay: weight decay (0 disables it; decoupled for Keras' optimizers,
            L2 inside the trust ratio for LARS).
        momentum: momentum of LARS, SGD and RMSprop.
        lr_schedule: `"constant"` or `"cosine"` (see `supcon_tf.schedules.build_schedule`)
            of pretraining and the baseline, over each phase's epochs.
        warmup_epochs: linear warmup epochs at the start of each phase.
        final_learning_rate: the floor the cosine schedule ends at (scaled with the
            learning rate by `learning_rate_scaling`).
        preset: name of the `supcon_tf.presets` preset the values came from (a record).
        augment: augmentation policy (see `supcon_tf.augment.build_augmenter`).
        augment_magnitude: RandAugment magnitude in [0, 10] (randaugment policies).
        augment_strength: colour-jitter strength `s` (simaugment, stacked_randaugment).
        classifier_optimizer: optimizer of the classifier stage (the linear head on the
            frozen encoder; `momentum` applies to it too).
        classifier_learning_rate: its (peak) learning rate, scaled to
            `classifier_batch_size` by `learning_rate_scaling` like `learning_rate`.
        classifier_lr_schedule: its schedule over `classifier_epochs` (no warmup;
            cosine decays to 0).
        classifier_batch_size: its batch size (global, like `batch_size`; `None`: the
            same as `batch_size`).
        classifier_weight_decay: its weight decay.
        classifier_standardize: standardise the frozen features (BatchNorm without
            scale or offset) before the classifier head, as in MoCo v3 / MAE linear
            probing.
        classifier_hidden_units: optional hidden layer of the classifier heads.
        classifier_hidden_activation: `"relu"` or `"linear"` (the first Keras example's
            `Dense(64)` hidden layer is linear).
        classifier_dropout: dropout of the classifier heads.
        select_best_epoch: the classifier and the baseline keep the weights of their
            best validation epoch (see `best_epoch_monitor`) instead of the last epoch's.
        best_epoch_monitor: what "best" means, for both arms: `"val_loss"` (the lowest
            validation loss, ties: higher accuracy) or `"val_accuracy"` (the highest
            validation accuracy, ties: lower loss).
        early_stopping_patience: stop the classifier and the baseline after this many
            epochs without a better validation epoch (0: train every epoch).
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
        deterministic: run TensorFlow ops deterministically
            (`tf.config.experimental.enable_op_determinism`, for the rest of the
            process; slower on GPUs): with the seeds, two runs, interrupted or not,
            give the same weights.
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
    image_size: int | None = None
    crop_min_area: float | None = None
    center_crop_fraction: float | None = None
    skip_corrupt_images: bool = False
    encoder: str = "small_cnn"
    width_multiplier: float = 1.0
    stem: str = "cifar"
    method: str = "supcon"
    views: int = 2
    batch_size: int = 64
    gradient_cache_chunk_size: int | None = None
    memory_size: int = 0
    momentum_encoder: bool = False
    encoder_momentum: float = 0.999
    pretrain_epochs: int = 30
    classifier_epochs: int = 20
    baseline_epochs: int | None = None
    temperature: float = 0.1
    projection_head: str = "mlp"
    loss: str = "supcon"
    base_temperature: float | None = None
    contrast_mode: str = "all"
    summation: str = "out"
    denominator_mode: str = "all"
    positives_cap: int | None = None
    implementation: str = "auto"
    block_size: int | None = None
    hybrid_weight: float = 1.0
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
    classifier_optimizer: str = "adam"
    classifier_learning_rate: float = 1e-2
    classifier_lr_schedule: str = "constant"
    classifier_batch_size: int | None = None
    classifier_weight_decay: float = 0.0
    classifier_standardize: bool = True
    classifier_hidden_units: int | None = None
    classifier_hidden_activation: str = "relu"
    classifier_dropout: float = 0.0
    select_best_epoch: bool = True
    best_epoch_monitor: str = "val_loss"
    early_stopping_patience: int = 0
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
    deterministic: bool = False
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
        if self.image_size is not None and (
            isinstance(self.image_size, bool)
            or not isinstance(self.image_size, int)
            or self.image_size < 1
        ):
            raise ValueError(
                f"`image_size` must be a positive integer or None, got {self.image_size!r}."
            )
        for name in ("crop_min_area", "center_crop_fraction"):
            value = getattr(self, name)
            if value is not None:
                check_fraction(name, value)
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
        self._check_loss()
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
        if self.projection_head not in PROJECTION_HEADS:
            raise ValueError(
                f"Unknown `projection_head` {self.projection_head!r}. Expected one of "
                f"{PROJECTION_HEADS}."
            )
        self._check_classifier_stage()
        check_chunk_size(self.gradient_cache_chunk_size)
        if (
            isinstance(self.memory_size, bool)
            or not isinstance(self.memory_size, int)
            or self.memory_size < 0
        ):
            raise ValueError(
                f"`memory_size` must be a non-negative integer (0: no memory bank), got "
                f"{self.memory_size!r}."
            )
        self._check_momentum_encoder()
        if self.gradient_cache_chunk_size is not None and self.sync_batchnorm:
            raise ValueError(
                "`sync_batchnorm=True` cannot be combined with `gradient_cache_chunk_size` "
                f"(got {self.gradient_cache_chunk_size}): gradient caching normalises each "
                "chunk by its own statistics; set sync_batchnorm=False."
            )
        self._check_distribution()

    def _check_momentum_encoder(self):
        if not isinstance(self.momentum_encoder, bool):
            raise ValueError(
                f"`momentum_encoder` must be True or False, got {self.momentum_encoder!r}."
            )
        momentum = self.encoder_momentum
        if isinstance(momentum, bool) or not isinstance(momentum, (int, float)):
            raise ValueError(f"`encoder_momentum` must be a number in [0, 1), got {momentum!r}.")
        if not 0 <= momentum < 1:
            raise ValueError(f"`encoder_momentum` must be in [0, 1), got {momentum!r}.")
        if self.momentum_encoder and self.memory_size == 0:
            raise ValueError(
                "`momentum_encoder=True` needs a memory bank: the key network only fills it; "
                "got memory_size=0. Set memory_size > 0 or momentum_encoder=False."
            )

    def _check_classifier_stage(self):
        choices = {
            "classifier_optimizer": OPTIMIZERS,
            "classifier_lr_schedule": SCHEDULES,
            "classifier_hidden_activation": HIDDEN_ACTIVATIONS,
            "best_epoch_monitor": MONITORS,
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(
                    f"Unknown `{name}` {getattr(self, name)!r}. Expected one of {allowed}."
                )
        batch_size = self.classifier_batch_size
        if batch_size is not None and (
            isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1
        ):
            raise ValueError(
                f"`classifier_batch_size` must be a positive integer or None (the same as "
                f"`batch_size`), got {batch_size!r}."
            )
        if not self.classifier_learning_rate > 0:
            raise ValueError(
                "`classifier_learning_rate` must be positive, got "
                f"{self.classifier_learning_rate!r}."
            )
        if not self.classifier_weight_decay >= 0:
            raise ValueError(
                "`classifier_weight_decay` must be >= 0 (0 disables it), got "
                f"{self.classifier_weight_decay!r}."
            )
        patience = self.early_stopping_patience
        if isinstance(patience, bool) or not isinstance(patience, int) or patience < 0:
            raise ValueError(
                "`early_stopping_patience` must be an integer >= 0 (0: no early stopping), "
                f"got {patience!r}."
            )

    def _check_loss(self):
        if self.loss not in LOSSES:
            raise ValueError(
                f"Unknown `loss` {self.loss!r}. Expected one of {LOSSES}: 'supcon' is "
                "SupervisedContrastiveLoss, 'npairs' the Keras example's NPairsLoss."
            )
        if self.loss == "npairs":
            for name, default in SUPCON_ONLY_OPTIONS.items():
                if getattr(self, name) != default:
                    raise ValueError(
                        f"`{name}`={getattr(self, name)!r} is an option of loss='supcon' "
                        f"only; with loss='npairs' it must stay {default!r}."
                    )
        # The loss validates its own options (named errors: what was given, what is allowed).
        SupervisedContrastiveLoss(
            temperature=self.temperature,
            **{name: getattr(self, name) for name in SUPCON_ONLY_OPTIONS},
        )
        if (
            isinstance(self.hybrid_weight, bool)
            or not isinstance(self.hybrid_weight, (int, float))
            or not 0 < self.hybrid_weight < float("inf")
        ):
            raise ValueError(
                f"`hybrid_weight` must be a positive finite number, got {self.hybrid_weight!r}."
            )
        if self.hybrid_weight != 1.0 and self.method != "hybrid":
            raise ValueError(
                f"`hybrid_weight`={self.hybrid_weight} applies only to method='hybrid', got "
                f"method={self.method!r}."
            )
        if self.positives_cap is not None and self.positives_cap % self.views:
            raise ValueError(
                f"`positives_cap` must be a multiple of `views` ({self.views}): it counts "
                f"all views of each kept positive sample; got {self.positives_cap}."
            )

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

    def classifier_stage(self):
        """This configuration with the classifier stage's recipe as the optimisation settings.

        The classifier phase trains with the returned configuration: its `optimizer`,
        `learning_rate`, `lr_schedule`, `batch_size` and `weight_decay` are the
        `classifier_*` values, with no warmup and a cosine floor of 0.

        Example:

        >>> stage = ExperimentConfig(classifier_optimizer="sgd",
        ...                          classifier_learning_rate=0.1).classifier_stage()
        >>> stage.optimizer, stage.learning_rate, stage.batch_size
        ('sgd', 0.1, 64)
        """
        return dataclasses.replace(
            self,
            optimizer=self.classifier_optimizer,
            learning_rate=self.classifier_learning_rate,
            lr_schedule=self.classifier_lr_schedule,
            batch_size=self.classifier_batch_size or self.batch_size,
            weight_decay=self.classifier_weight_decay,
            warmup_epochs=0,
            final_learning_rate=0.0,
        )

    def scaled_learning_rate(self):
        """The learning rate of every phase after scaling to the global batch size."""
        rule = self.learning_rate_scaling
        if rule == "auto":
            rule = default_learning_rate_scaling(self.optimizer)
        return scale_learning_rate(self.learning_rate, self.batch_size, rule)


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
    if config.deterministic:
        tf.config.experimental.enable_op_determinism()
    strategy, config = _distribute(config)
    run = RunDirectory(config.model_dir)
    with run.lock(), stop_on_sigterm() as stop_requested:
        run.record_config(dataclasses.asdict(config), resumable_fields=_RESUMABLE_FIELDS)
        start = time.perf_counter()
        inputs = open_inputs(config)
        _build_augmenter(config)  # Fails on a bad policy name before any training.
        phases = _Phases(config, inputs, run, stop_requested)
        with training_scope(strategy, config.mixed_precision), _input_errors_as_value_errors():
            results = {"pretrain": phases.run("pretrain", phases.pretrain)}
            results["classifier"] = phases.run("classifier", phases.train_classifier)
            if config.baseline:
                results["baseline"] = phases.run("baseline", phases.train_baseline)
            if config.method == "hybrid":
                results["hybrid"] = phases.run("hybrid", phases.train_hybrid)
        report = _report(config, inputs, strategy, results, time.perf_counter() - start)
        run.write_report(report)
        if config.evaluate and inputs.streamed:
            logging.warning(
                "evaluate: the full evaluation (ECE, kNN, t-SNE, corruptions) needs the "
                "dataset in RAM; a streamed dataset's report has the classifiers' accuracies."
            )
        elif config.evaluate:
            # Adds "evaluation" to report.json and writes report.md and plots/.
            report["evaluation"] = evaluate_run(run.root, inputs.splits, seed=config.seed)
    return report


@contextlib.contextmanager
def _input_errors_as_value_errors():
    """Re-raises a streamed dataset's bad input (an error naming the file) as `ValueError`."""
    try:
        yield
    except tf.errors.InvalidArgumentError as error:
        message = input_error_message(error)
        if message is None:
            raise
        raise ValueError(message) from error


def _distribute(config):
    """The run's `tf.distribute` strategy, and `config` with this worker's `model_dir`."""
    # The strategy comes first: a multi-worker strategy must exist before other TF work.
    strategy = build_strategy(config.strategy, config.tpu, config.tpu_zone, config.gcp_project)
    per_replica_batch_size(config.batch_size, strategy)
    per_replica_batch_size(config.classifier_stage().batch_size, strategy)
    # Workers other than the chief write their files into a folder of their own.
    model_dir = worker_model_dir(config.model_dir, strategy)
    return strategy, dataclasses.replace(config, model_dir=model_dir)


class _Phases:
    """The three training phases of one run; each trains, saves its model, returns results."""

    def __init__(self, config, inputs, run, stop_requested=None):
        self.config = config
        self.inputs = inputs
        self.run_directory = run
        self.stop_requested = stop_requested

    def run(self, phase, train):
        """`train()`'s result, or the stored one when the phase finished in an earlier call."""
        seed = self.config.seed + PHASES.index(phase)
        return self.run_directory.run_phase(phase, train, seed=seed)

    def pretrain(self):
        """Contrastive pretraining of a new encoder; saves `encoder.keras`."""
        config, inputs = self.config, self.inputs
        model = self._new_supcon_model(
            gradient_cache_chunk_size=config.gradient_cache_chunk_size,
            memory_size=config.memory_size,
            momentum_encoder=config.momentum_encoder,
            momentum=config.encoder_momentum,
        )
        training_batches = self._prepare_contrastive(model, labels=config.method != "simclr")
        # Integer class labels (or none): the memory bank is built now, so that a
        # checkpoint restored by `fit_phase` finds its variables.
        model.build_memory_bank(labels_shape=(None,))
        history, initial_epoch = fit_phase(
            model,
            config,
            self.run_directory,
            "pretrain",
            training_batches,
            inputs.num_train,
            config.pretrain_epochs,
            callbacks=_knn_monitors(model.encoder, inputs, config),
            should_stop=self.stop_requested,
        )
        model.encoder.save(join(self.run_directory.root, "encoder.keras"))
        return {"history": history, "resumed_from_epoch": initial_epoch}

    def train_classifier(self):
        """A classifier head on the saved, frozen encoder; saves `classifier.keras`."""
        config = self.config
        encoder = keras.saving.load_model(
            join(self.run_directory.root, "encoder.keras"), safe_mode=True
        )
        model = build_linear_classifier(
            encoder,
            self.inputs.num_classes,
            hidden_units=config.classifier_hidden_units,
            dropout=config.classifier_dropout,
            hidden_activation=config.classifier_hidden_activation,
            standardize=config.classifier_standardize,
        )
        # The classifier stage trains with its own recipe (classifier_* settings).
        return self._classify(
            "classifier", model, config.classifier_epochs, config.classifier_stage()
        )

    def train_baseline(self):
        """A new encoder and head trained end to end with cross-entropy; saves `baseline.keras`."""
        config = self.config
        model = build_cross_entropy_classifier(
            self._new_encoder(),
            self.inputs.num_classes,
            hidden_units=config.classifier_hidden_units,
            dropout=config.classifier_dropout,
            hidden_activation=config.classifier_hidden_activation,
        )
        synchronize_batch_norm(model, config.sync_batchnorm)
        epochs = config.baseline_epochs or config.pretrain_epochs + config.classifier_epochs
        return self._classify("baseline", model, epochs, config)

    def train_hybrid(self):
        """One-stage `HybridSupConModel` on a new encoder; saves `hybrid.keras` (its classifier)."""
        config, inputs = self.config, self.inputs
        model = HybridSupConModel(
            self._new_supcon_model(),
            num_classes=inputs.num_classes,
            hybrid_weight=config.hybrid_weight,
        )
        training_batches = self._prepare_contrastive(model, labels=True)
        history, initial_epoch = fit_phase(
            model,
            config,
            self.run_directory,
            "hybrid",
            training_batches,
            inputs.num_train,
            config.pretrain_epochs,
            should_stop=self.stop_requested,
        )
        classifier = model.classifier()
        compile_classifier(classifier, config, 1, inputs.num_train)
        return {
            **self._save_and_score(classifier, "hybrid", config.batch_size),
            "history": history,
            "resumed_from_epoch": initial_epoch,
        }

    def _save_and_score(self, model, name, batch_size):
        """Saves `<name>.keras`; returns its validation and test accuracy and test loss."""
        model.save(join(self.run_directory.root, f"{name}.keras"))
        _, validation_accuracy = evaluate_split(
            model, self.inputs.evaluation_batches("validation", batch_size)
        )
        test_loss, test_accuracy = evaluate_split(
            model, self.inputs.evaluation_batches("test", batch_size)
        )
        return {
            "test_accuracy": test_accuracy,
            "test_loss": test_loss,
            "validation_accuracy": validation_accuracy,
        }

    def _new_supcon_model(self, **options):
        """A `SupConModel` on a new encoder with the configured head, augmenter and views."""
        config = self.config
        return SupConModel(
            self._new_encoder(),
            projection_head=_projection_head(config),
            augmenter=_build_augmenter(config, crop=not self.inputs.streamed),
            num_views=config.views,
            **options,
        )

    def _prepare_contrastive(self, model, labels):
        """Compiles and builds a contrastive `model`; returns its training-batch factory."""
        config, inputs = self.config, self.inputs
        model.compile(
            optimizer=build_phase_optimizer(config, config.pretrain_epochs, inputs.num_train),
            loss=contrastive_loss(config),
        )
        synchronize_batch_norm(model, config.sync_batchnorm)
        # A streamed dataset's pipeline draws the views (crops); in RAM the model does.
        views = config.views if inputs.streamed else None
        model(inputs.example_images(views))

        def training_batches(end_epoch, first_epoch, step):
            return inputs.training_batches(
                config, end_epoch, first_epoch, step, labels=labels, views=views
            )

        return training_batches

    def _new_encoder(self):
        config = self.config
        return build_encoder(
            config.encoder, self.inputs.input_shape, config.width_multiplier, config.stem
        )

    def _classify(self, phase, model, epochs, config):
        """Trains a classifier phase with `config`'s optimisation settings, keeps its best
        validation epoch, saves `<phase>.keras`, evaluates validation and test."""
        inputs = self.inputs
        compile_classifier(model, config, epochs, inputs.num_train)
        model(inputs.example_images())
        augmenter = _build_augmenter(config, crop=not inputs.streamed)

        def training_batches(end_epoch, first_epoch, step):
            return inputs.training_batches(
                config, end_epoch, first_epoch, step, augmenter=augmenter
            )

        best_epoch = None
        if inputs.num_validation and (config.select_best_epoch or config.early_stopping_patience):
            best_epoch = BestEpoch(
                join(self.run_directory.root, "best", phase),
                config.early_stopping_patience,
                monitor=config.best_epoch_monitor,
            )
        history, initial_epoch = fit_phase(
            model,
            config,
            self.run_directory,
            phase,
            training_batches,
            inputs.num_train,
            epochs,
            validation_data=inputs.evaluation_batches("validation", config.batch_size),
            callbacks=[best_epoch] if best_epoch else [],
            should_stop=self.stop_requested,
        )
        epochs_trained = initial_epoch + len(history.get("loss", []))
        selected_epoch = epochs_trained
        if best_epoch and config.select_best_epoch:
            selected_epoch = best_epoch.restore(model) or epochs_trained
        return {
            **self._save_and_score(model, phase, config.batch_size),
            "selected_epoch": selected_epoch,
            "epochs_trained": epochs_trained,
            "history": history,
            "resumed_from_epoch": initial_epoch,
        }


def _projection_head(config):
    if config.projection_head == "none":
        return keras.layers.Identity(name="no_projection")
    return ProjectionHead(
        output_units=config.projection_units, batch_norm=config.projection_batch_norm
    )


def contrastive_loss(config):
    """The pretraining loss of `config` (`loss`, `temperature` and the loss options).

    Example:

    >>> contrastive_loss(ExperimentConfig(denominator_mode="one_positive")).denominator_mode
    'one_positive'
    >>> type(contrastive_loss(ExperimentConfig(loss="npairs"))).__name__
    'NPairsLoss'
    """
    if config.loss == "npairs":
        return NPairsLoss(temperature=config.temperature)
    return SupervisedContrastiveLoss(
        temperature=config.temperature,
        **{name: getattr(config, name) for name in SUPCON_ONLY_OPTIONS},
    )


def _build_augmenter(config, crop=True):
    return build_augmenter(
        config.augment,
        seed=config.seed,
        magnitude=config.augment_magnitude,
        strength=config.augment_strength,
        crop=crop,
    )


def _knn_monitors(encoder, inputs, config, max_samples=5000):
    """`[KNNMonitor]` on (seeded subsets of) the training and validation splits, or `[]`.

    Only for datasets held in RAM (a streamed dataset's images are not at hand).
    """
    if not config.knn_monitor or inputs.streamed or inputs.num_validation == 0:
        return []
    data = inputs.splits
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


def _report(config, inputs, strategy, results, seconds):
    """The `report.json` contents: test results, configuration, data, timings, history."""

    def summary(result):
        keys = ("test_accuracy", "validation_accuracy", "test_loss")
        selection = {key: result.get(key) for key in ("selected_epoch", "epochs_trained")}
        return {**{key: result[key] for key in keys}, **selection}

    report = {
        "supcon": summary(results["classifier"]),
        "method": config.method,
        "config": dataclasses.asdict(config),
        "dataset": {
            "name": inputs.name,
            "streamed": inputs.streamed,
            "num_classes": inputs.num_classes,
            "input_shape": list(inputs.input_shape),
            "train": inputs.num_train,
            "validation": inputs.num_validation,
            "test": inputs.num_test,
        },
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
        report["cross_entropy"] = summary(results["baseline"])
    if inputs.streamed:
        # Unreadable images this process left out (with skip_corrupt_images).
        skipped = inputs.splits.skipped_images
        report["dataset"].update(skipped_images=list(skipped), num_skipped_images=len(skipped))
    if "hybrid" in results:
        # One-stage hybrid_weight x SupCon + CE, beside the two-stage "supcon" result.
        report["hybrid"] = summary(results["hybrid"])
    return report
