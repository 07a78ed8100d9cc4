"""Presets hold the published numbers, cite their sources, and merge with explicit flags."""

import dataclasses
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from supcon_tf.experiment.presets import PRESETS, apply_preset, get_preset
from supcon_tf.training.optimizers import OPTIMIZERS
from supcon_tf.training.schedules import SCHEDULES

ROOT = Path(__file__).resolve().parents[1]

# The augmentation policy names planned for `--augment` (issue 5).
PLANNED_AUGMENTATIONS = {
    "none",
    "simple",
    "simaugment",
    "randaugment",
    "autoaugment",
    "stacked_randaugment",
}


class TestPublishedNumbers:
    """Each value here was read from the cited source, independently of presets.py."""

    def test_cifar10_supcon(self):
        flags = get_preset("cifar10_resnet50_supcon")["flags"]
        assert flags["batch_size"] == 1024
        assert flags["learning_rate"] == 0.5
        assert flags["temperature"] == 0.1
        assert flags["lr_schedule"] == "cosine"
        assert flags["pretrain_epochs"] == 1000
        assert flags["classifier_epochs"] == 100
        assert flags["optimizer"] == "sgd" and flags["momentum"] == 0.9
        assert flags["weight_decay"] == 1e-4
        assert flags["warmup_epochs"] == 10
        assert math.isclose(flags["final_learning_rate"], 0.0005)
        assert flags["method"] == "supcon"

    def test_cifar10_cross_entropy(self):
        flags = get_preset("cifar10_resnet50_cross_entropy")["flags"]
        assert (flags["batch_size"], flags["learning_rate"], flags["baseline_epochs"]) == (
            1024,
            0.8,
            500,
        )
        assert flags["baseline"] is True and flags["lr_schedule"] == "cosine"

    def test_cifar10_simclr(self):
        flags = get_preset("cifar10_resnet50_simclr")["flags"]
        assert (flags["batch_size"], flags["learning_rate"], flags["temperature"]) == (
            1024,
            0.5,
            0.5,
        )
        assert flags["method"] == "simclr"

    def test_imagenet_resnet50(self):
        preset = get_preset("imagenet_resnet50_supcon")
        flags = preset["flags"]
        assert flags["optimizer"] == "lars" and flags["augment"] == "autoaugment"
        assert flags["batch_size"] == 6144 and flags["temperature"] == 0.1
        assert math.isclose(flags["learning_rate"], 0.4 * 6144 / 256)  # base 0.4 x batch/256
        assert preset["recipe"]["base_learning_rate"] == 0.4
        assert flags["weight_decay"] == 1e-3
        assert (flags["pretrain_epochs"], flags["classifier_epochs"]) == (350, 90)

    def test_linear_stages(self):
        # SupContrast README: main_linear.py --batch_size 512 --learning_rate 5 (SupCon),
        # --learning_rate 1 (SimCLR); main_linear.py: SGD, momentum 0.9, weight decay 0.
        for name, learning_rate in [
            ("cifar10_resnet50_supcon", 5.0),
            ("cifar10_resnet50_simclr", 1.0),
        ]:
            flags = get_preset(name)["flags"]
            assert flags["classifier_optimizer"] == "sgd" and flags["momentum"] == 0.9
            assert flags["classifier_learning_rate"] == learning_rate
            assert flags["classifier_batch_size"] == 512
            assert flags["classifier_weight_decay"] == 0.0 and flags["classifier_epochs"] == 100
        # google-research supcon ImageNet: RMSprop, base lr 0.05 x batch/256, wd 1e-6.
        flags = get_preset("imagenet_resnet50_supcon")["flags"]
        assert flags["classifier_optimizer"] == "rmsprop"
        assert math.isclose(flags["classifier_learning_rate"], 0.05 * 6144 / 256)
        assert flags["classifier_weight_decay"] == 1e-6

    def test_keras_example_2020(self):
        # The 2020/11/01 example: BATCH_SIZE 256, NUM_EPOCHS 50, DROPOUT 0.5,
        # TEMPERATURE 0.05, Adam(), Dense(64) hidden layer; 71.14 % vs 72.9 % published.
        preset = get_preset("keras_example_2020")
        flags = preset["flags"]
        assert (flags["encoder"], flags["projection_head"], flags["views"]) == (
            "keras_example_cnn",
            "none",
            1,
        )
        assert (flags["batch_size"], flags["classifier_batch_size"]) == (256, 256)
        assert (flags["pretrain_epochs"], flags["classifier_epochs"], flags["baseline_epochs"]) == (
            50,
            50,
            50,
        )
        assert (flags["temperature"], flags["learning_rate"], flags["augment"]) == (
            0.05,
            0.001,
            "none",
        )
        assert (flags["classifier_hidden_units"], flags["classifier_dropout"]) == (64, 0.5)
        assert flags["classifier_hidden_activation"] == "linear"
        assert preset["published"]["top1_accuracy"] == 0.729
        assert preset["published"]["cross_entropy_top1_accuracy"] == 0.7114

    def test_keras_example(self):
        preset = get_preset("keras_example")
        flags = preset["flags"]
        assert flags["encoder"] == "resnet50v2_keras_example"
        assert (flags["batch_size"], flags["learning_rate"], flags["temperature"]) == (
            265,
            0.001,
            0.05,
        )
        assert (flags["pretrain_epochs"], flags["classifier_epochs"]) == (50, 50)
        assert flags["optimizer"] == "adam" and flags["views"] == 1
        assert (flags["classifier_hidden_units"], flags["classifier_dropout"]) == (512, 0.5)
        assert preset["published"]["top1_accuracy"] == 0.8162


