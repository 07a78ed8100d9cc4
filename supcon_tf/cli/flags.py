"""The absl flags of `supcon-train`, and their conversion to an `ExperimentConfig`.

Every flag mirrors the `ExperimentConfig` field of the same name and takes its
default from it, so the library and the command line cannot drift apart. To add a
setting: add the field to `ExperimentConfig`, then a line in the `_define_<group>_flags`
function of its group (data, model, loss, optimisation, distribution, evaluation,
output); `supcon-train --help` lists the flags by these groups.
"""

import dataclasses
import functools

from absl import flags

from supcon_tf.augment import AUGMENTATIONS
from supcon_tf.data.class_split import SPLITS
from supcon_tf.data.streaming import AUGMENT_PLACEMENTS
from supcon_tf.experiment import (
    LOSSES,
    METHODS,
    PROJECTION_HEADS,
    SUPCON_ONLY_OPTIONS,
    ExperimentConfig,
)
from supcon_tf.experiment.presets import PRESETS, apply_preset
from supcon_tf.losses import CONTRAST_MODES, SUMMATIONS
from supcon_tf.losses.kernels import DENOMINATOR_MODES, IMPLEMENTATIONS
from supcon_tf.models import HIDDEN_ACTIVATIONS
from supcon_tf.models.encoders import ENCODERS, STEMS
from supcon_tf.training.distribute import (
    LEARNING_RATE_SCALINGS,
    MIXED_PRECISION_POLICIES,
    STRATEGIES,
)
from supcon_tf.training.optimizers import OPTIMIZERS
from supcon_tf.training.schedules import SCHEDULES
from supcon_tf.training.selection import MONITORS

_DEFAULTS = ExperimentConfig()


class _FlagDefiner:
    """Defines flags on `flag_values` that default to the `ExperimentConfig` field."""

    def __init__(self, flag_values):
        self.flag_values = flag_values

    def string(self, name, help_text):
        flags.DEFINE_string(name, getattr(_DEFAULTS, name), help_text, flag_values=self.flag_values)

    def integer(self, name, help_text, lower_bound=1):
        flags.DEFINE_integer(
            name,
            getattr(_DEFAULTS, name),
            help_text,
            lower_bound=lower_bound,
            flag_values=self.flag_values,
        )

    def number(self, name, help_text, lower_bound=None, upper_bound=None):
        flags.DEFINE_float(
            name,
            getattr(_DEFAULTS, name),
            help_text,
            lower_bound=lower_bound,
            upper_bound=upper_bound,
            flag_values=self.flag_values,
        )

    def choice(self, name, choices, help_text):
        flags.DEFINE_enum(
            name, getattr(_DEFAULTS, name), choices, help_text, flag_values=self.flag_values
        )

    def boolean(self, name, help_text):
        flags.DEFINE_bool(name, getattr(_DEFAULTS, name), help_text, flag_values=self.flag_values)


class _ClassIdsParser(flags.ListParser):
    """Comma-separated class ids (`5,6,7`) as a list of ints."""

    def parse(self, argument):
        values = super().parse(argument)
        try:
            return [int(value) for value in values]
        except (TypeError, ValueError):
            raise ValueError(
                f"expected comma-separated class ids such as 5,6,7,8,9, got {argument!r}"
            ) from None

    def flag_type(self):
        return "comma-separated class ids"


