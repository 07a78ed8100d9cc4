"""Tests of the streaming input path: image folders, TFRecord shards, TFDS, crops, resume.

Oracles: images whose colour encodes their class or identity (so a crop names its file),
float64 NumPy transcriptions of the crops, and counts of generated files.
"""

import importlib.util
import json
import os
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from supcon_tf.data import (
    StreamingSplits,
    StreamSplit,
    is_streamed,
    load_dataset,
    make_evaluation_stream,
    make_training_stream,
    open_streaming_dataset,
    tfrecords,
    write_shards,
)
from supcon_tf.data.parsing import DECODE_GROUP, _decode
from supcon_tf.data.streaming import (
    central_crop,
    crop_settings,
    input_error_message,
    random_resized_crop,
    random_resized_crops,
)
from supcon_tf.data.tfrecords import IMAGE_KEY, LABEL_KEY, image_example
from supcon_tf.errors import DataError, UsageError
from tests._processes import run_module
from tests._streaming_worker import ID_TRAIN_PER_CLASS, identities, write_id_folder

ROOT = Path(__file__).resolve().parents[1]
CLASS_LEVELS = (30, 90, 150, 210)
TRAIN_PER_CLASS, TEST_PER_CLASS = 40, 10
# A JPEG of one flat colour decodes within a few levels of it (CMYK round trips
# through PIL's conversion lose a little more).
COLOUR_ATOL = 8 / 255
NUM_ID_IMAGES = 2 * ID_TRAIN_PER_CLASS


def write_mixed_folder(root, seed=0):
    """200 images of 40-400 px: RGB, greyscale (every 5th), one CMYK JPEG, one PNG.

    Every pixel of class k has the grey level `CLASS_LEVELS[k]`, so any crop's mean
    gives its class. A text file sits among the images (it must be ignored).
    """
    rng = np.random.default_rng(seed)
    for split, count in (("train", TRAIN_PER_CLASS), ("test", TEST_PER_CLASS)):
        for label, level in enumerate(CLASS_LEVELS):
            folder = Path(root, split, f"class_{label}")
            folder.mkdir(parents=True)
            for index in range(count):
                height, width = (int(size) for size in rng.integers(40, 401, 2))
                image = Image.fromarray(np.full((height, width, 3), level, np.uint8))
                if index % 5 == 0:
                    image = image.convert("L")
                if split == "train" and label == 1 and index == 1:
                    image.convert("CMYK").save(folder / f"{index:03d}.jpg")
                elif split == "train" and label == 2 and index == 1:
                    image.save(folder / f"{index:03d}.png")
                else:
                    image.save(folder / f"{index:03d}.jpg")
    Path(root, "train", "class_0", "notes.txt").write_text("not an image")
    return Path(root)


@pytest.fixture(scope="session")
def mixed_folder(tmp_path_factory):
    return write_mixed_folder(tmp_path_factory.mktemp("mixed"))


@pytest.fixture(scope="session")
def id_folder(tmp_path_factory):
    return Path(write_id_folder(str(tmp_path_factory.mktemp("ids"))))


@pytest.fixture(scope="session")
def id_shards(tmp_path_factory, id_folder):
    output = tmp_path_factory.mktemp("id_shards")
    write_shards(id_folder, output, num_shards=4, progress=False)
    return output


def class_of(images):
    """The class whose grey level is nearest each crop's mean."""
    means = np.asarray(images).mean(axis=(-3, -2, -1)) * 255.0
    return np.abs(means[..., None] - np.asarray(CLASS_LEVELS)).argmin(axis=-1)


def epoch_identities(stream):
    return np.concatenate([identities(images) for images, _ in stream])


class TestOpenStreamingDataset:
    def test_lists_every_image_and_ignores_other_files(self, mixed_folder):
        splits = open_streaming_dataset(mixed_folder, validation_fraction=0.1)
        assert splits.kind == "folder"
        assert splits.class_names == ("class_0", "class_1", "class_2", "class_3")
        assert splits.train.num_examples + splits.validation.num_examples == 4 * TRAIN_PER_CLASS
        assert splits.validation.num_examples == 16
        assert splits.test.num_examples == 4 * TEST_PER_CLASS
        all_files = splits.train.files + splits.validation.files
        assert not any(path.endswith(".txt") for path in all_files)
        assert len(set(all_files)) == len(all_files)

    def test_validation_is_stratified(self, mixed_folder):
        splits = open_streaming_dataset(mixed_folder, validation_fraction=0.1, seed=3)
        assert np.bincount(splits.validation.labels).tolist() == [4, 4, 4, 4]
        for path, label in zip(splits.train.files, splits.train.labels, strict=True):
            assert f"class_{label}" in path

    def test_missing_split_folder(self, tmp_path):
        (tmp_path / "train" / "a").mkdir(parents=True)
        with pytest.raises(FileNotFoundError, match="has no test/ folder"):
            open_streaming_dataset(tmp_path)

    def test_empty_class_folder_is_named(self, tmp_path):
        write_id_folder(str(tmp_path), train_per_class=2, test_per_class=1)
        (tmp_path / "train" / "empty").mkdir()
        with pytest.raises(ValueError, match=r"Class folder .*train/empty holds no images"):
            open_streaming_dataset(tmp_path)

    def test_unknown_path_and_bad_fraction(self, tmp_path, id_folder):
        with pytest.raises(FileNotFoundError, match="does not exist"):
            open_streaming_dataset(tmp_path / "missing")
        with pytest.raises(ValueError, match=r"`validation_fraction` must be in \[0, 1\), got 1"):
            open_streaming_dataset(id_folder, validation_fraction=1)

    def test_which_path_a_dataset_takes(self, id_folder, id_shards):
        assert is_streamed(id_shards) and is_streamed("tfds:anything")
        assert is_streamed(id_folder, image_size=32)
        assert not is_streamed(id_folder) and not is_streamed("digits", image_size=32)


