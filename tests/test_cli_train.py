"""Tests of the `supcon-train` command line (`python -m supcon_tf.train`)."""

import dataclasses
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from absl import flags

from supcon_tf.cli.flags import config_from_flags, define_flags
from supcon_tf.experiment import ExperimentConfig

ROOT = Path(__file__).resolve().parents[1]


def _parse(*arguments):
    flag_values = flags.FlagValues()
    define_flags(flag_values)
    flag_values(["supcon-train", *arguments])
    return flag_values


def _run(*arguments):
    environment = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run(
        [sys.executable, "-m", "supcon_tf.train", *arguments],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=900,
    )


class TestFlags:
    def test_every_config_field_has_a_flag_with_its_default(self):
        flag_values = _parse()
        for field in dataclasses.fields(ExperimentConfig):
            assert field.name in flag_values, f"--{field.name} is missing"
        assert config_from_flags(flag_values) == ExperimentConfig()

    def test_issue_flags_exist(self):
        flag_values = _parse()
        for name in [
            "dataset",
            "data_dir",
            "encoder",
            "views",
            "batch_size",
            "pretrain_epochs",
            "classifier_epochs",
            "temperature",
            "optimizer",
            "learning_rate",
            "augment",
            "model_dir",
            "seed",
            "baseline",
        ]:
            assert name in flag_values

    def test_values_reach_the_config(self):
        flag_values = _parse(
            "--dataset=cifar10",
            "--encoder=resnet18",
            "--views=4",
            "--temperature=0.07",
            "--nobaseline",
            "--optimizer=sgd",
            "--model_dir=/tmp/somewhere",
        )
        config = config_from_flags(flag_values)
        assert (config.dataset, config.encoder, config.views) == ("cifar10", "resnet18", 4)
        assert (config.temperature, config.baseline, config.optimizer) == (0.07, False, "sgd")
        assert config.model_dir == "/tmp/somewhere"

    def test_classifier_stage_flags_reach_the_config(self):
        flag_values = _parse(
            "--classifier_optimizer=sgd",
            "--classifier_learning_rate=0.3",
            "--classifier_lr_schedule=cosine",
            "--classifier_batch_size=128",
            "--classifier_weight_decay=1e-4",
            "--noclassifier_standardize",
            "--classifier_hidden_activation=linear",
            "--noselect_best_epoch",
            "--best_epoch_monitor=val_accuracy",
            "--early_stopping_patience=3",
            "--projection_head=none",
            "--encoder=keras_example_cnn",
        )
        config = config_from_flags(flag_values)
        stage = config.classifier_stage()
        assert (stage.optimizer, stage.learning_rate, stage.lr_schedule) == ("sgd", 0.3, "cosine")
        assert (stage.batch_size, stage.weight_decay) == (128, 1e-4)
        assert not config.classifier_standardize and not config.select_best_epoch
        assert config.best_epoch_monitor == "val_accuracy"
        assert config.classifier_hidden_activation == "linear"
        assert (config.early_stopping_patience, config.projection_head) == (3, "none")
        assert config.encoder == "keras_example_cnn"

    def test_classifier_stage_flags_are_in_the_optimisation_group(self):
        from supcon_tf.cli.flags import flag_groups

        names = {
            "classifier_optimizer",
            "classifier_learning_rate",
            "classifier_lr_schedule",
            "classifier_batch_size",
            "classifier_weight_decay",
            "select_best_epoch",
            "best_epoch_monitor",
            "early_stopping_patience",
        }
        assert names <= set(flag_groups()["optimisation"])

    def test_loss_flags_reach_the_config(self):
        flag_values = _parse(
            "--loss=supcon",
            "--base_temperature=0.07",
            "--contrast_mode=one",
            "--summation=in",
            "--denominator_mode=only_negatives",
            "--positives_cap=4",
            "--implementation=blocked",
            "--block_size=64",
        )
        config = config_from_flags(flag_values)
        assert (config.base_temperature, config.contrast_mode, config.summation) == (
            0.07,
            "one",
            "in",
        )
        assert (config.denominator_mode, config.positives_cap) == ("only_negatives", 4)
        assert (config.implementation, config.block_size) == ("blocked", 64)
        assert config_from_flags(_parse("--loss=npairs")).loss == "npairs"
        hybrid = config_from_flags(_parse("--method=hybrid", "--hybrid_weight=0.3"))
        assert (hybrid.method, hybrid.hybrid_weight) == ("hybrid", 0.3)

    @pytest.mark.parametrize(
        ("arguments", "match"),
        [
            (["--classifier_learning_rate=0"], "--classifier_learning_rate must be positive"),
            (["--classifier_optimizer=adagrad"], "classifier_optimizer"),
            (["--classifier_batch_size=0"], "classifier_batch_size"),
            (["--early_stopping_patience=-1"], "early_stopping_patience"),
            (["--best_epoch_monitor=accuracy"], "best_epoch_monitor"),
            (["--classifier_weight_decay=-0.1"], "classifier_weight_decay"),
            (["--denominator_mode=sincere"], "denominator_mode"),
            (["--positives_cap=-2"], "positives_cap"),
            (["--positives_cap=3"], "--positives_cap must be a multiple of --views"),
            (["--loss=triplet"], "loss"),
            (["--hybrid_weight=2"], "--hybrid_weight applies only to --method=hybrid"),
            (["--method=hybrid", "--hybrid_weight=0"], "hybrid_weight"),
            (["--loss=npairs", "--summation=in"], "--loss=npairs takes none of"),
            (["--implementation=tiled"], "implementation"),
            (["--block_size=0"], "block_size"),
            (["--base_temperature=0"], "base_temperature"),
            (["--contrast_mode=two"], "contrast_mode"),
            (["--views=0"], "views"),
            (["--encoder=vgg"], "encoder"),
            (["--optimizer=nesterov"], "optimizer"),
            (["--augment=mixup"], "augment"),
            (["--batch_size=-4"], "batch_size"),
            (["--temperature=0"], "temperature"),
            (["--learning_rate=0"], "--learning_rate must be positive"),
            (["--method=simclr", "--views=1"], "--method=simclr needs --views >= 2"),
        ],
    )
    def test_bad_flags(self, arguments, match):
        with pytest.raises(flags.Error, match=match):
            _parse(*arguments)


