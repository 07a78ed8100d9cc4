"""`ExperimentConfig`: every setting of an experiment, each checked once, where it enters.

The configuration is the one place where options are validated: the constructor
checks types and ranges (`supcon_tf.checks`), choices and the combinations that cannot
work together, and raises `supcon_tf.errors.UsageError` naming the option and the fix.
The stages trust the typed values they receive. Rules that belong to a library object
(the loss options, a fraction of the crops, the gradient-cache chunk) are that
object's own check, called from here. (Half of this module is the documentation of
the options, one entry per field, which is why it is over 600 lines.)

Example:

>>> config = ExperimentConfig(batch_size=32, classifier_batch_size=None)
>>> config.classifier_stage().batch_size
32
>>> ExperimentConfig(views=0)
Traceback (most recent call last):
...
supcon_tf.errors.UsageError: `views` must be an integer >= 1, got 0.
"""

import dataclasses

from supcon_tf import checks
from supcon_tf.augment import AUGMENTATIONS
from supcon_tf.data.class_split import SPLITS, check_unseen_classes
from supcon_tf.data.streaming import AUGMENT_PLACEMENTS, check_fraction
from supcon_tf.errors import UsageError
from supcon_tf.experiment.inputs import DataSource
from supcon_tf.losses import SupervisedContrastiveLoss
from supcon_tf.models import HIDDEN_ACTIVATIONS
from supcon_tf.models.encoders import ENCODERS, STEMS
from supcon_tf.models.gradient_cache import check_chunk_size
from supcon_tf.training.distribute import (
    LEARNING_RATE_SCALINGS,
    MIXED_PRECISION_POLICIES,
    STRATEGIES,
    default_learning_rate_scaling,
    scale_learning_rate,
)
from supcon_tf.training.optimizers import OPTIMIZERS
from supcon_tf.training.schedules import SCHEDULES
from supcon_tf.training.selection import MONITORS

PHASES = (
    "pretrain",
    "classifier",
    "baseline",
    "hybrid",
    "unseen_probe",
    "unseen_baseline_probe",
)
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
RESUMABLE_FIELDS = (
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
    "reevaluate",
    "dry_run",
)
_RESUMABLE_FIELDS = RESUMABLE_FIELDS


def _library_rule(check, *arguments, **options):
    """Runs a library object's own check; its `ValueError` becomes a `UsageError`."""
    try:
        return check(*arguments, **options)
    except UsageError:
        raise
    except ValueError as error:
        raise UsageError(str(error)) from error