def _define_data_flags(define):
    define.string(
        "dataset",
        "Dataset: digits (offline), cifar10, cifar100, mnist, fashion_mnist (downloaded by "
        "Keras), a path to an .npz file (x_train, y_train, x_test, y_test) or to a folder "
        "with train/<class>/ and test/<class>/ images (all held in RAM); streamed: such a "
        "folder with --image_size, a folder of TFRecord shards (train-*, test-*; see "
        "supcon-prepare) or tfds:<name> (pip install 'supcon_tf[tfds]').",
    )
    define.string(
        "data_dir",
        "Folder with local copies (<data_dir>/<name>.npz or <data_dir>/<name>/); TFDS's "
        "data folder for tfds:<name>.",
    )
    flags.DEFINE_integer(
        "image_size",
        _DEFAULTS.image_size,
        "Streams the dataset as square crops of this side: random-resized crops per view "
        "for training, a central crop for evaluation. Images may have any size. "
        "Unset: the dataset is held in RAM at its own size.",
        lower_bound=1,
        flag_values=define.flag_values,
    )
    define.number(
        "crop_min_area",
        "Smallest random-resized training crop of a streamed dataset (fraction of the "
        "area); 1 trains on whole images. Default: 0.08 from 96 px up, 0.2 below.",
        lower_bound=1e-6,
        upper_bound=1.0,
    )
    define.number(
        "center_crop_fraction",
        "Central evaluation crop of a streamed dataset (fraction of the shorter side). "
        "Default: 0.875 from 96 px up, 1 (whole image) below.",
        lower_bound=1e-6,
        upper_bound=1.0,
    )
    define.boolean(
        "skip_corrupt_images",
        "Leave unreadable images of a streamed dataset out (counted in report.json) "
        "instead of stopping with an error that names the file.",
    )
    define.number(
        "validation_fraction",
        "Share of the training data held out for validation (model selection).",
        lower_bound=0.0,
        upper_bound=0.99,
    )
    define.choice(
        "split",
        SPLITS,
        "standard: every stage trains on all classes. class_disjoint: pretraining, the "
        "classifier and the baseline train on the first half of the classes; retrieval and "
        "a linear probe of each frozen encoder are measured on the other half, never seen "
        "(in-RAM datasets).",
    )
    flags.DEFINE(
        _ClassIdsParser(),
        "unseen_classes",
        _DEFAULTS.unseen_classes,
        "With --split=class_disjoint: the class ids held out of training, e.g. 5,6,7,8,9 "
        "(default: the second half of the sorted class ids).",
        flag_values=define.flag_values,
        serializer=flags.CsvListSerializer(","),
    )
    flags.register_multi_flags_validator(
        ["split", "unseen_classes"],
        lambda values: values["unseen_classes"] is None or values["split"] == "class_disjoint",
        message="--unseen_classes applies to --split=class_disjoint only.",
        flag_values=define.flag_values,
    )
    define.choice("augment", AUGMENTATIONS, "Augmentation policy (views and classifier training).")
    define.number("augment_magnitude", "RandAugment magnitude (randaugment policies).", 0.0, 10.0)
    define.number("augment_strength", "Colour-jitter strength s (simaugment policies).", 1e-6)
    define.choice(
        "augment_placement",
        AUGMENT_PLACEMENTS,
        "Where streamed views are flipped and coloured: device (in the model, the default) or "
        "pipeline (in tf.data, on the CPU).",
    )


def _define_model_flags(define):
    define.choice("encoder", ENCODERS, "Encoder architecture.")
    define.number("width_multiplier", "Scales the encoder's number of filters.", lower_bound=1e-3)
    define.choice(
        "stem", STEMS, "ResNet stem: cifar (3x3, stride 1) or imagenet (7x7/2 + max-pool)."
    )
    define.choice(
        "projection_head",
        PROJECTION_HEADS,
        "mlp (the paper's projection head) or none (the loss sees the encoder's features).",
    )
    define.integer("projection_units", "Output width of the projection head.")
    define.boolean("projection_batch_norm", "BatchNorm in the projection head.")
    flags.DEFINE_integer(
        "classifier_hidden_units",
        _DEFAULTS.classifier_hidden_units,
        "Hidden layer width of the classifier heads (default: linear).",
        lower_bound=1,
        flag_values=define.flag_values,
    )
    define.choice(
        "classifier_hidden_activation",
        HIDDEN_ACTIVATIONS,
        "Activation of the classifier heads' hidden layer.",
    )
    define.number("classifier_dropout", "Dropout of the classifier heads.", 0.0, 0.99)
    define.boolean(
        "classifier_standardize",
        "Standardise the frozen features (BatchNorm without scale/offset) before the "
        "classifier head (--noclassifier_standardize to feed them as they are).",
    )
    define.boolean("baseline", "Also train the cross-entropy baseline (--nobaseline to skip it).")


