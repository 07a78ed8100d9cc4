"""Tests of supcon_tf.experiment: the two phases end to end, resumption, reports."""

import dataclasses
import importlib.util
import json
import re
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from supcon_tf.experiment import (
    SUPCON_ONLY_OPTIONS,
    ExperimentConfig,
    components,
    contrastive_loss,
    run_experiment,
    stages,
)
from supcon_tf.files import is_file, read_text
from supcon_tf.training.checkpoints import TrainingCheckpoint


class SimulatedKillError(Exception):
    """Stands in for a killed process."""


def _tiny_npz(path):
    """A small two-class image dataset that trains in seconds."""
    rng = np.random.default_rng(0)
    labels = np.arange(80) % 2
    images = rng.random((80, 6, 6, 1)) * 0.4
    images[labels == 0, :3] += 0.6
    images[labels == 1, 3:] += 0.6
    np.savez(
        path,
        x_train=images[:64].astype("float32"),
        y_train=labels[:64],
        x_test=images[64:].astype("float32"),
        y_test=labels[64:],
    )
    return str(path)


def _config(tmp_path, name, **overrides):
    settings = {
        "dataset": _tiny_npz(tmp_path / "tiny.npz"),
        "validation_fraction": 0.25,
        "width_multiplier": 0.125,
        "batch_size": 16,
        "pretrain_epochs": 3,
        "classifier_epochs": 2,
        "baseline_epochs": 2,
        "learning_rate": 3e-3,
        "temperature": 0.5,
        "model_dir": str(tmp_path / name),
        "verbose": 0,
    }
    settings.update(overrides)
    return ExperimentConfig(**settings)


def _interrupt_after(monkeypatch, phase, epochs):
    """Makes training of `phase` stop with an exception after `epochs` epochs."""
    original = TrainingCheckpoint.on_epoch_end

    def on_epoch_end(self, epoch, logs=None):
        original(self, epoch, logs)
        if self.name == phase and epoch + 1 == epochs:
            raise SimulatedKillError(f"{phase} stopped after epoch {epoch + 1}")

    monkeypatch.setattr(TrainingCheckpoint, "on_epoch_end", on_epoch_end)


def _model_weights(path):
    return [np.array(weight) for weight in keras.saving.load_model(path).weights]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """One complete run (pretraining, classifier, baseline) shared by several tests."""
    root = tmp_path_factory.mktemp("experiment")
    config = _config(root, "run")
    return config, run_experiment(config)


def test_run_writes_models_report_and_logs(finished_run):
    config, report = finished_run
    model_dir = Path(config.model_dir)
    for name in ("encoder.keras", "classifier.keras", "baseline.keras", "report.json"):
        assert (model_dir / name).is_file(), name
    saved = json.loads((model_dir / "report.json").read_text())
    for key in ("supcon", "cross_entropy", "config", "dataset", "history"):
        assert saved[key] == json.loads(json.dumps(report[key])), key
    assert report["config"] == dataclasses.asdict(config)
    assert report["dataset"] == {
        "name": config.dataset,
        "streamed": False,
        "num_classes": 2,
        "input_shape": [6, 6, 1],
        "train": 48,
        "validation": 16,
        "test": 16,
    }
    for method in ("supcon", "cross_entropy"):
        assert 0.0 <= report[method]["test_accuracy"] <= 1.0
        assert 0.0 <= report[method]["validation_accuracy"] <= 1.0
    assert set(report["timings"]) >= {"pretrain_seconds", "classifier_seconds", "baseline_seconds"}
    assert len(report["history"]["pretrain"]["loss"]) == 3
    assert len(report["history"]["classifier"]["val_accuracy"]) == 2
    for phase in ("pretrain", "classifier", "baseline"):
        assert (model_dir / "phases" / f"{phase}.json").is_file()
        assert len((model_dir / "logs" / phase / "history.csv").read_text().splitlines()) == 1 + (
            3 if phase == "pretrain" else 2
        )
    if importlib.util.find_spec("tensorboard") is not None:
        assert list((model_dir / "logs" / "pretrain").glob("**/events.out.tfevents*"))
    # The classifier maps images to logits and reproduces the reported test accuracy.
    classifier = keras.saving.load_model(model_dir / "classifier.keras")
    with np.load(config.dataset) as data:
        logits = classifier.predict(data["x_test"], verbose=0)
        accuracy = np.mean(np.argmax(logits, axis=1) == data["y_test"])
    assert logits.shape == (16, 2)
    np.testing.assert_allclose(accuracy, report["supcon"]["test_accuracy"], atol=1e-6)