class TestPresetStructure:
    @pytest.mark.parametrize("name", sorted(PRESETS))
    def test_every_preset_is_complete_and_sourced(self, name):
        preset = get_preset(name)
        assert set(preset) - {"tied"} == {
            "description",
            "flags",
            "recipe",
            "sources",
            "published",
            "notes",
        }
        # A tie joins two values the preset sets equal (overriding one carries to the other).
        for tied, source in preset.get("tied", {}).items():
            assert preset["flags"][tied] == preset["flags"][source], (tied, source)
        assert preset["sources"] and all(
            "github.com" in s or "keras.io" in s or "arXiv" in s for s in preset["sources"]
        )
        flags = preset["flags"]
        assert flags["optimizer"] in OPTIMIZERS
        assert flags["lr_schedule"] in SCHEDULES
        assert flags["augment"] in PLANNED_AUGMENTATIONS
        assert flags.get("method", "supcon") in ("supcon", "simclr")
        assert isinstance(flags["batch_size"], int) and flags["batch_size"] > 0
        assert 0 <= flags["final_learning_rate"] <= flags["learning_rate"]

    def test_get_preset_returns_a_copy(self):
        get_preset("keras_example")["flags"]["batch_size"] = 1
        assert get_preset("keras_example")["flags"]["batch_size"] == 265

    def test_unknown_preset(self):
        with pytest.raises(ValueError, match=r"Unknown preset 'cifar100'. Expected one of \["):
            get_preset("cifar100")


class TestApplyPreset:
    defaults = {"batch_size": 32, "learning_rate": 0.1, "temperature": 1.0, "seed": 0}

    def test_explicit_values_override_the_preset(self):
        merged = apply_preset(
            "cifar10_resnet50_supcon", {"batch_size": 128, "seed": 3}, self.defaults
        )
        assert merged == {"batch_size": 128, "learning_rate": 0.5, "temperature": 0.1, "seed": 3}

    def test_no_preset_keeps_defaults(self):
        assert apply_preset(None, {"temperature": 0.2}, self.defaults) == {
            **self.defaults,
            "temperature": 0.2,
        }

    def test_preset_keys_without_a_flag_are_skipped(self):
        merged = apply_preset("keras_example", {}, {"temperature": 1.0})
        assert merged == {"temperature": 0.05}

    def test_unknown_explicit_flag(self):
        with pytest.raises(ValueError, match=r"unknown flags \['colour'\]"):
            apply_preset("keras_example", {"colour": 1}, self.defaults)

    def test_unknown_preset(self):
        with pytest.raises(ValueError, match="Unknown preset 'nope'"):
            apply_preset("nope", {}, self.defaults)