def _define_loss_flags(define):
    define.choice(
        "method",
        METHODS,
        "Pretraining: supcon (with labels) or simclr (without); hybrid also trains a "
        "one-stage hybrid_weight x SupCon + CE model, reported beside the two-stage result.",
    )
    define.number(
        "hybrid_weight",
        "Weight lambda of the SupCon term of --method=hybrid (lambda x SupCon + CE).",
        lower_bound=1e-9,
    )
    define.integer("views", "Augmented views per image in pretraining.")
    define.number("temperature", "Temperature of the contrastive loss.", lower_bound=1e-6)
    define.integer(
        "memory_size",
        "Label-aware memory bank (XBM / MoCo queue): the last N samples' embeddings and "
        "labels are extra contrasts of every anchor (0: off).",
        lower_bound=0,
    )
    define.boolean(
        "momentum_encoder",
        "Fill the memory bank with a MoCo key network's embeddings: a copy of the encoder "
        "and projection head moved towards them after every step by --encoder_momentum "
        "(needs --memory_size > 0).",
    )
    define.number(
        "encoder_momentum",
        "Momentum m of the key network (key <- m key + (1 - m) query) of "
        "--momentum_encoder; not the optimizer's --momentum.",
        lower_bound=0.0,
    )
    flags.register_validator(
        "encoder_momentum",
        lambda value: value < 1,
        message="--encoder_momentum must be < 1 (MoCo uses 0.999).",
        flag_values=define.flag_values,
    )
    define.choice(
        "loss", LOSSES, "supcon (SupervisedContrastiveLoss) or npairs (the Keras example's)."
    )
    flags.DEFINE_float(
        "base_temperature",
        _DEFAULTS.base_temperature,
        "The loss is scaled by temperature / base_temperature (default: no scaling; the "
        "reference PyTorch code uses 0.07).",
        lower_bound=1e-6,
        flag_values=define.flag_values,
    )
    define.choice("contrast_mode", CONTRAST_MODES, "Anchors: all views, or one (view 0 only).")
    define.choice("summation", SUMMATIONS, "out (Eq. 2 of the paper) or in (Eq. 3).")
    define.choice(
        "denominator_mode",
        DENOMINATOR_MODES,
        "all (the paper), one_positive (SINCERE) or only_negatives (DCL): which views "
        "form each term's denominator.",
    )
    flags.DEFINE_integer(
        "positives_cap",
        _DEFAULTS.positives_cap,
        "At most this many positive views per anchor besides its own sample's other views "
        "(a multiple of --views; default: no cap).",
        lower_bound=0,
        flag_values=define.flag_values,
    )
    define.choice(
        "implementation", IMPLEMENTATIONS, "Loss kernel: auto, dense or blocked (huge batches)."
    )
    flags.DEFINE_integer(
        "block_size",
        _DEFAULTS.block_size,
        "Anchor rows per block of the blocked kernel (default: automatic).",
        lower_bound=1,
        flag_values=define.flag_values,
    )
    flags.register_validator(
        "views",
        lambda views: views >= 1,
        message="--views must be at least 1.",
        flag_values=define.flag_values,
    )
    flags.register_multi_flags_validator(
        ["method", "views"],
        lambda values: values["method"] != "simclr" or values["views"] >= 2,
        message="--method=simclr needs --views >= 2 (the other views are its only positives).",
        flag_values=define.flag_values,
    )
    flags.register_multi_flags_validator(
        ["momentum_encoder", "memory_size"],
        lambda values: not values["momentum_encoder"] or values["memory_size"] > 0,
        message="--momentum_encoder needs a memory bank: set --memory_size > 0.",
        flag_values=define.flag_values,
    )
    flags.register_multi_flags_validator(
        ["method", "hybrid_weight"],
        lambda values: values["method"] == "hybrid" or values["hybrid_weight"] == 1.0,
        message="--hybrid_weight applies only to --method=hybrid.",
        flag_values=define.flag_values,
    )
    flags.register_multi_flags_validator(
        ["positives_cap", "views"],
        lambda values: (
            values["positives_cap"] is None or values["positives_cap"] % values["views"] == 0
        ),
        message="--positives_cap must be a multiple of --views (it counts whole samples).",
        flag_values=define.flag_values,
    )
    flags.register_multi_flags_validator(
        ["loss", *SUPCON_ONLY_OPTIONS],
        lambda values: (
            values["loss"] != "npairs"
            or all(values[name] == default for name, default in SUPCON_ONLY_OPTIONS.items())
        ),
        message="--loss=npairs takes none of --base_temperature, --contrast_mode, --summation, "
        "--denominator_mode, --positives_cap, --implementation, --block_size (supcon options).",
        flag_values=define.flag_values,
    )