class TestCrops:
    def test_random_resized_crop_boxes(self):
        # Red encodes the row and green the column, so a crop shows where it came from.
        rows, columns = np.meshgrid(np.arange(200), np.arange(250), indexing="ij")
        image = tf.constant(np.stack([rows, columns, np.zeros_like(rows)], -1).astype(np.uint8))
        areas, ratios = [], []
        for seed in range(200):
            crop = random_resized_crop(image, 32, seed=[seed, 7], min_crop_area=0.2).numpy()
            crop = crop * 255.0
            height = crop[-1, :, 0].mean() - crop[0, :, 0].mean()
            width = crop[:, -1, 1].mean() - crop[:, 0, 1].mean()
            # Pixel centres of the first and last output rows lie 1/32 in from the box.
            height, width = height * 32 / 31, width * 32 / 31
            areas.append(height * width / (200 * 250))
            ratios.append(width / height)
        areas, ratios = np.array(areas), np.array(ratios)
        assert areas.min() > 0.2 - 0.02 and areas.max() < 1.0 + 0.02
        assert ratios.min() > 0.75 - 0.05 and ratios.max() < 4 / 3 + 0.05
        assert areas.std() > 0.1  # the boxes vary
        again = random_resized_crop(image, 32, seed=[5, 7], min_crop_area=0.2)
        first = random_resized_crop(image, 32, seed=[5, 7], min_crop_area=0.2)
        np.testing.assert_array_equal(again, first)

    def test_central_crop_matches_numpy_bilinear(self):
        rng = np.random.default_rng(0)
        image = rng.integers(0, 256, (37, 52, 3)).astype(np.uint8)
        side = round(0.875 * 37)  # 32
        top, left = (37 - side) // 2, (52 - side) // 2
        square = image[top : top + side, left : left + side].astype(np.float64) / 255.0
        size = 24
        # Half-pixel-centre bilinear resize, written out.
        centres = (np.arange(size) + 0.5) * side / size - 0.5
        low = np.clip(np.floor(centres), 0, side - 1).astype(int)
        high = np.clip(low + 1, 0, side - 1)
        weight = np.clip(centres - low, 0, 1)
        weight[centres < 0] = 0
        rows = square[low] * (1 - weight)[:, None, None] + square[high] * weight[:, None, None]
        expected = (
            rows[:, low] * (1 - weight)[None, :, None] + rows[:, high] * weight[None, :, None]
        )
        actual = central_crop(tf.constant(image), size).numpy()
        np.testing.assert_allclose(actual, expected, atol=2e-6)

    def test_crop_settings_follow_the_image_size(self):
        assert crop_settings(224) == (0.08, 0.875)
        assert crop_settings(96) == (0.08, 0.875)
        assert crop_settings(95) == (0.2, 1.0)
        assert crop_settings(32, min_crop_area=1.0, center_crop_fraction=0.5) == (1.0, 0.5)
        for bad in (0, 1.5, -0.1, True, "0.5"):
            with pytest.raises(ValueError, match=r"`min_crop_area` must be a number in \(0, 1\]"):
                crop_settings(32, min_crop_area=bad)
            with pytest.raises(ValueError, match=r"`center_crop_fraction` must be a number in"):
                crop_settings(32, center_crop_fraction=bad)

    def test_whole_image_crops_are_the_image(self):
        image = np.random.default_rng(1).integers(0, 256, (32, 32, 3)).astype(np.uint8)
        expected = image.astype(np.float32) / 255.0
        for seed in range(3):
            crop = random_resized_crop(tf.constant(image), 32, [seed, 0], min_crop_area=1.0)
            np.testing.assert_array_equal(crop.numpy(), expected)
        np.testing.assert_array_equal(central_crop(tf.constant(image), 32, 1.0), expected)
        assert not np.array_equal(central_crop(tf.constant(image), 32, 0.875), expected)