def config_field_names():
    from supcon_tf.experiment import ExperimentConfig

    return {field.name for field in dataclasses.fields(ExperimentConfig)}


def fresh_flags(argv):
    """A private FlagValues with the supcon-train flags, parsed from `argv`."""
    from absl import flags

    from supcon_tf.cli.flags import define_flags

    flag_values = flags.FlagValues()
    define_flags(flag_values)
    flag_values(["supcon-train", *argv])
    return flag_values


class TestPresetFlags:
    @pytest.mark.parametrize("name", sorted(PRESETS))
    def test_every_preset_key_is_a_supcon_train_setting(self, name):
        assert set(get_preset(name)["flags"]) <= config_field_names()

    def test_explicit_flags_override_the_preset(self):
        from supcon_tf.cli.flags import apply_preset_to_flags, config_from_flags

        flag_values = fresh_flags(["--preset=keras_example", "--batch_size=64", "--views=2"])
        changed = apply_preset_to_flags(flag_values)
        config = config_from_flags(flag_values)
        assert config.batch_size == 64 and config.views == 2  # explicit
        assert config.temperature == 0.05 and config.learning_rate == 0.001  # preset
        assert config.encoder == "resnet50v2_keras_example"
        assert config.classifier_dropout == 0.5 and config.classifier_hidden_units == 512
        assert config.preset == "keras_example"
        assert "batch_size" not in changed and "temperature" in changed

    def test_explicit_value_equal_to_the_default_still_wins(self):
        from supcon_tf.cli.flags import apply_preset_to_flags

        default_temperature = fresh_flags([])["temperature"].value
        flag_values = fresh_flags(
            ["--preset=keras_example", f"--temperature={default_temperature}"]
        )
        apply_preset_to_flags(flag_values)
        assert flag_values["temperature"].value == default_temperature

    def test_no_preset_changes_nothing(self):
        from supcon_tf.cli.flags import apply_preset_to_flags

        flag_values = fresh_flags(["--learning_rate=0.2"])
        assert apply_preset_to_flags(flag_values) == []
        assert flag_values["learning_rate"].value == 0.2

    def test_preset_value_the_flag_rejects(self, monkeypatch):
        from supcon_tf.cli.flags import apply_preset_to_flags

        broken = get_preset("keras_example")
        broken["flags"]["optimizer"] = "adagrad"
        monkeypatch.setitem(PRESETS, "keras_example", broken)
        flag_values = fresh_flags(["--preset=keras_example"])
        with pytest.raises(ValueError, match=r"--preset=keras_example sets --optimizer='adagrad'"):
            apply_preset_to_flags(flag_values)
        # Giving the flag explicitly overrides the bad preset value.
        flag_values = fresh_flags(["--preset=keras_example", "--optimizer=sgd"])
        apply_preset_to_flags(flag_values)
        assert flag_values["optimizer"].value == "sgd"

    def test_unknown_preset_is_rejected_by_the_flag(self):
        from absl import flags

        with pytest.raises(flags.IllegalFlagValueError, match="value should be one of"):
            fresh_flags(["--preset=imagenet_resnet200"])