def _define_optimisation_flags(define):
    flags.DEFINE_enum(
        "preset",
        None,
        sorted(PRESETS),
        "A published recipe (supcon_tf.experiment.presets); flags given explicitly override its values.",
        flag_values=define.flag_values,
    )
    define.integer(
        "batch_size",
        "Images per step over all replicas (global batch); each of R replicas gets "
        "batch_size/R, and the contrastive loss contrasts the whole global batch.",
    )
    flags.DEFINE_integer(
        "gradient_cache_chunk_size",
        _DEFAULTS.gradient_cache_chunk_size,
        "Gradient caching in pretraining: encode the batch in chunks of this many images "
        "(the whole batch's loss and gradient at one chunk's activation memory, about one "
        "extra forward pass per step; BatchNorm statistics become per chunk). Default: off.",
        lower_bound=1,
        flag_values=define.flag_values,
    )
    define.integer("pretrain_epochs", "Epochs of contrastive pretraining.")
    define.integer("classifier_epochs", "Epochs of the classifier on the frozen encoder.")
    flags.DEFINE_integer(
        "baseline_epochs",
        _DEFAULTS.baseline_epochs,
        "Epochs of the cross-entropy baseline (default: pretrain + classifier epochs).",
        lower_bound=1,
        flag_values=define.flag_values,
    )
    define.choice("optimizer", OPTIMIZERS, "Optimizer of every phase.")
    define.number(
        "learning_rate",
        "(Peak) learning rate of every phase (for a global batch of 256, see "
        "--learning_rate_scaling).",
        lower_bound=0.0,
    )
    define.number(
        "weight_decay",
        "Weight decay, 0 disables it (decoupled for Keras' optimizers, L2 for LARS).",
        lower_bound=0.0,
    )
    define.number(
        "momentum", "Momentum of lars, sgd and rmsprop.", lower_bound=0.0, upper_bound=0.999
    )
    define.choice("lr_schedule", SCHEDULES, "Learning-rate schedule of each phase.")
    define.integer("warmup_epochs", "Linear learning-rate warmup epochs of each phase.", 0)
    define.number("final_learning_rate", "The floor of --lr_schedule=cosine.", lower_bound=0.0)
    _define_classifier_stage_flags(define)
    for name in ("learning_rate", "classifier_learning_rate"):
        flags.register_validator(
            name,
            lambda value: value > 0,
            message=f"--{name} must be positive.",
            flag_values=define.flag_values,
        )