def test_report_has_the_retrieval_of_both_encoders_on_the_test_set(finished_run):
    """The standard split: each test image a query among the others (leave-one-out)."""
    from supcon_tf.evaluation.retrieval_section import classifier_encoder
    from supcon_tf.retrieval import retrieval_metrics

    config, report = finished_run
    section = report["retrieval"]
    assert (section["split"], section["classes"], section["num_queries"]) == (
        "standard",
        ["0", "1"],
        16,
    )
    assert "linear_probe" not in section
    encoders = {
        "supcon": keras.saving.load_model(Path(config.model_dir, "encoder.keras")),
        "cross_entropy": classifier_encoder(
            keras.saving.load_model(Path(config.model_dir, "baseline.keras"))
        ),
    }
    with np.load(config.dataset) as data:
        images, labels = data["x_test"], data["y_test"]
    for name, encoder in encoders.items():
        embeddings = encoder.predict(images, verbose=0)
        assert section["models"][name] == retrieval_metrics(embeddings, labels, ks=(1, 2, 4, 8))
        assert all(0.0 <= value <= 1.0 for value in section["models"][name].values())
    saved = json.loads(Path(config.model_dir, "report.json").read_text())
    assert saved["retrieval"] == json.loads(json.dumps(section))
    markdown = Path(config.model_dir, "report.md").read_text()
    assert "## Retrieval on the test set" in markdown
    assert f"| supcon | {section['models']['supcon']['precision_at_1']:.4f} |" in markdown


@pytest.mark.parametrize("method", ["supcon", "cross_entropy"])
def test_report_names_the_best_validation_epoch(finished_run, method):
    config, report = finished_run
    assert config.best_epoch_monitor == "val_loss"
    phase = {"supcon": "classifier", "cross_entropy": "baseline"}[method]
    history = report["history"][phase]
    epoch = report[method]["selected_epoch"]
    assert report[method]["epochs_trained"] == len(history["val_accuracy"]) == 2
    # The selected epoch has the lowest validation loss (ties: the best accuracy) ...
    candidates = [
        (-loss, accuracy, -index)
        for index, (accuracy, loss) in enumerate(
            zip(history["val_accuracy"], history["val_loss"], strict=True)
        )
    ]
    assert epoch == -max(candidates)[2] + 1
    # ... and the saved model is that epoch's: its validation accuracy is the logged one.
    np.testing.assert_allclose(
        report[method]["validation_accuracy"], history["val_accuracy"][epoch - 1], atol=1e-6
    )


def test_classifier_stage_settings_reach_its_optimizer(tmp_path):
    config = _config(
        tmp_path,
        "stage",
        classifier_optimizer="sgd",
        classifier_learning_rate=0.05,
        classifier_lr_schedule="cosine",
        classifier_batch_size=8,
        classifier_weight_decay=1e-3,
        classifier_epochs=3,
        learning_rate_scaling="none",
        select_best_epoch=False,
        projection_head="none",
        evaluate=False,
    )
    report = run_experiment(config)
    model_dir = Path(config.model_dir)
    classifier = keras.saving.load_model(model_dir / "classifier.keras")
    optimizer = classifier.optimizer
    assert isinstance(optimizer, keras.optimizers.SGD)
    assert optimizer.weight_decay == pytest.approx(1e-3)
    assert optimizer.momentum == pytest.approx(config.momentum)
    # 48 training images in batches of 8: 6 steps per epoch, 3 epochs, cosine from 0.05.
    schedule = optimizer.get_config()["learning_rate"]["config"]
    assert schedule["learning_rate"] == pytest.approx(0.05)
    assert schedule["total_steps"] == 18 and schedule["warmup_steps"] == 0
    assert int(optimizer.iterations) == 18
    assert report["supcon"]["selected_epoch"] == report["supcon"]["epochs_trained"] == 3
    # The baseline keeps the pretraining recipe: Adam at 3e-3, batches of 16.
    baseline = keras.saving.load_model(model_dir / "baseline.keras").optimizer
    assert isinstance(baseline, keras.optimizers.Adam)
    assert float(baseline.learning_rate) == pytest.approx(3e-3)
    assert int(baseline.iterations) == 2 * 3