class TestFusedCrops:
    """`random_resized_crops` (fused decode-and-crop) against decoding whole, then cropping."""

    SEEDS = [[seed, 3] for seed in range(12)]

    @staticmethod
    def image():
        noise = np.random.default_rng(2).integers(0, 256, (30, 40, 3)).astype(np.uint8)
        return tf.cast(tf.image.resize(noise[None], [123, 157])[0], tf.uint8)

    def whole_then_cropped(self, decoded, image_size=32):
        return np.stack(
            [random_resized_crop(decoded, image_size, seed).numpy() for seed in self.SEEDS]
        )

    def test_jpeg_windows_are_the_crops_of_the_decoded_image(self):
        # Without chroma subsampling a JPEG window decodes to exactly the whole image's pixels.
        encoded = tf.io.encode_jpeg(self.image(), quality=95, chroma_downsampling=False)
        expected = self.whole_then_cropped(tf.io.decode_jpeg(encoded, channels=3))
        np.testing.assert_array_equal(random_resized_crops(encoded, 32, self.SEEDS), expected)

    def test_subsampled_jpeg_differs_only_at_window_edges(self):
        # 4:2:0 chroma is upsampled from the window's own blocks: its edge pixels may differ.
        encoded = tf.io.encode_jpeg(self.image(), quality=95)
        expected = self.whole_then_cropped(tf.io.decode_jpeg(encoded, channels=3))
        difference = np.abs(random_resized_crops(encoded, 32, self.SEEDS).numpy() - expected)
        assert difference.mean() < 0.5 / 255 and difference.max() < 32 / 255

    @pytest.mark.parametrize(
        "encode, channels",
        [(tf.io.encode_png, 3), (tf.io.encode_png, 1), (tf.io.encode_jpeg, 1)],
    )
    def test_png_and_greyscale_jpeg(self, encode, channels):
        encoded = encode(self.image()[..., :channels])
        rgb = tf.io.decode_image(encoded, channels=3, expand_animations=False)
        crops = random_resized_crops(encoded, 24, self.SEEDS)
        np.testing.assert_array_equal(crops, self.whole_then_cropped(rgb, 24))
        if channels == 1:
            np.testing.assert_array_equal(crops[..., 0], crops[..., 2])

    def test_whole_image_views_decode_once_and_are_equal(self):
        encoded = tf.io.encode_png(self.image())
        views = random_resized_crops(encoded, 16, self.SEEDS[:2], min_crop_area=1.0).numpy()
        expected = random_resized_crop(self.image(), 16, [0, 0], min_crop_area=1.0).numpy()
        np.testing.assert_array_equal(views, np.stack([expected, expected]))

    def test_bad_fraction(self):
        with pytest.raises(ValueError, match=r"`min_crop_area` must be a number in \(0, 1\]"):
            random_resized_crops(tf.io.encode_png(self.image()), 16, self.SEEDS, 0.0)


def write_png_folder(root, per_class=6, size=32, seed=0):
    """Random 32-px PNGs (lossless) in 2 classes, both splits."""
    rng = np.random.default_rng(seed)
    for split in ("train", "test"):
        for name in ("a", "b"):
            folder = Path(root, split, name)
            folder.mkdir(parents=True)
            for index in range(per_class):
                pixels = rng.integers(0, 256, (size, size, 3)).astype(np.uint8)
                Image.fromarray(pixels).save(folder / f"{index}.png")
    return Path(root)


def test_small_images_streamed_whole_are_the_in_ram_pixels(tmp_path):
    """At their own size with `min_crop_area=1`, streamed images equal the in-RAM arrays."""
    root = write_png_folder(tmp_path)
    in_ram = load_dataset(str(root), validation_fraction=0)
    splits = open_streaming_dataset(root, validation_fraction=0)

    def sorted_rows(images):
        rows = np.asarray(images).reshape(len(images), -1)
        return rows[np.lexsort(rows.T[::-1])]

    stream = make_training_stream(splits, 4, 32, views=2, epochs=1, min_crop_area=1.0)
    views = np.concatenate([images.numpy() for images, _ in stream])
    np.testing.assert_array_equal(views[:, 0], views[:, 1])
    # TF divides by 255 as a product by its reciprocal: one rounding apart (measured 6e-8).
    ulp = np.finfo(np.float32).eps
    np.testing.assert_allclose(
        sorted_rows(views[:, 0]), sorted_rows(in_ram.x_train), rtol=0, atol=ulp
    )
    test = np.concatenate(
        [images.numpy() for images, _ in make_evaluation_stream(splits, "test", 5, 32)]
    )
    np.testing.assert_allclose(sorted_rows(test), sorted_rows(in_ram.x_test), rtol=0, atol=ulp)