def _optional_integer(name, value, minimum):
    return None if value is None else checks.integer(name, value, minimum=minimum)


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
            (see `supcon_tf.data.open_streaming_dataset` and `supcon_tf.experiment.inputs`).
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
        split: `"standard"` (every stage trains on all classes; retrieval is measured
            among the test images) or `"class_disjoint"`, the metric-learning protocol:
            pretraining, the classifier and the baseline train on the seen classes only,
            and retrieval and a linear probe of each frozen encoder are measured on the
            unseen classes (report.json "retrieval"). In-RAM datasets only, so far.
        unseen_classes: with `split="class_disjoint"`, the class ids held out of
            training (`None`: the second half of the sorted class ids, see
            `supcon_tf.data.class_split.split_classes`); stored sorted.
        encoder: encoder name (see `supcon_tf.models.encoders.ENCODERS`).
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
        projection_head: `"mlp"` (`supcon_tf.models.layers.ProjectionHead`, the paper's) or
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
        optimizer: optimizer name (see `supcon_tf.training.optimizers.build_optimizer`) of
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
        lr_schedule: `"constant"` or `"cosine"` (see `supcon_tf.training.schedules.build_schedule`)
            of pretraining and the baseline, over each phase's epochs.
        warmup_epochs: linear warmup epochs at the start of each phase.
        final_learning_rate: the floor the cosine schedule ends at (scaled with the
            learning rate by `learning_rate_scaling`).
        preset: name of the `supcon_tf.experiment.presets` preset the values came from (a record).
        augment: augmentation policy (see `supcon_tf.augment.build_augmenter`).
        augment_magnitude: RandAugment magnitude in [0, 10] (randaugment policies).
        augment_strength: colour-jitter strength `s` (simaugment, stacked_randaugment).
        augment_placement: where a streamed dataset's contrastive views (pretraining,
            hybrid) are flipped and coloured: `"device"` (the default: the input
            pipeline only decodes and crops, the model augments on the accelerator, so
            a few CPU cores keep up with it) or `"pipeline"` (in `tf.data`, on the CPU).
            In-RAM datasets' views are always augmented by the model; the classifier
            and baseline stages augment in the input pipeline either way.
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
        verbose: Keras progress: 0 silent, 1 progress bars when standard output is a
            terminal and one line per epoch when it is not (a log file gets no ANSI
            codes), 2 one line per epoch.
        evaluate: at the end, run `supcon_tf.evaluation.evaluate_run` (ECE, per-class
            accuracy, kNN, alignment/uniformity, t-SNE, corruptions; report.md and plots).
        knn_monitor: log the weighted kNN accuracy of the encoder on the validation split
            (`val_knn_accuracy`) during pretraining (`supcon_tf.evaluation.KNNMonitor`).
        knn_monitor_every: epochs between two kNN measurements.
        reevaluate: run the end-of-run evaluation again on a finished run (without it,
            a finished run started again only says where its report is).
        dry_run: check the run (`supcon_tf.experiment.preflight`) and stop: nothing is
            written to `model_dir` and nothing is trained.

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
    split: str = "standard"
    unseen_classes: list | None = None
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
    augment_placement: str = "device"
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
    reevaluate: bool = False
    dry_run: bool = False

    def __post_init__(self):
        self._check_data()
        self._check_model()
        self._check_loss()
        self._check_optimisation()
        self._check_classifier_stage()
        self._check_distribution()
        self._check_output()

    def _check_data(self):
        if not isinstance(self.dataset, str) or not self.dataset:
            raise UsageError(
                f"`dataset` must be a dataset name or path, got {self.dataset!r}; pass one "
                "such as 'digits', 'cifar10' or a folder."
            )
        fraction = checks.number("validation_fraction", self.validation_fraction, minimum=0.0)
        if fraction >= 1:
            raise UsageError(
                f"`validation_fraction` must be in [0, 1), got {fraction}; pass a share "
                "such as 0.1."
            )
        _optional_integer("image_size", self.image_size, 1)
        for name in ("crop_min_area", "center_crop_fraction"):
            if getattr(self, name) is not None:
                _library_rule(check_fraction, name, getattr(self, name))
        checks.boolean("skip_corrupt_images", self.skip_corrupt_images)
        checks.choice("split", self.split, SPLITS)
        if self.unseen_classes is not None:
            if self.split != "class_disjoint":
                raise UsageError(
                    f"`unseen_classes` applies to split='class_disjoint' only, got "
                    f"split={self.split!r}; add --split=class_disjoint or drop --unseen_classes."
                )
            # A sorted list: config.json stores it so, and a resumed run compares equal.
            self.unseen_classes = check_unseen_classes(self.unseen_classes)
        checks.choice("augment", self.augment, AUGMENTATIONS)
        checks.number("augment_magnitude", self.augment_magnitude, minimum=0.0, maximum=10.0)
        checks.number("augment_strength", self.augment_strength, minimum=0.0, inclusive=False)
        checks.choice("augment_placement", self.augment_placement, AUGMENT_PLACEMENTS)

    def _check_model(self):
        checks.choice("encoder", self.encoder, ENCODERS)
        checks.number("width_multiplier", self.width_multiplier, minimum=0.0, inclusive=False)
        checks.choice("stem", self.stem, STEMS)
        checks.choice("method", self.method, METHODS)
        checks.integer("views", self.views, minimum=1)
        if self.method == "simclr" and self.views < 2:
            raise UsageError(
                f"SimCLR pretraining needs at least 2 views (its only positives), got "
                f"views={self.views}; set views=2."
            )
        checks.choice("projection_head", self.projection_head, PROJECTION_HEADS)
        checks.integer("projection_units", self.projection_units, minimum=1)
        checks.boolean("projection_batch_norm", self.projection_batch_norm)
        checks.boolean("baseline", self.baseline)
        _library_rule(check_chunk_size, self.gradient_cache_chunk_size)
        checks.integer("memory_size", self.memory_size, minimum=0)
        checks.boolean("momentum_encoder", self.momentum_encoder)
        momentum = checks.number("encoder_momentum", self.encoder_momentum, minimum=0.0)
        if momentum >= 1:
            raise UsageError(
                f"`encoder_momentum` must be in [0, 1), got {momentum}; MoCo uses 0.999."
            )
        # The model's rule, checked here until the model offers it as one function.
        if self.momentum_encoder and self.memory_size == 0:
            raise UsageError(
                "`momentum_encoder=True` needs a memory bank: the key network only fills it; "
                "got memory_size=0. Set memory_size > 0 or momentum_encoder=False."
            )

    def _check_loss(self):
        checks.choice("loss", self.loss, LOSSES)
        if self.loss == "npairs":
            for name, default in SUPCON_ONLY_OPTIONS.items():
                if getattr(self, name) != default:
                    raise UsageError(
                        f"`{name}`={getattr(self, name)!r} is an option of loss='supcon' "
                        f"only; with loss='npairs' it must stay {default!r}."
                    )
        # The loss validates its own options (temperature included).
        _library_rule(
            SupervisedContrastiveLoss,
            temperature=self.temperature,
            **{name: getattr(self, name) for name in SUPCON_ONLY_OPTIONS},
        )
        checks.number("hybrid_weight", self.hybrid_weight, minimum=0.0, inclusive=False)
        if self.hybrid_weight != 1.0 and self.method != "hybrid":
            raise UsageError(
                f"`hybrid_weight`={self.hybrid_weight} applies only to method='hybrid', got "
                f"method={self.method!r}; drop it or set method='hybrid'."
            )
        if self.positives_cap is not None and self.positives_cap % self.views:
            raise UsageError(
                f"`positives_cap` must be a multiple of `views` ({self.views}): it counts "
                f"all views of each kept positive sample; got {self.positives_cap}."
            )

    def _check_optimisation(self):
        checks.integer("batch_size", self.batch_size, minimum=1)
        for name in ("pretrain_epochs", "classifier_epochs"):
            checks.integer(name, getattr(self, name), minimum=1)
        _optional_integer("baseline_epochs", self.baseline_epochs, 1)
        checks.choice("optimizer", self.optimizer, OPTIMIZERS)
        checks.number("learning_rate", self.learning_rate, minimum=0.0, inclusive=False)
        checks.number("weight_decay", self.weight_decay, minimum=0.0)
        checks.number("momentum", self.momentum, minimum=0.0, maximum=1.0)
        checks.choice("lr_schedule", self.lr_schedule, SCHEDULES)
        checks.integer("warmup_epochs", self.warmup_epochs, minimum=0)
        checks.number(
            "final_learning_rate",
            self.final_learning_rate,
            minimum=0.0,
            maximum=self.learning_rate,
        )
        checks.choice(
            "learning_rate_scaling", self.learning_rate_scaling, ("auto", *LEARNING_RATE_SCALINGS)
        )

    def _check_classifier_stage(self):
        checks.choice("classifier_optimizer", self.classifier_optimizer, OPTIMIZERS)
        checks.choice("classifier_lr_schedule", self.classifier_lr_schedule, SCHEDULES)
        checks.choice(
            "classifier_hidden_activation", self.classifier_hidden_activation, HIDDEN_ACTIVATIONS
        )
        checks.choice("best_epoch_monitor", self.best_epoch_monitor, MONITORS)
        _optional_integer("classifier_batch_size", self.classifier_batch_size, 1)
        checks.number(
            "classifier_learning_rate",
            self.classifier_learning_rate,
            minimum=0.0,
            inclusive=False,
        )
        checks.number("classifier_weight_decay", self.classifier_weight_decay, minimum=0.0)
        checks.boolean("classifier_standardize", self.classifier_standardize)
        _optional_integer("classifier_hidden_units", self.classifier_hidden_units, 1)
        dropout = checks.number("classifier_dropout", self.classifier_dropout, minimum=0.0)
        if dropout >= 1:
            raise UsageError(f"`classifier_dropout` must be in [0, 1), got {dropout}.")
        checks.boolean("select_best_epoch", self.select_best_epoch)
        checks.integer("early_stopping_patience", self.early_stopping_patience, minimum=0)

    def _check_distribution(self):
        checks.choice("strategy", self.strategy, STRATEGIES)
        tpu_fields = [name for name in ("tpu", "tpu_zone", "gcp_project") if getattr(self, name)]
        if tpu_fields and self.strategy != "tpu":
            raise UsageError(
                f"{', '.join(tpu_fields)} only apply to strategy='tpu', got "
                f"{self.strategy!r}; drop them or set strategy='tpu'."
            )
        checks.choice("mixed_precision", self.mixed_precision, MIXED_PRECISION_POLICIES)
        checks.boolean("sync_batchnorm", self.sync_batchnorm)
        if self.gradient_cache_chunk_size is not None and self.sync_batchnorm:
            raise UsageError(
                "`sync_batchnorm=True` cannot be combined with `gradient_cache_chunk_size` "
                f"(got {self.gradient_cache_chunk_size}): gradient caching normalises each "
                "chunk by its own statistics; set sync_batchnorm=False."
            )

    def _check_output(self):
        if not isinstance(self.model_dir, str) or not self.model_dir:
            raise UsageError(
                f"`model_dir` must be a folder path, got {self.model_dir!r}; pass a folder "
                "such as 'runs/supcon'."
            )
        checks.integer("backup_steps", self.backup_steps, minimum=0)
        checks.integer("seed", self.seed, minimum=0)
        for name in ("deterministic", "evaluate", "knn_monitor", "reevaluate", "dry_run"):
            checks.boolean(name, getattr(self, name))
        checks.integer("verbose", self.verbose, minimum=0, maximum=2)
        checks.integer("knn_monitor_every", self.knn_monitor_every, minimum=1)

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

    def data_source(self):
        """The `supcon_tf.experiment.inputs.DataSource` of this configuration (its data settings).

        Example:

        >>> ExperimentConfig(dataset="digits", validation_fraction=0.2).data_source().dataset
        'digits'
        """
        return DataSource(
            dataset=self.dataset,
            data_dir=self.data_dir,
            validation_fraction=self.validation_fraction,
            seed=self.seed,
            image_size=self.image_size,
            crop_min_area=self.crop_min_area,
            center_crop_fraction=self.center_crop_fraction,
            skip_corrupt_images=self.skip_corrupt_images,
            split=self.split,
            unseen_classes=None if self.unseen_classes is None else tuple(self.unseen_classes),
        )

    def effective_baseline_epochs(self):
        """The baseline's epochs: `baseline_epochs`, or the SupCon arm's when it is `None`.

        Example:

        >>> ExperimentConfig(pretrain_epochs=3, classifier_epochs=2).effective_baseline_epochs()
        5
        """
        return self.baseline_epochs or self.pretrain_epochs + self.classifier_epochs

    def training_recipe(self):
        """The `TrainingRecipe` of pretraining and the baseline (the optimisation settings)."""
        return TrainingRecipe(
            optimizer=self.optimizer,
            learning_rate=self.scaled_learning_rate(),
            lr_schedule=self.lr_schedule,
            warmup_epochs=self.warmup_epochs,
            final_learning_rate=self.final_learning_rate
            * self.scaled_learning_rate()
            / self.learning_rate,
            weight_decay=self.weight_decay,
            momentum=self.momentum,
            batch_size=self.batch_size,
        )

    def classifier_recipe(self):
        """The `TrainingRecipe` of the classifier stage (`classifier_*` settings).

        Example:

        >>> ExperimentConfig(classifier_batch_size=16).classifier_recipe().batch_size
        16
        """
        return self.classifier_stage().training_recipe()


@dataclasses.dataclass(frozen=True)
class TrainingRecipe:
    """How one phase optimises: what `supcon_tf.experiment.phases` needs, and nothing else.

    Attributes:
        optimizer: optimizer name (`supcon_tf.training.optimizers.build_optimizer`).
        learning_rate: the peak learning rate, already scaled to `batch_size`.
        lr_schedule: `"constant"` or `"cosine"`, over the phase's epochs.
        warmup_epochs: linear warmup epochs at the start of the phase.
        final_learning_rate: the cosine schedule's floor (scaled like `learning_rate`).
        weight_decay, momentum: optimizer settings.
        batch_size: the global batch size.

    Example:

    >>> recipe = ExperimentConfig(learning_rate=0.1, optimizer="sgd",
    ...                           learning_rate_scaling="none").training_recipe()
    >>> recipe.optimizer, recipe.learning_rate, recipe.batch_size
    ('sgd', 0.1, 64)
    """

    optimizer: str
    learning_rate: float
    lr_schedule: str
    warmup_epochs: int
    final_learning_rate: float
    weight_decay: float
    momentum: float
    batch_size: int