@pytest.mark.slow
def test_pretraining_lowers_the_loss_and_classifier_learns(tmp_path):
    report = run_experiment(
        _config(tmp_path, "learn", pretrain_epochs=6, classifier_epochs=8, baseline=False)
    )
    losses = report["history"]["pretrain"]["loss"]
    assert losses[-1] < losses[0] - 0.05, losses
    assert report["supcon"]["test_accuracy"] >= 0.75
    assert "cross_entropy" not in report


def test_interrupted_run_resumes_to_the_same_state(tmp_path, monkeypatch, finished_run):
    # The uninterrupted run: the baseline phase does not change the other two.
    straight_config, uninterrupted = finished_run
    straight = Path(straight_config.model_dir)

    config = _config(tmp_path, "resumed", baseline=False)
    with monkeypatch.context() as patch:
        _interrupt_after(patch, "pretrain", epochs=2)
        with pytest.raises(SimulatedKillError):
            run_experiment(config)
    with monkeypatch.context() as patch:
        _interrupt_after(patch, "classifier", epochs=1)
        with pytest.raises(SimulatedKillError):
            run_experiment(config)
    resumed = run_experiment(config)

    phases = json.loads((tmp_path / "resumed" / "phases" / "pretrain.json").read_text())
    assert phases["resumed_from_epoch"] == 2
    assert resumed["history"]["pretrain"]["loss"] == pytest.approx(
        uninterrupted["history"]["pretrain"]["loss"][2:], rel=1e-5
    )
    csv_rows = (tmp_path / "resumed" / "logs" / "pretrain" / "history.csv").read_text()
    assert len([row for row in csv_rows.splitlines() if row[:1].isdigit()]) == 3
    for name in ("encoder.keras", "classifier.keras"):
        for expected, actual in zip(
            _model_weights(straight / name),
            _model_weights(tmp_path / "resumed" / name),
            strict=True,
        ):
            np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-6)
    assert resumed["supcon"] == pytest.approx(uninterrupted["supcon"], rel=1e-5)
    assert not any((tmp_path / "resumed" / "backup").iterdir())


def test_finished_phases_are_not_redone(finished_run, monkeypatch):
    config, first = finished_run

    def fail(*args, **kwargs):
        raise AssertionError("a finished phase was trained again")

    monkeypatch.setattr(stages, "fit_phase", fail)
    monkeypatch.setattr(components, "build_encoder", fail)
    second = run_experiment(dataclasses.replace(config, verbose=1))
    for method in ("supcon", "cross_entropy"):
        assert second[method] == first[method]


@pytest.mark.slow
def test_simclr_pretraining(tmp_path):
    report = run_experiment(_config(tmp_path, "simclr", method="simclr", baseline=False))
    assert report["method"] == "simclr" and 0 <= report["supcon"]["test_accuracy"] <= 1


def test_hybrid_is_reported_beside_the_two_stage_result(tmp_path):
    config = _config(
        tmp_path,
        "hybrid",
        method="hybrid",
        hybrid_weight=0.5,
        pretrain_epochs=2,
        baseline=False,
        evaluate=False,
        knn_monitor=False,
    )
    report = run_experiment(config)
    for method in ("supcon", "hybrid"):
        assert 0.0 <= report[method]["test_accuracy"] <= 1.0
    assert len(report["history"]["hybrid"]["loss"]) == 2
    assert report["config"]["hybrid_weight"] == 0.5
    assert (Path(config.model_dir) / "hybrid.keras").is_file()


