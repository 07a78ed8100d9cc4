"""Tests of supcon_tf.experiment.inputs and of whole experiments on streamed datasets.

The streamed datasets are generated image folders (tests/test_streaming.py), their
TFRecord shards and a TFDS dataset built locally; the runs are tiny (small CNN, one
epoch per phase) so that they fit the default suite, the command-line runs are `slow`.
"""

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from supcon_tf.data import write_shards
from supcon_tf.experiment import ExperimentConfig, components, preflight, run_experiment
from supcon_tf.experiment.config import RESUMABLE_FIELDS
from supcon_tf.experiment.inputs import ArrayInputs, StreamInputs, check_image_size, open_inputs
from supcon_tf.experiment.run import _defaults
from supcon_tf.experiment.runs import RunDirectory
from tests._processes import run_module
from tests._streaming_worker import write_id_folder
from tests.test_streaming import TFDS_MISSING, build_tfds_dataset, truncate, write_mixed_folder


@pytest.fixture(scope="module")
def mixed_folder(tmp_path_factory):
    return write_mixed_folder(tmp_path_factory.mktemp("mixed"))


@pytest.fixture(scope="module")
def id_folder(tmp_path_factory):
    return Path(write_id_folder(str(tmp_path_factory.mktemp("ids"))))


def source(*arguments, **overrides):
    return tiny_config(*arguments, **overrides).data_source()


def tiny_config(dataset, model_dir, **overrides):
    settings = dict(
        dataset=str(dataset),
        image_size=16,
        encoder="small_cnn",
        width_multiplier=0.25,
        batch_size=16,
        pretrain_epochs=1,
        classifier_epochs=1,
        baseline=False,
        evaluate=False,
        augment="simaugment",
        model_dir=str(model_dir),
        verbose=0,
    )
    settings.update(overrides)
    return ExperimentConfig(**settings)


class TestOpenInputs:
    def test_paths(self, id_folder, tmp_path):
        streamed = open_inputs(source(id_folder, tmp_path))
        assert isinstance(streamed, StreamInputs) and streamed.input_shape == (16, 16, 3)
        assert (streamed.num_train, streamed.num_validation, streamed.num_test) == (43, 5, 8)
        in_ram = open_inputs(source(id_folder, tmp_path, image_size=None))
        assert isinstance(in_ram, ArrayInputs) and in_ram.input_shape == (48, 64, 3)

    def test_image_size_errors(self, id_folder, tmp_path):
        with pytest.raises(ValueError, match=r"`image_size`=16 applies to streamed datasets"):
            open_inputs(source("digits", tmp_path))
        with pytest.raises(ValueError, match=r"`image_size`=8 is too small for encoder resnet18"):
            config = tiny_config(id_folder, tmp_path, image_size=8, encoder="resnet18")
            preflight(dataclasses.replace(config, stem="imagenet"))
        with pytest.raises(ValueError, match="`image_size` must be an integer >= 1, got 0"):
            tiny_config(id_folder, tmp_path, image_size=0)

    def test_downsampling_factors(self):
        check_image_size(32, "resnet50", "imagenet")
        check_image_size(8, "resnet18", "cifar")
        with pytest.raises(ValueError, match="downsamples by 8"):
            check_image_size(7, "resnet18", "cifar")

    def test_shards_need_an_image_size(self, id_folder, tmp_path):
        write_shards(id_folder, tmp_path / "shards", num_shards=2, progress=False)
        with pytest.raises(
            ValueError, match="is streamed as square crops of one side; set `image_size`"
        ):
            open_inputs(source(tmp_path / "shards", tmp_path, image_size=None))

    def test_resumed_training_batches_continue_the_stream(self, id_folder, tmp_path):
        inputs = open_inputs(source(id_folder, tmp_path, batch_size=8))
        config = tiny_config(id_folder, tmp_path, batch_size=8)
        steps = inputs.num_train // 8
        full = [images.numpy() for images, _ in inputs.training_batches(8, config.seed, 2, 0, 0)]
        resumed = [images.numpy() for images, _ in inputs.training_batches(8, config.seed, 2, 1, 3)]
        assert len(full) == 2 * steps and len(resumed) == steps - 3
        for expected, actual in zip(full[steps + 3 :], resumed, strict=True):
            np.testing.assert_array_equal(actual, expected)
        views = inputs.training_batches(8, config.seed, 1, 0, 0, labels=False, views=2)
        first = next(iter(views))
        assert first.shape == (8, 2, 16, 16, 3)  # images only (SimCLR), two views