def _define_classifier_stage_flags(define):
    """The classifier stage's own recipe, and model selection of both classifier phases."""
    define.choice(
        "classifier_optimizer", OPTIMIZERS, "Optimizer of the classifier on the frozen encoder."
    )
    define.number(
        "classifier_learning_rate",
        "(Peak) learning rate of the classifier stage (scaled to --classifier_batch_size "
        "by --learning_rate_scaling).",
        lower_bound=0.0,
    )
    define.choice(
        "classifier_lr_schedule", SCHEDULES, "Learning-rate schedule of the classifier stage."
    )
    flags.DEFINE_integer(
        "classifier_batch_size",
        _DEFAULTS.classifier_batch_size,
        "Batch size of the classifier stage (global; default: --batch_size).",
        lower_bound=1,
        flag_values=define.flag_values,
    )
    define.number(
        "classifier_weight_decay", "Weight decay of the classifier stage.", lower_bound=0.0
    )
    define.boolean(
        "select_best_epoch",
        "Keep the classifier's and the baseline's best validation epoch "
        "(--noselect_best_epoch: the last epoch).",
    )
    define.choice(
        "best_epoch_monitor",
        MONITORS,
        "What the best validation epoch is, for both arms: the lowest val_loss (ties: "
        "higher accuracy) or the highest val_accuracy (ties: lower loss).",
    )
    define.integer(
        "early_stopping_patience",
        "Stop the classifier and the baseline after N epochs without a better validation "
        "epoch (0: never).",
        lower_bound=0,
    )


def _define_distribution_flags(define):
    """See docs/distributed.md, "Multi-GPU, multi-machine and TPU training"."""
    define.choice(
        "strategy",
        STRATEGIES,
        "tf.distribute strategy: default (one device), mirrored (the local GPUs), "
        "multi_worker (the machines in TF_CONFIG; a custom training loop, since Keras 3's "
        "fit does not run there), tpu (with --tpu/--tpu_zone/--gcp_project).",
    )
    define.string("tpu", "TPU name or grpc:// address for --strategy=tpu (default: $TPU_NAME).")
    define.string("tpu_zone", "GCE zone of the TPU (--strategy=tpu).")
    define.string("gcp_project", "Google Cloud project of the TPU (--strategy=tpu).")
    define.choice(
        "mixed_precision",
        MIXED_PRECISION_POLICIES,
        "Mixed precision: none, mixed_float16 (with loss scaling) or mixed_bfloat16 (TPU); "
        "the loss is computed in float32.",
    )
    define.boolean(
        "sync_batchnorm",
        "BatchNorm with the statistics of the global batch (synchronised across replicas).",
    )
    define.choice(
        "learning_rate_scaling",
        ("auto", *LEARNING_RATE_SCALINGS),
        "How --learning_rate (given for a batch of 256) follows the global --batch_size: "
        "auto (linear lr*batch/256 for sgd/lars, sqrt for lamb, none for adam/adamw/rmsprop), "
        "linear, sqrt or none.",
    )
    flags.register_multi_flags_validator(
        ["sync_batchnorm", "gradient_cache_chunk_size"],
        lambda values: not (values["sync_batchnorm"] and values["gradient_cache_chunk_size"]),
        message="--sync_batchnorm cannot be combined with --gradient_cache_chunk_size "
        "(gradient caching normalises each chunk by its own statistics).",
        flag_values=define.flag_values,
    )
    flags.register_multi_flags_validator(
        ["strategy", "tpu", "tpu_zone", "gcp_project"],
        lambda values: (
            values["strategy"] == "tpu"
            or not (values["tpu"] or values["tpu_zone"] or values["gcp_project"])
        ),
        message="--tpu, --tpu_zone and --gcp_project need --strategy=tpu.",
        flag_values=define.flag_values,
    )


def _define_evaluation_flags(define):
    """See supcon_tf.evaluation."""
    define.boolean(
        "evaluate",
        "Evaluate at the end: ECE, per-class accuracy, kNN, t-SNE, corruptions, report.md "
        "(--noevaluate to skip; supcon-eval runs it later).",
    )
    define.boolean(
        "knn_monitor",
        "Log the encoder's kNN accuracy on the validation split during pretraining "
        "(--noknn_monitor to skip).",
    )
    define.integer("knn_monitor_every", "Epochs between two kNN measurements in pretraining.")