def test_changed_configuration_is_refused(finished_run):
    config, _ = finished_run
    with pytest.raises(ValueError, match=r"different configuration \(temperature: 0.5 -> 0.2\)"):
        run_experiment(dataclasses.replace(config, temperature=0.2))


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"views": 0}, "`views` must be an integer >= 1, got 0"),
        ({"batch_size": -1}, "`batch_size` must be an integer >= 1"),
        ({"pretrain_epochs": 0}, "`pretrain_epochs` must be an integer >= 1"),
        ({"baseline_epochs": 0}, "`baseline_epochs` must be an integer >= 1"),
        ({"method": "byol"}, "`method` must be one of .*got 'byol'"),
        ({"method": "simclr", "views": 1}, "SimCLR pretraining needs at least 2 views"),
        ({"learning_rate": 0.0}, "`learning_rate` must be > 0"),
        ({"temperature": -0.1}, "`temperature` must be > 0.0, got -0.1"),
        ({"model_dir": ""}, "`model_dir` must be a folder path"),
        ({"projection_head": "byol"}, "`projection_head` must be one of .*got 'byol'"),
        (
            {"classifier_optimizer": "adagrad"},
            "`classifier_optimizer` must be one of .*got 'adagrad'",
        ),
        (
            {"classifier_lr_schedule": "step"},
            "`classifier_lr_schedule` must be one of .*got 'step'",
        ),
        ({"classifier_hidden_activation": "gelu"}, "`classifier_hidden_activation` must be one of"),
        ({"classifier_learning_rate": 0.0}, "`classifier_learning_rate` must be > 0"),
        ({"classifier_weight_decay": -1.0}, "`classifier_weight_decay` must be >= 0"),
        ({"classifier_batch_size": 0}, "`classifier_batch_size` must be an integer >= 1"),
        ({"early_stopping_patience": -2}, "`early_stopping_patience` must be an integer >= 0"),
        ({"best_epoch_monitor": "loss"}, "`best_epoch_monitor` must be one of .*got 'loss'"),
        ({"crop_min_area": 0.0}, r"`crop_min_area` must be a number in \(0, 1\], got 0.0"),
        ({"center_crop_fraction": 1.5}, r"`center_crop_fraction` must be a number in \(0, 1\]"),
        ({"crop_min_area": True}, r"`crop_min_area` must be a number in \(0, 1\], got True"),
        ({"loss": "triplet"}, "`loss` must be one of .*got 'triplet'"),
        ({"method": "hybrid", "hybrid_weight": 0.0}, "`hybrid_weight` must be > 0"),
        ({"hybrid_weight": 2.0}, "applies only to method='hybrid', got method='supcon'"),
        ({"denominator_mode": "dcl"}, "Unknown `denominator_mode`='dcl'"),
        ({"positives_cap": -1}, "`positives_cap` must be None .* got -1"),
        ({"positives_cap": 3}, r"multiple of `views` \(2\).*got 3"),
        ({"summation": "inside"}, "Unknown `summation`='inside'"),
        ({"contrast_mode": "two"}, "Unknown `contrast_mode`='two'"),
        ({"base_temperature": 0.0}, "`base_temperature` must be > 0.0, got 0.0"),
        ({"implementation": "tiled"}, "Unknown `implementation`='tiled'"),
        ({"block_size": 0}, "`block_size` must be None .* got 0"),
        ({"loss": "npairs", "summation": "in"}, "`summation`='in' is an option of loss='supcon'"),
    ],
)
def test_config_errors(overrides, match):
    with pytest.raises(ValueError, match=match):
        ExperimentConfig(**overrides)


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"augment": "mixup"}, "`augment` must be one of .*got 'mixup'"),
        ({"encoder": "vgg"}, "`encoder` must be one of .*got 'vgg'"),
        ({"batch_size": 64}, "batch size 64 exceeds the 48 training images"),
    ],
)
def test_run_errors(tmp_path, overrides, match):
    with pytest.raises(ValueError, match=match):
        run_experiment(_config(tmp_path, "errors", **overrides))


def test_classifier_stage_replaces_the_optimisation_settings():
    config = ExperimentConfig(
        optimizer="lars",
        learning_rate=0.5,
        warmup_epochs=3,
        final_learning_rate=0.01,
        classifier_optimizer="sgd",
        classifier_learning_rate=0.2,
        classifier_lr_schedule="cosine",
        classifier_weight_decay=1e-4,
    )
    stage = config.classifier_stage()
    assert (stage.optimizer, stage.learning_rate, stage.lr_schedule) == ("sgd", 0.2, "cosine")
    assert (stage.weight_decay, stage.warmup_epochs, stage.final_learning_rate) == (1e-4, 0, 0.0)
    assert stage.batch_size == config.batch_size  # classifier_batch_size=None
    assert dataclasses.replace(config, classifier_batch_size=32).classifier_stage().batch_size == 32
    assert (config.optimizer, config.learning_rate) == ("lars", 0.5)  # unchanged