class TestTrainingStream:
    def test_views_are_crops_of_the_labelled_image(self, mixed_folder):
        splits = open_streaming_dataset(mixed_folder, validation_fraction=0)
        stream = make_training_stream(splits, batch_size=16, image_size=24, views=2, epochs=1)
        batches = list(stream)
        assert len(batches) == 4 * TRAIN_PER_CLASS // 16
        for images, labels in batches:
            assert images.shape == (16, 2, 24, 24, 3) and images.dtype == tf.float32
            assert labels.dtype == tf.int32
            assert float(tf.reduce_min(images)) >= 0.0 and float(tf.reduce_max(images)) <= 1.0
            expected = np.asarray(CLASS_LEVELS)[labels.numpy()] / 255.0
            means = images.numpy().mean(axis=(2, 3, 4))
            np.testing.assert_allclose(means, np.stack([expected] * 2, 1), atol=COLOUR_ATOL)

    def test_every_epoch_reads_every_file_once_in_a_new_order(self, id_folder):
        splits = open_streaming_dataset(id_folder, validation_fraction=0)
        read = epoch_identities(make_training_stream(splits, 8, 16, epochs=2, seed=1))
        first, second = read[:NUM_ID_IMAGES], read[NUM_ID_IMAGES:]
        assert sorted(first) == sorted(second) == list(range(NUM_ID_IMAGES))
        assert not np.array_equal(first, second)
        other_seed = epoch_identities(make_training_stream(splits, 8, 16, epochs=1, seed=2))
        assert not np.array_equal(first, other_seed)

    def test_resume_lands_on_the_same_batch(self, mixed_folder):
        splits = open_streaming_dataset(mixed_folder, validation_fraction=0)
        steps = 4 * TRAIN_PER_CLASS // 32
        full = [images.numpy() for images, _ in make_training_stream(splits, 32, 16, 2, epochs=3)]
        resumed = make_training_stream(splits, 32, 16, 2, epochs=3, initial_epoch=1, initial_step=2)
        resumed = [images.numpy() for images, _ in resumed]
        assert len(resumed) == 2 * steps - 2
        for expected, actual in zip(full[steps + 2 :], resumed, strict=True):
            np.testing.assert_array_equal(actual, expected)

    def test_input_pipelines_read_disjoint_files(self, id_folder):
        splits = open_streaming_dataset(id_folder, validation_fraction=0)
        read = []
        for pipeline in range(2):
            context = tf.distribute.InputContext(2, pipeline, num_replicas_in_sync=2)
            stream = make_training_stream(splits, 8, 16, epochs=1, input_context=context)
            batches = list(stream)
            assert all(images.shape[0] == 4 for images, _ in batches)  # per replica
            assert len(batches) == NUM_ID_IMAGES // 8
            read.append(set(epoch_identities(batches)))
        assert not read[0] & read[1]
        assert read[0] | read[1] == set(range(NUM_ID_IMAGES))

    def test_augment_is_applied_to_every_view(self, id_folder):
        splits = open_streaming_dataset(id_folder, validation_fraction=0)
        stream = make_training_stream(splits, 8, 16, views=3, augment=lambda x, training: 1 - x)
        images, _ = next(iter(stream))
        plain, _ = next(iter(make_training_stream(splits, 8, 16, views=3)))
        np.testing.assert_allclose(images, 1 - plain.numpy(), atol=1e-6)

    @pytest.mark.parametrize(
        "arguments, match",
        [
            ({"image_size": 0}, r"`image_size` must be a positive integer, got 0"),
            ({"batch_size": 1000}, "batch size 1000 exceeds the 48 training images"),
            ({"views": 0}, r"`views` must be None or a positive integer, got 0"),
            ({"initial_step": 6}, r"`initial_step`=6 must be in \[0, 6\)"),
            ({"initial_epoch": 1}, r"`initial_epoch`=1 must be in \[0, epochs=1\)"),
        ],
    )
    def test_bad_arguments(self, id_folder, arguments, match):
        splits = open_streaming_dataset(id_folder, validation_fraction=0)
        arguments = {"batch_size": 8, "image_size": 16, **arguments}
        with pytest.raises(ValueError, match=match):
            make_training_stream(splits, **arguments)


class TestEvaluationStream:
    def test_reads_each_test_image_once_in_order(self, id_folder):
        splits = open_streaming_dataset(id_folder)
        batches = list(make_evaluation_stream(splits, "test", 3, image_size=16))
        assert [int(images.shape[0]) for images, _ in batches] == [3, 3, 2]
        read = epoch_identities(batches)
        np.testing.assert_array_equal(read, np.arange(NUM_ID_IMAGES, NUM_ID_IMAGES + 8))
        labels = np.concatenate([labels.numpy() for _, labels in batches])
        np.testing.assert_array_equal(labels, [0] * 4 + [1] * 4)

    def test_cardinality_is_known_for_fit(self, id_folder, id_shards):
        for source in (id_folder, id_shards):
            stream = make_evaluation_stream(open_streaming_dataset(source), "test", 3, 16)
            assert int(stream.cardinality()) == 3 == len(list(stream))

    def test_unknown_or_empty_split(self, id_folder):
        splits = open_streaming_dataset(id_folder, validation_fraction=0)
        with pytest.raises(ValueError, match="Unknown split 'val'"):
            make_evaluation_stream(splits, "val", 4, 16)
        with pytest.raises(ValueError, match="The validation split of .* is empty"):
            make_evaluation_stream(splits, "validation", 4, 16)