class TestStreamedExperiment:
    def test_python_api_trains_a_folder_of_varied_images(self, mixed_folder, tmp_path):
        report = run_experiment(tiny_config(mixed_folder, tmp_path, image_size=24, baseline=True))
        dataset = report["dataset"]
        assert dataset["streamed"] and dataset["input_shape"] == [24, 24, 3]
        assert (dataset["train"], dataset["validation"], dataset["test"]) == (144, 16, 40)
        assert dataset["num_skipped_images"] == 0
        for method in ("supcon", "cross_entropy"):
            assert 0.0 <= report[method]["test_accuracy"] <= 1.0
            assert np.isfinite(report[method]["test_loss"])
        assert np.isfinite(report["history"]["pretrain"]["loss"]).all()
        encoder = tf.keras.models.load_model(tmp_path / "encoder.keras")
        assert encoder.input_shape == (None, 24, 24, 3)
        assert json.loads((tmp_path / "report.json").read_text())["dataset"]["streamed"]

    def test_tfrecord_shards_train(self, id_folder, tmp_path):
        write_shards(id_folder, tmp_path / "shards", num_shards=2, progress=False)
        # The old placement: the views are flipped and coloured in tf.data, not in the model.
        config = tiny_config(
            tmp_path / "shards", tmp_path / "run", method="simclr", augment_placement="pipeline"
        )
        report = run_experiment(config)
        dataset = report["dataset"]  # validation: records held out of the train shards
        assert dataset["train"] + dataset["validation"] == 48 and dataset["validation"] > 0
        assert 0.0 <= report["supcon"]["validation_accuracy"] <= 1.0
        assert 0.0 <= report["supcon"]["test_accuracy"] <= 1.0

    @pytest.mark.skipif(TFDS_MISSING, reason="tensorflow-datasets is not installed")
    def test_tfds_dataset_trains(self, tmp_path):
        data_dir = build_tfds_dataset(tmp_path / "tfds")
        config = tiny_config("tfds:stream_test_images", tmp_path / "run", data_dir=str(data_dir))
        report = run_experiment(config)
        dataset = report["dataset"]  # validation: the last records of TFDS's train split
        assert dataset["num_classes"] == 4 and dataset["train"] + dataset["validation"] == 24
        assert dataset["validation_source"].startswith("the last ")

    def test_corrupt_image_is_named_or_skipped_and_counted(self, tmp_path):
        root = tmp_path / "images"
        write_id_folder(str(root), train_per_class=16, test_per_class=2)
        truncate(root / "train" / "a" / "05.jpg")
        config = tiny_config(root, tmp_path / "strict", validation_fraction=0.0)
        with pytest.raises(ValueError, match=r"Cannot read image .*train/a/05\.jpg"):
            run_experiment(config)
        skipping = dataclasses.replace(
            config, model_dir=str(tmp_path / "skip"), skip_corrupt_images=True
        )
        report = run_experiment(skipping)
        assert report["dataset"]["skipped_images"] == [str(root / "train" / "a" / "05.jpg")]
        saved = json.loads((tmp_path / "skip" / "report.json").read_text())
        assert saved["dataset"]["num_skipped_images"] == 1


def run_command(arguments, timeout=900):
    return run_module("supcon_tf.cli.train", arguments, timeout)


@pytest.mark.slow
class TestCommandLine:
    def test_supcon_train_streams_a_folder(self, mixed_folder, tmp_path):
        run_command(
            [
                f"--dataset={mixed_folder}",
                "--image_size=32",
                "--width_multiplier=0.25",
                "--batch_size=32",
                "--pretrain_epochs=1",
                "--classifier_epochs=1",
                "--nobaseline",
                "--noevaluate",
                "--augment=simaugment",
                f"--model_dir={tmp_path}",
                "--verbose=0",
            ]
        )
        report = json.loads((tmp_path / "report.json").read_text())
        assert report["dataset"]["streamed"] and report["dataset"]["input_shape"] == [32, 32, 3]

    def test_imagenet_preset_runs_on_a_folder(self, mixed_folder, tmp_path):
        # The preset's recipe (ResNet-50, ImageNet stem, LARS, AutoAugment, 224-px crops)
        # at a size this machine runs: batch, epochs, width and crop size overridden.
        run_command(
            [
                "--preset=imagenet_resnet50_supcon",
                f"--dataset={mixed_folder}",
                "--batch_size=16",
                "--classifier_batch_size=16",
                "--pretrain_epochs=1",
                "--classifier_epochs=1",
                "--warmup_epochs=0",
                "--width_multiplier=0.0625",
                "--image_size=64",
                "--nobaseline",
                "--noevaluate",
                f"--model_dir={tmp_path}",
                "--verbose=0",
            ]
        )
        report = json.loads((tmp_path / "report.json").read_text())
        assert report["config"]["encoder"] == "resnet50" and report["config"]["stem"] == "imagenet"
        assert report["dataset"]["input_shape"] == [64, 64, 3]