def test_contrastive_loss_carries_every_option():
    config = ExperimentConfig(
        temperature=0.2,
        base_temperature=0.07,
        contrast_mode="one",
        summation="in",
        denominator_mode="one_positive",
        positives_cap=2,
        implementation="dense",
        block_size=8,
    )
    options = contrastive_loss(config).get_config()
    for name in SUPCON_ONLY_OPTIONS:
        assert options[name] == getattr(config, name), name
    assert options["temperature"] == 0.2


def test_run_experiment_needs_a_config():
    with pytest.raises(ValueError, match="must be an ExperimentConfig, got dict"):
        run_experiment({"dataset": "digits"})


# ----------------------------------------------------------------------------- gs:// model dirs


def _gfile_json(path):
    return json.loads(read_text(path))


def test_run_on_a_gfile_model_dir_writes_there_and_resumes(tmp_path, ram_dir, monkeypatch):
    # ram:// (TensorFlow's in-memory file system) goes through the gs:// code paths.
    model_dir = f"{ram_dir}/run"
    config = _config(
        tmp_path,
        "unused",
        model_dir=model_dir,
        pretrain_epochs=1,
        classifier_epochs=2,
        baseline_epochs=1,
        evaluate=False,
    )
    monkeypatch.chdir(tmp_path)  # pathlib would have made a local "ram:" folder here
    with monkeypatch.context() as patch:
        _interrupt_after(patch, "classifier", epochs=1)
        with pytest.raises(SimulatedKillError):
            run_experiment(config)
    assert _gfile_json(f"{model_dir}/config.json") == dataclasses.asdict(config)
    assert is_file(f"{model_dir}/phases/pretrain.json")
    assert not is_file(f"{model_dir}/phases/classifier.json")
    assert tf.io.gfile.listdir(f"{model_dir}/backup/classifier")  # its epoch-1 checkpoint
    assert not is_file(f"{model_dir}/run.lock")  # released by the failed call

    trained = []
    fit_phase = stages.fit_phase
    monkeypatch.setattr(
        stages, "fit_phase", lambda *a, **k: trained.append(a[2]) or fit_phase(*a, **k)
    )
    report = run_experiment(config)
    assert trained == ["classifier", "baseline"]  # pretraining finished in the first call
    classifier_marker = _gfile_json(f"{model_dir}/phases/classifier.json")
    assert classifier_marker["resumed_from_epoch"] == 1
    assert report["supcon"]["epochs_trained"] == 2
    for phase in ("pretrain", "classifier", "baseline"):
        assert is_file(f"{model_dir}/phases/{phase}.json"), phase
        rows = read_text(f"{model_dir}/logs/{phase}/history.csv").splitlines()
        assert len(rows) == 1 + (2 if phase == "classifier" else 1), phase
    assert tf.io.gfile.listdir(f"{model_dir}/backup") == []
    assert is_file(f"{model_dir}/best/classifier/best.weights.h5")
    saved = _gfile_json(f"{model_dir}/report.json")
    assert saved["supcon"] == json.loads(json.dumps(report["supcon"]))
    assert saved["config"]["model_dir"] == model_dir
    classifier = keras.saving.load_model(f"{model_dir}/classifier.keras")
    with np.load(config.dataset) as data:
        logits = classifier.predict(data["x_test"], verbose=0)
        accuracy = np.mean(np.argmax(logits, axis=1) == data["y_test"])
    np.testing.assert_allclose(accuracy, report["supcon"]["test_accuracy"], atol=1e-6)
    for name in ("encoder.keras", "baseline.keras"):
        keras.saving.load_model(f"{model_dir}/{name}")
    assert not (tmp_path / "ram:").exists()

    trained.clear()
    again = run_experiment(config)
    assert trained == []
    assert again["supcon"] == report["supcon"]
    assert again["cross_entropy"] == report["cross_entropy"]