def _define_output_flags(define):
    define.string("model_dir", "Output folder; an interrupted run in it is resumed.")
    define.integer(
        "backup_steps",
        "Back up the training state every N steps, so that a killed run resumes mid-epoch "
        "(0: at the end of every epoch).",
        lower_bound=0,
    )
    define.integer("seed", "Seed of the data split, weights, shuffling and augmentation.", 0)
    define.boolean(
        "deterministic",
        "Deterministic TensorFlow ops (slower on GPUs): with --seed, two runs, interrupted "
        "or not, give the same weights.",
    )
    define.integer(
        "verbose",
        "Keras progress: 0 silent, 1 progress bars on a terminal (one line per epoch in a "
        "log file), 2 one line per epoch.",
        0,
    )
    define.boolean("reevaluate", "Evaluate a finished run again (without it: 'Already complete').")
    define.boolean("dry_run", "Check the run (paths, data, batch sizes) and stop; write nothing.")


# The flag groups of `supcon-train`, in the order `--help` lists them.
_FLAG_GROUPS = (
    ("data", _define_data_flags),
    ("model", _define_model_flags),
    ("loss", _define_loss_flags),
    ("optimisation", _define_optimisation_flags),
    ("distribution", _define_distribution_flags),
    ("evaluation", _define_evaluation_flags),
    ("output", _define_output_flags),
)


def define_flags(flag_values=flags.FLAGS):
    """Defines the `supcon-train` flags (once) on `flag_values`."""
    if "pretrain_epochs" in flag_values:
        return
    define = _FlagDefiner(flag_values)
    for _, define_group in _FLAG_GROUPS:
        define_group(define)


@functools.cache
def flag_groups():
    """The names of the `supcon-train` flags by group, in `--help` order.

    Example:

    >>> groups = flag_groups()
    >>> list(groups)
    ['data', 'model', 'loss', 'optimisation', 'distribution', 'evaluation', 'output']
    >>> "batch_size" in groups["optimisation"]
    True
    """
    groups = {}
    scratch = flags.FlagValues()
    define = _FlagDefiner(scratch)
    for group, define_group in _FLAG_GROUPS:
        before = set(scratch)
        define_group(define)
        groups[group] = tuple(name for name in scratch if name not in before)
    return groups


def apply_preset_to_flags(flag_values=flags.FLAGS):
    """Sets the flags of `--preset` that were not given explicitly, then re-validates.

    A flag counts as explicit when it appeared on the command line
    (`flag_values[name].present`). Returns the names of the flags the preset set.
    """
    name = flag_values["preset"].value
    if not name:
        return []
    names = [
        field.name for field in dataclasses.fields(ExperimentConfig) if field.name in flag_values
    ]
    explicit = {key: flag_values[key].value for key in names if flag_values[key].present}
    current = {key: flag_values[key].value for key in names}
    merged = apply_preset(name, explicit, current)
    changed = []
    for key in names:
        if key in explicit or merged[key] == current[key]:
            continue
        flag = flag_values[key]
        try:
            flag.value = flag.parser.parse(merged[key])
        except ValueError as error:
            raise ValueError(
                f"--preset={name} sets --{key}={merged[key]!r}, which this installation "
                f"rejects ({error}); give --{key} explicitly to override it."
            ) from error
        changed.append(key)
    flag_values.validate_all_flags()
    return changed


def flag_values_dict(flag_values=flags.FLAGS):
    """The values of the `supcon-train` flags, by `ExperimentConfig` field (for `flags.json`)."""
    return {
        field.name: flag_values[field.name].value
        for field in dataclasses.fields(ExperimentConfig)
        if field.name in flag_values
    }


def config_from_flags(flag_values=flags.FLAGS):
    """Returns the `ExperimentConfig` whose fields are the values of the flags."""
    return ExperimentConfig(**flag_values_dict(flag_values))