def write_flat_png_folder(root, per_class=32, size=16, seed=0):
    """Flat-colour PNGs whose channels stay inside (0, 1) under any brightness shift of
    SimAugment at strength 0.5 (at most 0.4), so only grayscale makes R = G = B."""
    rng = np.random.default_rng(seed)
    for split in ("train", "test"):
        for name in ("a", "b"):
            folder = Path(root, split, name)
            folder.mkdir(parents=True)
            for index in range(per_class):
                colour = [rng.integers(140, 150), rng.integers(80, 90), rng.integers(110, 120)]
                pixels = np.full((size, size, 3), colour, np.uint8)
                Image.fromarray(pixels).save(folder / f"{index}.png")
    return Path(root)


class TestAugmentPlacement:
    """Where a streamed run's views are flipped and coloured: the model, or `tf.data`."""

    def views(self, config, inputs, batches=2):
        """`(views as the input pipeline gives them, views as the model trains on them)`,
        both `[N, V, S, S, 3]`, of the first `batches` batches of 64."""
        model = components.new_supcon_model(config, inputs.input_shape, crop=False)
        stream = inputs.training_batches(
            64,
            config.seed,
            1,
            0,
            0,
            augmenter=components.stream_augmenter(config, inputs.streamed),
            views=config.views,
        )
        piped, trained = [], []
        for images, _ in list(stream)[:batches]:
            piped.append(images.numpy())
            drawn = model.draw_views(images, training=True).numpy()  # [V, B, S, S, 3]
            trained.append(np.moveaxis(drawn, 0, 1))
        return np.concatenate(piped), np.concatenate(trained), model

    def test_placements_draw_views_alike(self, tmp_path):
        root = write_flat_png_folder(tmp_path / "flat")
        device = tiny_config(
            root, tmp_path, crop_min_area=1.0, augment_strength=0.5, validation_fraction=0.0
        )
        pipeline = dataclasses.replace(device, augment_placement="pipeline")
        assert device.augment_placement == "device"  # the default
        inputs = open_inputs(device.data_source())
        plain, device_views, device_model = self.views(device, inputs)
        piped, pipeline_views, pipeline_model = self.views(pipeline, inputs)
        assert device_model.augmenter is not None and pipeline_model.augmenter is None
        # Device placement: the CPU only decoded (whole flat images here): no colour op.
        assert np.all(np.ptp(plain, axis=(2, 3)) == 0) and np.array_equal(plain[:, 0], plain[:, 1])
        np.testing.assert_array_equal(pipeline_views, piped)  # the model adds nothing
        assert not np.array_equal(piped, plain)
        # Both: SimAugment drawn per view and per image (p = 0.8 jitter, then p = 0.2
        # grayscale: 0.2 * 0.8 of the views unchanged, 0.2 gray; 256 views, 4 sigma < 0.1),
        # and the two views of an image differ.
        for views in (device_views, pipeline_views):
            unchanged = np.all(np.abs(views - plain) < 1e-6, axis=(2, 3, 4))
            gray = np.all(np.abs(views - views[..., :1]) < 1e-5, axis=(2, 3, 4))
            assert abs(unchanged.mean() - 0.16) < 0.1 and abs(gray.mean() - 0.2) < 0.1
            assert np.mean(np.all(views[:, 0] == views[:, 1], axis=(1, 2, 3))) < 0.1

    def test_unknown_placement(self, tmp_path):
        with pytest.raises(
            ValueError, match=r"`augment_placement` must be one of 'device', 'pipeline', got 'gpu'"
        ):
            tiny_config("digits", tmp_path, image_size=None, augment_placement="gpu")

    def test_a_run_folder_from_before_the_option_resumes(self, tmp_path):
        config = tiny_config("digits", tmp_path, image_size=None)
        stored = dataclasses.asdict(config)
        del stored["augment_placement"]
        (tmp_path / "config.json").write_text(json.dumps(stored))
        run = RunDirectory(str(tmp_path))
        run.check_config(dataclasses.asdict(config), RESUMABLE_FIELDS, defaults=_defaults())
        pipeline = dataclasses.replace(config, augment_placement="pipeline")
        with pytest.raises(ValueError, match=r"augment_placement: 'device' -> 'pipeline'"):
            run.check_config(dataclasses.asdict(pipeline), RESUMABLE_FIELDS, defaults=_defaults())