def truncate(path):
    data = Path(path).read_bytes()
    Path(path).write_bytes(data[: len(data) // 3])


class TestCorruptImages:
    @pytest.fixture
    def corrupt_folder(self, tmp_path):
        write_id_folder(str(tmp_path), train_per_class=8, test_per_class=2)
        truncate(tmp_path / "train" / "b" / "03.jpg")
        return tmp_path

    def test_error_names_the_file(self, corrupt_folder):
        splits = open_streaming_dataset(corrupt_folder, validation_fraction=0)
        with pytest.raises(tf.errors.InvalidArgumentError) as raised:
            list(make_training_stream(splits, 4, 16))
        message = input_error_message(raised.value)
        assert message.startswith(f"Cannot read image {corrupt_folder}/train/b/03.jpg")
        assert "skip_corrupt_images" in message

    def test_opt_in_skip_counts_the_file(self, corrupt_folder):
        splits = open_streaming_dataset(
            corrupt_folder, validation_fraction=0, skip_corrupt_images=True
        )
        batches = list(make_training_stream(splits, 4, 16, epochs=2))
        assert len(batches) >= 2 * (16 // 4)
        assert splits.skipped_images == [f"{corrupt_folder}/train/b/03.jpg"]
        read = epoch_identities(batches)
        assert 8 + 3 not in read  # the truncated image's identity


class TestDecodingInGroups:
    """Unreadable images at every place of a decoding group (`parsing.DECODE_GROUP`)."""

    COUNT = 2 * DECODE_GROUP + 8  # two whole groups and a partial one
    UNREADABLE = (0, DECODE_GROUP - 1, DECODE_GROUP, DECODE_GROUP + 1, 2 * DECODE_GROUP - 1)

    def elements(self, unreadable):
        payloads = [
            b"not an image" if index in unreadable else encoded_png(index)
            for index in range(self.COUNT)
        ]
        return tf.data.Dataset.from_tensor_slices(
            {
                "name": [f"image-{index:02d}" for index in range(self.COUNT)],
                "payload": payloads,
                "label": list(range(self.COUNT)),
            }
        )

    def splits(self, skip):
        return types.SimpleNamespace(skip_corrupt_images=skip, kind="folder", skipped_images=[])

    @pytest.mark.parametrize("last", [False, True], ids=["inside", "stream_end"])
    def test_skipping_keeps_the_order_and_records_every_unreadable_image(self, last):
        unreadable = self.UNREADABLE + ((self.COUNT - 1,) if last else ())
        splits = self.splits(skip=True)
        decoded = list(_decode(splits, self.elements(unreadable)))
        kept = [index for index in range(self.COUNT) if index not in unreadable]
        assert [int(element["label"]) for element in decoded] == kept
        # Each image is the one its element named (a PNG of constant level = its index).
        assert [int(element["image"][0, 0, 0]) for element in decoded] == kept
        assert splits.skipped_images == [f"image-{index:02d}" for index in unreadable]

    @pytest.mark.parametrize("first", UNREADABLE[1:] + (COUNT - 1,))
    def test_the_error_names_the_first_unreadable_image(self, first):
        with pytest.raises(tf.errors.InvalidArgumentError) as raised:
            list(_decode(self.splits(skip=False), self.elements((first, self.COUNT - 1))))
        message = input_error_message(raised.value)
        assert message.startswith(f"Cannot read image image-{first:02d}: it is not a readable")

    def test_readable_stream_is_unchanged(self):
        decoded = list(_decode(self.splits(skip=False), self.elements(())))
        assert [int(element["label"]) for element in decoded] == list(range(self.COUNT))


def write_records(path, examples):
    with tf.io.TFRecordWriter(str(path)) as writer:
        for example in examples:
            writer.write(example.SerializeToString())


def encoded_png(level=100):
    return tf.io.encode_png(np.full((20, 30, 3), level, np.uint8)).numpy()


class TestTFRecords:
    def test_shards_stream_the_same_images_as_the_folder(self, id_shards):
        info = json.loads((id_shards / "dataset_info.json").read_text())
        assert info["num_examples"] == {"train": NUM_ID_IMAGES, "test": 8}
        shards = {f"train-0000{index}-of-00004" for index in range(4)}
        assert set(os.listdir(id_shards)) == shards | {"test-00000-of-00001", "dataset_info.json"}
        assert info["num_shards"] == {"train": 4, "test": 1}
        splits = open_streaming_dataset(id_shards, validation_fraction=0)
        assert splits.kind == "tfrecord" and splits.class_names == ("a", "b")
        assert splits.validation.num_examples == 0
        assert info["shard_lengths"] == {"train": [NUM_ID_IMAGES // 4] * 4, "test": [8]}
        batches = list(make_training_stream(splits, 8, 16, views=2, epochs=1))
        read = epoch_identities(batches)
        assert sorted(read[:, 0]) == list(range(NUM_ID_IMAGES))
        np.testing.assert_array_equal(read[:, 0], read[:, 1])
        labels = np.concatenate([labels.numpy() for _, labels in batches])
        np.testing.assert_array_equal(labels, read[:, 0] >= ID_TRAIN_PER_CLASS)
        test = epoch_identities(make_evaluation_stream(splits, "test", 8, 16))
        assert sorted(test) == list(range(NUM_ID_IMAGES, NUM_ID_IMAGES + 8))

    def test_shards_are_split_between_pipelines(self, id_shards):
        splits = open_streaming_dataset(id_shards, validation_fraction=0)
        read = []
        for pipeline in range(2):
            context = tf.distribute.InputContext(2, pipeline, 2)
            read.append(
                set(epoch_identities(make_training_stream(splits, 8, 16, input_context=context)))
            )
        assert not read[0] & read[1]
        context = tf.distribute.InputContext(8, 0, 8)
        with pytest.raises(ValueError, match="4 files for 8 input pipelines"):
            make_training_stream(splits, 8, 16, input_context=context)

    def test_without_info_file_counts_records_and_classes(self, tmp_path):
        write_records(
            tmp_path / "train-0-of-1", [image_example(encoded_png(), k % 3) for k in range(7)]
        )
        write_records(tmp_path / "validation-0-of-1", [image_example(encoded_png(), 1)])
        splits = open_streaming_dataset(tmp_path, validation_fraction=0)
        assert (splits.train.num_examples, splits.test.num_examples) == (7, 1)
        assert splits.class_names == ("0", "1", "2")

    def test_missing_key_names_key_and_file(self, tmp_path):
        example = tf.train.Example(
            features=tf.train.Features(
                feature={LABEL_KEY: tf.train.Feature(int64_list=tf.train.Int64List(value=[0]))}
            )
        )
        write_records(tmp_path / "train-0-of-1", [example] * 4)
        write_records(tmp_path / "validation-0-of-1", [image_example(encoded_png(), 0)])
        splits = open_streaming_dataset(tmp_path, validation_fraction=0)
        with pytest.raises(tf.errors.InvalidArgumentError) as raised:
            list(make_training_stream(splits, 2, 8))
        assert input_error_message(raised.value) == (
            f"TFRecord file {tmp_path}/train-0-of-1 has a record without the feature "
            f"'{IMAGE_KEY}' (the encoded image)."
        )

    def test_label_out_of_range_names_file(self, tmp_path):
        write_records(tmp_path / "train-0-of-1", [image_example(encoded_png(), 0)] * 3)
        write_records(tmp_path / "validation-0-of-1", [image_example(encoded_png(), 5)])
        (tmp_path / "dataset_info.json").write_text(json.dumps({"class_names": ["x", "y"]}))
        splits = open_streaming_dataset(tmp_path, validation_fraction=0)
        with pytest.raises(tf.errors.InvalidArgumentError) as raised:
            list(make_evaluation_stream(splits, "test", 2, 8))
        message = input_error_message(raised.value)
        assert message.startswith(f"TFRecord file {tmp_path}/validation-0-of-1 has label 5")
        assert "outside [0, 2)" in message

    def test_corrupt_image_names_the_shard(self, tmp_path):
        records = [image_example(encoded_png(), 0), image_example(encoded_png()[:40], 1)]
        write_records(tmp_path / "train-0-of-1", records * 2)
        write_records(tmp_path / "validation-0-of-1", records[:1])
        splits = open_streaming_dataset(tmp_path, validation_fraction=0)
        with pytest.raises(tf.errors.InvalidArgumentError) as raised:
            list(make_training_stream(splits, 2, 8))
        assert input_error_message(raised.value).startswith(
            f"Cannot read image in TFRecord file {tmp_path}/train-0-of-1"
        )

    def test_missing_evaluation_shards(self, tmp_path):
        write_records(tmp_path / "train-0-of-1", [image_example(encoded_png(), 0)])
        with pytest.raises(FileNotFoundError, match="has no evaluation shards"):
            open_streaming_dataset(tmp_path)

    def test_converter_command(self, tmp_path):
        """supcon-prepare as a user runs it: a corrupt image, then a full folder, in one line."""
        write_id_folder(str(tmp_path / "images"), train_per_class=3, test_per_class=1)
        truncate(tmp_path / "images" / "train" / "a" / "01.jpg")
        command = [sys.executable, "-m", "supcon_tf.cli.prepare", f"--input={tmp_path / 'images'}"]
        command += [f"--output={tmp_path / 'shards'}", "--num_shards=2"]
        environment = dict(os.environ, PYTHONPATH=str(ROOT))
        environment.pop("TF_CPP_MIN_LOG_LEVEL", None)
        failed = subprocess.run(command, env=environment, capture_output=True, text=True, cwd=ROOT)
        assert failed.returncode == 1
        # libjpeg itself may say "Improper call to JPEG library" first.
        lines = failed.stderr.strip().splitlines()
        assert lines[-1].startswith("supcon-prepare: error: Cannot read image ")
        assert "train/a/01.jpg" in lines[-1] and "--skip_corrupt_images" in lines[-1]
        assert "Traceback" not in failed.stderr and failed.stderr.count("error:") == 1
        done = subprocess.run(
            [*command, "--skip_corrupt_images"], env=environment, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr[-3000:]
        # Not a terminal: what is written, without the progress bar's escape codes.
        assert "\x1b[" not in done.stdout
        assert "Writing 6 train images to 2 train-* shards" in done.stdout
        assert "Wrote 5 train and 2 test images of 2 classes" in done.stdout
        info = json.loads((tmp_path / "shards" / "dataset_info.json").read_text())
        assert info["skipped_images"] == [str(tmp_path / "images" / "train" / "a" / "01.jpg")]
        assert (
            open_streaming_dataset(tmp_path / "shards", validation_fraction=0).train.num_examples
            == 5
        )
        again = subprocess.run(command, env=environment, capture_output=True, text=True, cwd=ROOT)
        assert again.returncode == 2
        assert again.stderr.strip() == (
            f"supcon-prepare: error: --output={tmp_path / 'shards'} is not empty (4 files); "
            "pass --overwrite to replace its shards, or an empty or new folder"
        )


def shard_listing(folder):
    return sorted(name for name in os.listdir(folder) if name != "dataset_info.json")


class TestPrepareNeverMixes:
    """write_shards refuses, replaces and survives a kill; check_shards refuses a mix."""

    @pytest.fixture
    def images(self, tmp_path):
        write_id_folder(str(tmp_path / "images"), train_per_class=4, test_per_class=2)
        return tmp_path / "images"

    def test_non_empty_output_is_refused(self, tmp_path, images):
        (tmp_path / "shards").mkdir()
        (tmp_path / "shards" / "notes.txt").write_text("mine")
        with pytest.raises(UsageError, match=r"shards is not empty \(1 files\); pass --overwrite"):
            write_shards(images, tmp_path / "shards", progress=False)
        with pytest.raises(UsageError, match=r"holds files that are not shards \(notes.txt\)"):
            write_shards(images, tmp_path / "shards", progress=False, overwrite=True)
        assert os.listdir(tmp_path / "shards") == ["notes.txt"]

    def test_overwrite_replaces_the_whole_set(self, tmp_path, images):
        output = tmp_path / "shards"
        write_shards(images, output, num_shards=4, progress=False)
        info = write_shards(images, output, num_shards=2, progress=False, overwrite=True)
        assert shard_listing(output) == [
            "test-00000-of-00001",
            "train-00000-of-00002",
            "train-00001-of-00002",
        ]
        assert info["num_shards"] == {"train": 2, "test": 1}
        assert sorted(os.listdir(tmp_path)) == ["images", "shards"]  # No staging left.
        splits = open_streaming_dataset(output, validation_fraction=0)
        assert (splits.train.num_examples, splits.test.num_examples) == (8, 4)
        assert sorted(epoch_identities(make_evaluation_stream(splits, "test", 4, 16))) == list(
            range(8, 12)
        )

    def test_a_kill_while_writing_leaves_the_old_set(self, tmp_path, images, monkeypatch):
        output = tmp_path / "shards"
        write_shards(images, output, num_shards=4, progress=False)
        before = {name: (output / name).read_bytes() for name in os.listdir(output)}
        written = []

        def dies_on_the_fifth(*arguments):
            written.append(arguments)
            if len(written) == 5:
                raise KeyboardInterrupt("killed")
            return image_example(*arguments)

        monkeypatch.setattr(tfrecords, "image_example", dies_on_the_fifth)
        with pytest.raises(KeyboardInterrupt):
            write_shards(images, output, num_shards=2, progress=False, overwrite=True)
        assert {name: (output / name).read_bytes() for name in os.listdir(output)} == before
        assert open_streaming_dataset(output, validation_fraction=0).train.num_examples == 8
        monkeypatch.undo()
        # The next run removes the unfinished staging folder and writes the new set.
        write_shards(images, output, num_shards=2, progress=False, overwrite=True)
        assert len(shard_listing(output)) == 3
        assert sorted(os.listdir(tmp_path)) == ["images", "shards"]

    def test_a_kill_between_the_renames_is_finished_next_time(self, tmp_path, images, monkeypatch):
        output = tmp_path / "shards"
        write_shards(images, output, num_shards=4, progress=False)
        rename = tf.io.gfile.rename
        renames = []

        def dies_on_the_second(source, target, overwrite=False):
            renames.append(target)
            if len(renames) == 2:
                raise KeyboardInterrupt("killed")
            rename(source, target, overwrite)

        monkeypatch.setattr(tf.io.gfile, "rename", dies_on_the_second)
        with pytest.raises(KeyboardInterrupt):
            write_shards(images, output, num_shards=2, progress=False, overwrite=True)
        monkeypatch.undo()
        # Killed with the old set moved aside and the new one complete in staging.
        assert not output.exists()
        assert (tmp_path / ".shards.staging" / "dataset_info.json").is_file()
        assert tfrecords.finish_interrupted_overwrite(output)
        assert sorted(os.listdir(tmp_path)) == ["images", "shards"]
        assert len(shard_listing(output)) == 3
        assert open_streaming_dataset(output, validation_fraction=0).train.num_examples == 8

    def test_overwrite_on_an_object_store(self, ram_dir, images, monkeypatch):
        output = f"{ram_dir}/shards"
        write_shards(images, output, num_shards=4, progress=False)
        write_shards(images, output, num_shards=2, progress=False, overwrite=True)
        names = sorted(path.rsplit("/", 1)[-1] for path in tf.io.gfile.glob(f"{output}/*"))
        assert names == [
            "dataset_info.json",
            "test-00000-of-00001",
            "train-00000-of-00002",
            "train-00001-of-00002",
        ]
        assert not tf.io.gfile.glob(f"{ram_dir}/.shards.staging/*")
        assert open_streaming_dataset(output, validation_fraction=0).train.num_examples == 8
        # Killed after the new test-* and first train-* shard moved in: refused, then
        # finished.
        rename = tf.io.gfile.rename
        moved = []

        def dies_on_the_third(source, target, overwrite=False):
            moved.append(target)
            if len(moved) == 3:
                raise KeyboardInterrupt("killed")
            rename(source, target, overwrite)

        monkeypatch.setattr(tf.io.gfile, "rename", dies_on_the_third)
        with pytest.raises(KeyboardInterrupt):
            write_shards(images, output, num_shards=4, progress=False, overwrite=True)
        monkeypatch.undo()
        with pytest.raises(DataError, match=r"has 1 train-\*-of-00004 shards, not 4"):
            open_streaming_dataset(output)
        assert tfrecords.finish_interrupted_overwrite(output)
        assert open_streaming_dataset(output, validation_fraction=0).train.num_examples == 8

    @pytest.mark.parametrize(
        ("names", "info", "match"),
        [
            (
                ["train-00000-of-00002", "train-00001-of-00002", "train-00000-of-00001"],
                None,
                r"mixes shard sets: train-\*-of-00001 \(1 file\), train-\*-of-00002 \(2 files\)",
            ),
            (
                ["train-00000-of-00003", "train-00002-of-00003"],
                None,
                "missing train-00001-of-00003",
            ),
            (["train-00000-of-00001", "train-00003-of-00001"], None, "numbered past 0"),
            (["train-00000-of-00001", "train-old"], None, r"not named train-NNNNN-of-NNNNN"),
            ([], None, r"has no train-\* shards"),
            (
                ["train-00000-of-00001", "validation-00000-of-00001"],
                None,
                "both validation-\\* and test-\\* shards",
            ),
            (
                ["train-00000-of-00001"],
                {"num_shards": {"train": 2, "test": 1}},
                r"lists 2 train shards, the folder holds 1",
            ),
        ],
    )
    def test_reader_refuses_a_mix(self, tmp_path, names, info, match):
        for name in [*names, "test-00000-of-00001"]:
            write_records(tmp_path / name, [image_example(encoded_png(), 0)])
        if info is not None:
            (tmp_path / "dataset_info.json").write_text(json.dumps({"class_names": ["a"], **info}))
        with pytest.raises(DataError, match=match) as raised:
            open_streaming_dataset(tmp_path)
        assert str(tmp_path) in str(raised.value)
        assert "supcon-prepare --overwrite" in str(raised.value)


TFDS_MISSING = importlib.util.find_spec("tensorflow_datasets") is None


def build_tfds_dataset(data_dir):
    """Prepares the TFDS dataset `stream_test_images` under `data_dir` (no download).

    Four classes of flat grey images of varied sizes; 24 training and 8 test images.
    """
    import tensorflow_datasets as tfds

    class StreamTestImages(tfds.core.GeneratorBasedBuilder, skip_registration=True):
        VERSION = tfds.core.Version("1.0.0")
        # No source folder (checksums, metadata) for a builder defined in a test.
        code_path = None

        def _info(self):
            features = {
                "image": tfds.features.Image(encoding_format="jpeg"),
                "label": tfds.features.ClassLabel(names=["w", "x", "y", "z"]),
            }
            return tfds.core.DatasetInfo(
                builder=self, features=tfds.features.FeaturesDict(features)
            )

        def _split_generators(self, dl_manager):
            return {"train": self._generate_examples(24), "test": self._generate_examples(8)}

        def _generate_examples(self, count):
            for index in range(count):
                label = index % 4
                image = np.full((30 + index, 50, 3), CLASS_LEVELS[label], np.uint8)
                yield index, {"image": image, "label": label}

    StreamTestImages(data_dir=str(data_dir)).download_and_prepare()
    return data_dir


@pytest.mark.skipif(
    TFDS_MISSING, reason="tensorflow-datasets is not installed (pip install 'supcon_tf[tfds]')"
)
class TestTFDS:
    def test_streams_a_tfds_dataset_by_name(self, tmp_path):
        tfds_dir = build_tfds_dataset(tmp_path)
        splits = open_streaming_dataset("tfds:stream_test_images", data_dir=str(tfds_dir))
        assert splits.kind == "tfds" and splits.class_names == ("w", "x", "y", "z")
        sizes = (splits.train.num_examples, splits.validation.num_examples)
        assert sizes + (splits.test.num_examples,) == (22, 2, 8)  # 10 % of 24 held out
        for images, labels in make_training_stream(splits, 8, 16, views=2, epochs=1):
            np.testing.assert_array_equal(class_of(images.numpy()[:, 0]), labels.numpy())
        images, labels = next(iter(make_evaluation_stream(splits, "test", 8, 16)))
        np.testing.assert_array_equal(class_of(images.numpy()), labels.numpy())


def test_streaming_splits_input_shape_and_split_lookup():
    split = StreamSplit(files=("a",), labels=(0,), num_examples=1)
    splits = StreamingSplits(split, split, split, ("a", "b"), "x", "folder")
    assert splits.input_shape(24) == (24, 24, 3)
    assert splits.split("test") is split


def run_streaming_worker(arguments, timeout=300):
    run_module("tests._streaming_worker", arguments, timeout)


@pytest.mark.slow
class TestDistributedStreams:
    """Fresh processes: logical devices and TF_CONFIG must precede TensorFlow's start."""

    def test_mirrored_replicas_get_disjoint_halves_and_fit_runs(self, tmp_path, id_folder):
        output = tmp_path / "mirrored.json"
        run_streaming_worker(["mirrored", f"--root={id_folder}", f"--output={output}"])
        results = json.loads(output.read_text())
        read = [
            identity for batch in results["batches"] for replica in batch for identity in replica
        ]
        assert all(len(replica) == 4 for batch in results["batches"] for replica in batch)
        assert sorted(read) == list(range(NUM_ID_IMAGES))
        assert np.isfinite(results["loss"]).all()

    def test_two_workers_read_disjoint_files_and_train(self, tmp_path, id_folder):
        from tests.test_distribute import run_two_workers

        output = tmp_path / "worker.json"
        command = [sys.executable, "-m", "tests._streaming_worker", "multi_worker"]
        run_two_workers([*command, f"--root={id_folder}", f"--output={output}"], timeout=300)
        workers = [json.loads(Path(f"{output}.{task}").read_text()) for task in (0, 1)]
        assert [worker["pipelines"] for worker in workers] == [2, 2]
        assert sorted(worker["pipeline_id"] for worker in workers) == [0, 1]
        read = [set(worker["read"]) for worker in workers]
        assert not read[0] & read[1]
        assert read[0] | read[1] == set(range(NUM_ID_IMAGES))
        assert all(np.isfinite(worker["loss"]).all() for worker in workers)
