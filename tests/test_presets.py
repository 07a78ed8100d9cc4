"""Presets hold the published numbers, cite their sources, and merge with explicit flags."""

import math

import pytest

from supcon_tf.optimizers import OPTIMIZERS
from supcon_tf.presets import PRESETS, apply_preset, get_preset
from supcon_tf.schedules import SCHEDULES

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
        assert (flags["batch_size"], flags["learning_rate"], flags["pretrain_epochs"]) == (
            1024,
            0.8,
            500,
        )
        assert flags["method"] == "cross_entropy" and flags["lr_schedule"] == "cosine"

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
        assert preset["published"]["top1_accuracy"] == 0.8162


class TestPresetStructure:
    @pytest.mark.parametrize("name", sorted(PRESETS))
    def test_every_preset_is_complete_and_sourced(self, name):
        preset = get_preset(name)
        assert set(preset) == {"description", "flags", "recipe", "sources", "published", "notes"}
        assert preset["sources"] and all(
            "github.com" in s or "keras.io" in s or "arXiv" in s for s in preset["sources"]
        )
        flags = preset["flags"]
        assert flags["optimizer"] in OPTIMIZERS
        assert flags["lr_schedule"] in SCHEDULES
        assert flags["augment"] in PLANNED_AUGMENTATIONS
        assert flags["method"] in ("supcon", "simclr", "cross_entropy")
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
