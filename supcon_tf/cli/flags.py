"""The absl flags of `supcon-train`, and their conversion to an `ExperimentConfig`.

Every flag mirrors the `ExperimentConfig` field of the same name and takes its
default from it, so the library and the command line cannot drift apart. To add a
setting: add the field to `ExperimentConfig`, then a `DEFINE_*` line in
`define_flags`.
"""

import dataclasses

from absl import flags

from supcon_tf.augment import AUGMENTATIONS
from supcon_tf.distribute import LEARNING_RATE_SCALINGS, MIXED_PRECISION_POLICIES, STRATEGIES
from supcon_tf.encoders import ENCODERS, STEMS
from supcon_tf.experiment import METHODS, ExperimentConfig
from supcon_tf.optimizers import OPTIMIZERS
from supcon_tf.presets import PRESETS, apply_preset
from supcon_tf.schedules import SCHEDULES

_DEFAULTS = ExperimentConfig()


def define_flags(flag_values=flags.FLAGS):
    """Defines the `supcon-train` flags (once) on `flag_values`."""
    if "pretrain_epochs" in flag_values:
        return
    defaults = _DEFAULTS

    def string(name, help_text):
        flags.DEFINE_string(name, getattr(defaults, name), help_text, flag_values=flag_values)

    def integer(name, help_text, lower_bound=1):
        flags.DEFINE_integer(
            name,
            getattr(defaults, name),
            help_text,
            lower_bound=lower_bound,
            flag_values=flag_values,
        )

    def number(name, help_text, lower_bound=None, upper_bound=None):
        flags.DEFINE_float(
            name,
            getattr(defaults, name),
            help_text,
            lower_bound=lower_bound,
            upper_bound=upper_bound,
            flag_values=flag_values,
        )

    def choice(name, choices, help_text):
        flags.DEFINE_enum(
            name, getattr(defaults, name), choices, help_text, flag_values=flag_values
        )

    # Data.
    string(
        "dataset",
        "Dataset: digits (offline), cifar10, cifar100, mnist, fashion_mnist (downloaded by "
        "Keras), a path to an .npz file (x_train, y_train, x_test, y_test) or to a folder "
        "with train/<class>/ and test/<class>/ images.",
    )
    string("data_dir", "Folder with local copies (<data_dir>/<name>.npz or <data_dir>/<name>/).")
    number(
        "validation_fraction",
        "Share of the training data held out for validation (model selection).",
        lower_bound=0.0,
        upper_bound=0.99,
    )
    # Model.
    choice("encoder", ENCODERS, "Encoder architecture.")
    number("width_multiplier", "Scales the encoder's number of filters.", lower_bound=1e-3)
    choice("stem", STEMS, "ResNet stem: cifar (3x3, stride 1) or imagenet (7x7/2 + max-pool).")
    integer("projection_units", "Output width of the projection head.")
    flags.DEFINE_bool(
        "projection_batch_norm",
        defaults.projection_batch_norm,
        "BatchNorm in the projection head.",
        flag_values=flag_values,
    )
    # Pretraining.
    choice("method", METHODS, "Pretraining: supcon (with labels) or simclr (without).")
    integer("views", "Augmented views per image in pretraining.")
    integer(
        "batch_size",
        "Images per step over all replicas (global batch); each of R replicas gets "
        "batch_size/R, and the contrastive loss contrasts the whole global batch.",
    )
    integer("pretrain_epochs", "Epochs of contrastive pretraining.")
    integer("classifier_epochs", "Epochs of the classifier on the frozen encoder.")
    flags.DEFINE_integer(
        "baseline_epochs",
        defaults.baseline_epochs,
        "Epochs of the cross-entropy baseline (default: pretrain + classifier epochs).",
        lower_bound=1,
        flag_values=flag_values,
    )
    number("temperature", "Temperature of the contrastive loss.", lower_bound=1e-6)
    choice("optimizer", OPTIMIZERS, "Optimizer of every phase.")
    number(
        "learning_rate",
        "(Peak) learning rate of every phase (for a global batch of 256, see "
        "--learning_rate_scaling).",
        lower_bound=0.0,
    )
    number(
        "weight_decay",
        "Weight decay, 0 disables it (decoupled for Keras' optimizers, L2 for LARS).",
        lower_bound=0.0,
    )
    number("momentum", "Momentum of lars, sgd and rmsprop.", lower_bound=0.0, upper_bound=0.999)
    choice("lr_schedule", SCHEDULES, "Learning-rate schedule of each phase.")
    integer("warmup_epochs", "Linear learning-rate warmup epochs of each phase.", 0)
    number("final_learning_rate", "The floor of --lr_schedule=cosine.", lower_bound=0.0)
    flags.DEFINE_enum(
        "preset",
        None,
        sorted(PRESETS),
        "A published recipe (supcon_tf.presets); flags given explicitly override its values.",
        flag_values=flag_values,
    )
    choice("augment", AUGMENTATIONS, "Augmentation policy (views and classifier training).")
    number("augment_magnitude", "RandAugment magnitude (randaugment policies).", 0.0, 10.0)
    number("augment_strength", "Colour-jitter strength s (simaugment policies).", 1e-6)
    # Classifier heads.
    flags.DEFINE_integer(
        "classifier_hidden_units",
        defaults.classifier_hidden_units,
        "Hidden layer width of the classifier heads (default: linear).",
        lower_bound=1,
        flag_values=flag_values,
    )
    number("classifier_dropout", "Dropout of the classifier heads.", 0.0, 0.99)
    flags.DEFINE_bool(
        "baseline",
        defaults.baseline,
        "Also train the cross-entropy baseline (--nobaseline to skip it).",
        flag_values=flag_values,
    )
    # Distribution (see the README section "Multi-GPU, multi-machine and TPU training").
    choice(
        "strategy",
        STRATEGIES,
        "tf.distribute strategy: default (one device), mirrored (the local GPUs), "
        "multi_worker (the machines in TF_CONFIG; a custom training loop, since Keras 3's "
        "fit does not run there), tpu (with --tpu/--tpu_zone/--gcp_project).",
    )
    string("tpu", "TPU name or grpc:// address for --strategy=tpu (default: $TPU_NAME).")
    string("tpu_zone", "GCE zone of the TPU (--strategy=tpu).")
    string("gcp_project", "Google Cloud project of the TPU (--strategy=tpu).")
    choice(
        "mixed_precision",
        MIXED_PRECISION_POLICIES,
        "Mixed precision: none, mixed_float16 (with loss scaling) or mixed_bfloat16 (TPU); "
        "the loss is computed in float32.",
    )
    flags.DEFINE_bool(
        "sync_batchnorm",
        defaults.sync_batchnorm,
        "BatchNorm with the statistics of the global batch (synchronised across replicas).",
        flag_values=flag_values,
    )
    choice(
        "learning_rate_scaling",
        ("auto", *LEARNING_RATE_SCALINGS),
        "How --learning_rate (given for a batch of 256) follows the global --batch_size: "
        "auto (linear lr*batch/256 for sgd/lars, sqrt for lamb, none for adam/adamw/rmsprop), "
        "linear, sqrt or none.",
    )
    integer(
        "backup_steps",
        "Back up the training state every N steps, so that a killed run resumes mid-epoch "
        "(0: at the end of every epoch).",
        lower_bound=0,
    )
    # Run.
    string("model_dir", "Output folder; an interrupted run in it is resumed.")
    integer("seed", "Seed of the data split, weights, shuffling and augmentation.", 0)
    integer("verbose", "Keras progress: 0 silent, 1 progress bars, 2 one line per epoch.", 0)
    # Evaluation (supcon_tf.evaluation).
    flags.DEFINE_bool(
        "evaluate",
        defaults.evaluate,
        "Evaluate at the end: ECE, per-class accuracy, kNN, t-SNE, corruptions, report.md "
        "(--noevaluate to skip; supcon-eval runs it later).",
        flag_values=flag_values,
    )
    flags.DEFINE_bool(
        "knn_monitor",
        defaults.knn_monitor,
        "Log the encoder's kNN accuracy on the validation split during pretraining "
        "(--noknn_monitor to skip).",
        flag_values=flag_values,
    )
    integer("knn_monitor_every", "Epochs between two kNN measurements in pretraining.")

    flags.register_validator(
        "views",
        lambda views: views >= 1,
        message="--views must be at least 1.",
        flag_values=flag_values,
    )
    flags.register_multi_flags_validator(
        ["method", "views"],
        lambda values: values["method"] != "simclr" or values["views"] >= 2,
        message="--method=simclr needs --views >= 2 (the other views are its only positives).",
        flag_values=flag_values,
    )
    flags.register_multi_flags_validator(
        ["strategy", "tpu", "tpu_zone", "gcp_project"],
        lambda values: (
            values["strategy"] == "tpu"
            or not (values["tpu"] or values["tpu_zone"] or values["gcp_project"])
        ),
        message="--tpu, --tpu_zone and --gcp_project need --strategy=tpu.",
        flag_values=flag_values,
    )
    flags.register_validator(
        "learning_rate",
        lambda value: value > 0,
        message="--learning_rate must be positive.",
        flag_values=flag_values,
    )


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