def test_evaluation_on_a_gfile_model_dir_writes_report_and_plots(tmp_path, ram_dir):
    model_dir = f"{ram_dir}/run"
    config = _config(
        tmp_path,
        "unused",
        model_dir=model_dir,
        pretrain_epochs=1,
        classifier_epochs=1,
        baseline=False,
        evaluate=True,
    )
    report = run_experiment(config)
    saved = _gfile_json(f"{model_dir}/report.json")
    assert saved["evaluation"] == json.loads(json.dumps(report["evaluation"]))
    assert saved["supcon"] == json.loads(json.dumps(report["supcon"]))
    markdown = read_text(f"{model_dir}/report.md")
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", markdown)
    assert len(links) == 4  # reliability, confusion, t-SNE, corruptions
    for link in links:
        with tf.io.gfile.GFile(f"{model_dir}/{link}", "rb") as file:
            assert file.read(8) == b"\x89PNG\r\n\x1a\n", link


# ----------------------------------------------------------------------------- old paths


def _names(text):
    """The names of a whitespace-separated list."""
    return text.split()


# The public names of each module before it moved into the `supcon_tf.experiment`
# package (recorded from the flat modules), and where each lives now.
OLD_NAMES = {
    "supcon_tf.experiment": (
        "supcon_tf.experiment",
        _names(
            "ExperimentConfig HIDDEN_ACTIVATIONS LEARNING_RATE_SCALINGS LOSSES METHODS "
            "MIXED_PRECISION_POLICIES MONITORS OPTIMIZERS PHASES PROJECTION_HEADS SCHEDULES "
            "STRATEGIES SUPCON_ONLY_OPTIONS contrastive_loss run_experiment"
        ),
    ),
    "supcon_tf.presets": (
        "supcon_tf.experiment.presets",
        (
            "PRESETS",
            "SOURCE_GOOGLE",
            "SOURCE_KERAS_EXAMPLE",
            "SOURCE_KERAS_EXAMPLE_2020",
            "SOURCE_PAPER",
            "SOURCE_SUPCONTRAST",
            "SOURCE_SUPCONTRAST_LINEAR",
            "apply_preset",
            "get_preset",
        ),
    ),
    "supcon_tf.inputs": (
        "supcon_tf.experiment.inputs",
        ("ArrayInputs", "StreamInputs", "check_image_size", "open_inputs", "_PROBE_SIZE"),
    ),
    # `training_batches` was dead and is gone (ArrayInputs.training_batches does its job).
    "supcon_tf.phases": (
        "supcon_tf.experiment.phases",
        ("build_phase_optimizer", "compile_classifier", "evaluate_split", "fit_phase"),
    ),
    "supcon_tf.runs": (
        "supcon_tf.experiment.runs",
        (
            "LOCK_FILE",
            "PhasePaths",
            "REMOTE_LOCK_SETTLE_SECONDS",
            "RunDirectory",
            "RunLockedError",
            "StopSignal",
            "resume_position",
            "stop_on_sigterm",
            "write_json",
        ),
    ),
}


@pytest.mark.parametrize("old_path", sorted(OLD_NAMES))
def test_every_old_name_imports_from_the_old_path_and_the_new(old_path, monkeypatch):
    import importlib
    import sys
    import warnings

    new_path, names = OLD_NAMES[old_path]
    new = importlib.import_module(new_path)
    if old_path == new_path:  # the package keeps its names, without a warning
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            old = importlib.import_module(old_path)
    else:
        monkeypatch.delitem(sys.modules, old_path, raising=False)
        with pytest.warns(DeprecationWarning, match=rf"`{old_path}` is deprecated.*{new_path}"):
            old = importlib.import_module(old_path)
    for name in names:
        assert getattr(old, name) is not None, name
        if name != "open_inputs":  # the old one still takes a configuration
            assert getattr(old, name) is getattr(new, name), name


def test_old_open_inputs_still_takes_a_configuration():
    import importlib

    old = importlib.import_module("supcon_tf.inputs")
    inputs = old.open_inputs(ExperimentConfig(dataset="digits"))
    assert inputs.num_train == 1293