def test_command_on_digits(tmp_path):
    result = _run(
        f"--model_dir={tmp_path}",
        "--pretrain_epochs=1",
        "--classifier_epochs=1",
        "--baseline_epochs=1",
        "--width_multiplier=0.25",
        "--batch_size=256",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    # Output to a pipe: one line per epoch, no progress-bar escape codes.
    assert "\x1b[" not in result.stdout
    assert re.search(r"^\d+/\d+ - \d+s - .*loss: ", result.stdout, re.MULTILINE), result.stdout
    report = json.loads((tmp_path / "report.json").read_text())
    assert f"test accuracy: {report['supcon']['test_accuracy']:.4f}" in result.stdout
    assert (
        f"Cross-entropy test accuracy: {report['cross_entropy']['test_accuracy']:.4f}"
        in result.stdout
    )
    saved_flags = json.loads((tmp_path / "flags.json").read_text())
    assert saved_flags["pretrain_epochs"] == 1 and saved_flags["dataset"] == "digits"
    assert report["config"]["batch_size"] == 256
    for name in ("encoder.keras", "classifier.keras", "baseline.keras"):
        assert (tmp_path / name).is_file()


def test_command_names_a_missing_dataset_file(tmp_path):
    result = _run(f"--dataset={tmp_path / 'missing.npz'}", f"--model_dir={tmp_path / 'run'}")
    assert result.returncode == 1
    last_line = result.stderr.strip().splitlines()[-1]
    missing = tmp_path / "missing.npz"
    assert last_line.startswith(f"supcon-train: error: Dataset file {missing} does not exist;")
    assert "Traceback" not in result.stderr
    # Only the error: the settings summary comes once preflight passed, never the config's repr.
    assert "Settings (source:" not in result.stderr + result.stdout
    assert "ExperimentConfig(" not in result.stderr


@pytest.mark.slow
def test_keras_example_script_runs_offline(tmp_path):
    rng = np.random.default_rng(0)
    np.savez(
        tmp_path / "tiny.npz",
        x_train=rng.integers(0, 256, size=(40, 16, 16, 3), dtype=np.uint8),
        y_train=np.arange(40) % 4,
        x_test=rng.integers(0, 256, size=(12, 16, 16, 3), dtype=np.uint8),
        y_test=np.arange(12) % 4,
    )
    environment = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}
    output = tmp_path / "results.json"
    result = subprocess.run(
        [
            sys.executable,
            "examples/keras_supcon_example.py",
            f"--data_dir={tmp_path / 'tiny.npz'}",
            "--encoder=small_cnn",
            "--batch_size=8",
            "--pretrain_epochs=1",
            "--classifier_epochs=1",
            "--baseline_epochs=1",
            f"--output={output}",
        ],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.loads(output.read_text())
    assert results["train_images"] == 40 and results["test_images"] == 12
    assert 0 <= results["supcon_test_accuracy"] <= 1
    assert 0 <= results["cross_entropy_test_accuracy"] <= 1
    assert "SupCon (npairs) test accuracy" in result.stdout


@pytest.mark.slow
def test_first_keras_example_script_runs_offline(tmp_path):
    rng = np.random.default_rng(0)
    np.savez(
        tmp_path / "tiny.npz",
        x_train=rng.integers(0, 256, size=(40, 32, 32, 3), dtype=np.uint8),
        y_train=np.arange(40) % 4,
        x_test=rng.integers(0, 256, size=(12, 32, 32, 3), dtype=np.uint8),
        y_test=np.arange(12) % 4,
    )
    environment = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}
    output = tmp_path / "results.json"
    result = subprocess.run(
        [
            sys.executable,
            "examples/keras_supcon_example_2020.py",
            f"--data_dir={tmp_path / 'tiny.npz'}",
            "--batch_size=8",
            "--epochs=1",
            f"--output={output}",
        ],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.loads(output.read_text())
    assert results["train_images"] == 40 and results["test_images"] == 12
    assert 0 <= results["supcon_test_accuracy"] <= 1
    assert 0 <= results["cross_entropy_test_accuracy"] <= 1
    assert len(results["pretrain_loss"]) == 1 and np.isfinite(results["pretrain_loss"][0])
    assert "SupCon (n-pairs) test accuracy" in result.stdout