def test_keras_example_2020_preset_builds_the_published_models(tmp_path):
    """The preset through run_experiment: 314,432 encoder and 323,338 classifier parameters."""
    import keras
    import numpy as np

    from supcon_tf.experiment import ExperimentConfig, run_experiment

    rng = np.random.default_rng(0)
    np.savez(
        tmp_path / "tiny.npz",
        x_train=rng.random((40, 32, 32, 3)).astype("float32"),
        y_train=np.arange(40) % 10,
        x_test=rng.random((10, 32, 32, 3)).astype("float32"),
        y_test=np.arange(10) % 10,
    )
    flags = get_preset("keras_example_2020")["flags"]
    flags.update(
        dataset=str(tmp_path / "tiny.npz"),
        pretrain_epochs=1,
        classifier_epochs=1,
        baseline_epochs=1,
        batch_size=20,
        classifier_batch_size=20,
        model_dir=str(tmp_path / "run"),
        verbose=0,
        evaluate=False,
    )
    run_experiment(ExperimentConfig(**flags))
    encoder = keras.saving.load_model(tmp_path / "run" / "encoder.keras")
    assert encoder.count_params() == 314_432
    assert [layer.output.shape for layer in encoder.layers][-3:] == [
        (None, 6, 6, 64),
        (None, 2304),
        (None, 128),
    ]
    for name in ("classifier", "baseline"):
        model = keras.saving.load_model(tmp_path / "run" / f"{name}.keras")
        assert model.count_params() == 323_338, name
        assert model.get_layer("hidden_dense").get_config()["activation"] == "linear"
        assert [layer.rate for layer in model.layers if "dropout" in layer.name] == [0.5, 0.5]


def test_supcon_train_with_preset_lars_and_cosine(tmp_path):
    """End to end: --preset plus explicit overrides, LARS with warmup + cosine, on digits."""
    command = [
        sys.executable,
        "-m",
        "supcon_tf.train",
        "--preset=keras_example",
        "--dataset=digits",
        "--encoder=small_cnn",
        "--width_multiplier=0.25",
        "--batch_size=64",
        "--pretrain_epochs=2",
        "--classifier_epochs=1",
        "--baseline_epochs=1",
        "--optimizer=lars",
        "--learning_rate=2.0",
        "--lr_schedule=cosine",
        "--warmup_epochs=1",
        "--augment=none",
        f"--model_dir={tmp_path / 'run'}",
        "--verbose=0",
    ]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    config = report["config"]
    assert config["preset"] == "keras_example"
    assert config["temperature"] == 0.05 and config["classifier_dropout"] == 0.5  # preset
    assert config["optimizer"] == "lars" and config["batch_size"] == 64  # explicit
    assert (config["lr_schedule"], config["warmup_epochs"]) == ("cosine", 1)
    losses = report["history"]["pretrain"]["loss"]
    assert len(losses) == 2 and all(math.isfinite(value) for value in losses)
    assert 0.0 <= report["supcon"]["test_accuracy"] <= 1.0
    import keras

    from supcon_tf.training.optimizers import LARS

    # The baseline trains with the explicit optimizer flags ...
    baseline = keras.saving.load_model(tmp_path / "run" / "baseline.keras")
    assert isinstance(baseline.optimizer, LARS)
    schedule = baseline.optimizer.get_config()["learning_rate"]
    assert schedule["class_name"] == "WarmupCosineDecay"
    steps_per_epoch = report["dataset"]["train"] // 64
    assert schedule["config"]["total_steps"] == steps_per_epoch  # one baseline epoch
    assert schedule["config"]["warmup_steps"] == steps_per_epoch
    # ... the classifier stage with the preset's own linear-stage recipe (Adam 1e-3,
    # constant, last epoch).
    classifier = keras.saving.load_model(tmp_path / "run" / "classifier.keras").optimizer
    assert isinstance(classifier, keras.optimizers.Adam)
    assert float(classifier.learning_rate) == pytest.approx(1e-3)
    # The preset ties its classifier batch to its batch: --batch_size=64 carries there.
    assert int(classifier.iterations) == report["dataset"]["train"] // 64
    assert report["supcon"]["selected_epoch"] == 1
