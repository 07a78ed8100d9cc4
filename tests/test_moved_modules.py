"""Every public name of the modules that moved into packages by stage, from both paths.

The expected names were recorded from the flat layout before the move: the old module
path (now a shim) must give each of them with a `DeprecationWarning` naming its new home,
and the new home (or, for the packages that kept their path, the package) must give the
same object.
"""

import importlib
import sys
import warnings

import pytest


def _names(text):
    """The names of a whitespace-separated list."""
    return text.split()


# The public names of each old module, as they were before the move.
MOVED_NAMES = {
    "supcon_tf.kernels": _names(
        "DEFAULT_BLOCK_ELEMENTS DENOMINATOR_MODES IMPLEMENTATIONS "
        "MIN_BLOCK_ROWS Positives Variant anchor_losses check_implementation check_variant "
        "choose_implementation default_block_size"
    ),
    "supcon_tf.layers": _names("L2Normalize ProjectionHead"),
    "supcon_tf.encoders": _names("ENCODERS STEMS build_encoder"),
    "supcon_tf.memory_bank": _names("MemoryBank"),
    "supcon_tf.momentum_encoder": _names("MomentumEncoder check_momentum track_loss train_step"),
    "supcon_tf.gradient_cache": _names("check_chunk_size track_loss train_step"),
    "supcon_tf.optimizers": _names("LARS OPTIMIZERS build_optimizer"),
    "supcon_tf.schedules": _names(
        "REFERENCE_BATCH_SIZE SCHEDULES WarmupCosineDecay build_schedule plot_schedule "
        "scale_learning_rate"
    ),
    "supcon_tf.distribute": _names(
        "LEARNING_RATE_SCALINGS MIXED_PRECISION_POLICIES REFERENCE_BATCH_SIZE STRATEGIES "
        "build_strategy default_learning_rate_scaling evaluate_classifier fit_with_custom_loop "
        "is_chief join loss_scale_optimizer needs_custom_loop per_replica_batch_size "
        "scale_learning_rate set_mixed_precision synchronize_batch_norm training_scope "
        "worker_model_dir"
    ),
    "supcon_tf.checkpoints": _names(
        "CheckpointError FORMAT_VERSION NonFiniteTrainingError StopRequested TrainingCheckpoint "
        "latest_position training_position write_atomically"
    ),
    "supcon_tf.selection": _names("BestEpoch MONITORS is_file join read_text write_atomically"),
}

# The new home of each old module.
NEW_HOMES = {
    "supcon_tf.kernels": "supcon_tf.losses.kernels",
    "supcon_tf.layers": "supcon_tf.models.layers",
    "supcon_tf.encoders": "supcon_tf.models.encoders",
    "supcon_tf.memory_bank": "supcon_tf.models.memory_bank",
    "supcon_tf.momentum_encoder": "supcon_tf.models.momentum_encoder",
    "supcon_tf.gradient_cache": "supcon_tf.models.gradient_cache",
    "supcon_tf.optimizers": "supcon_tf.training.optimizers",
    "supcon_tf.schedules": "supcon_tf.training.schedules",
    "supcon_tf.distribute": "supcon_tf.training.distribute",
    "supcon_tf.checkpoints": "supcon_tf.training.checkpoints",
    "supcon_tf.selection": "supcon_tf.training.selection",
}

# Modules that became packages (or a module over a package's parts) under the same path.
KEPT_PATHS = {
    "supcon_tf.losses": _names(
        "CONTRAST_MODES NPairsLoss SUMMATIONS SupervisedContrastiveLoss label_tensor npairs_loss "
        "supervised_contrastive_loss"
    ),
    "supcon_tf.models": _names(
        "HIDDEN_ACTIVATIONS HybridSupConModel MemoryBank MomentumEncoder ProjectionHead "
        "SupConModel SupervisedContrastiveLoss build_cross_entropy_classifier "
        "build_linear_classifier check_momentum train_step_with_key_network"
    ),
    "supcon_tf.augment": _names(
        "AUGMENTATIONS AUTOAUGMENT_POLICIES AutoAugment ColorDistortion RANDAUGMENT_OPERATIONS "
        "RandAugment RandomApply RandomResizedCrop augmentation_grid build_augmenter color_jitter "
        "save_augmentation_grid"
    ),
    "supcon_tf.data.streaming": _names(
        "EVALUATION_CROP_FRACTION SHUFFLE_BUFFER_RECORDS SMALL_IMAGE_SIZE StreamSplit "
        "StreamingSplits TFDS_PREFIX central_crop check_fraction crop_settings "
        "input_error_message is_streamed make_evaluation_stream make_training_stream "
        "open_streaming_dataset random_resized_crop training_steps_per_epoch"
    ),
}

# Old names that the new home spells differently (the old spelling stays in the shim).
RENAMED = {("supcon_tf.distribute", "evaluate_classifier"): "loss_and_accuracy"}
# Names of the old module that now live in a sibling module of the new home.
ELSEWHERE = {
    ("supcon_tf.distribute", "evaluate_classifier"): "supcon_tf.training.custom_loop",
    ("supcon_tf.distribute", "fit_with_custom_loop"): "supcon_tf.training.custom_loop",
    ("supcon_tf.distribute", "needs_custom_loop"): "supcon_tf.training.custom_loop",
}


@pytest.mark.parametrize("old_path", sorted(MOVED_NAMES))
def test_old_path_warns_and_reexports_every_name(old_path, monkeypatch):
    monkeypatch.delitem(sys.modules, old_path, raising=False)
    with pytest.warns(DeprecationWarning, match=NEW_HOMES[old_path].replace(".", r"\.")):
        old = importlib.import_module(old_path)
    for name in MOVED_NAMES[old_path]:
        home = importlib.import_module(ELSEWHERE.get((old_path, name), NEW_HOMES[old_path]))
        new_name = RENAMED.get((old_path, name), name)
        assert getattr(old, name) is getattr(home, new_name), (old_path, name)
    assert sorted(old.__all__) == sorted(MOVED_NAMES[old_path])


@pytest.mark.parametrize("path", sorted(KEPT_PATHS))
def test_kept_paths_keep_every_name_without_a_warning(path, monkeypatch):
    monkeypatch.delitem(sys.modules, path, raising=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        module = importlib.import_module(path)
    missing = [name for name in KEPT_PATHS[path] if not hasattr(module, name)]
    assert not missing, (path, missing)
