"""Tests of supcon_tf.data: sources, splits, errors and the tf.data pipelines."""

import os
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from supcon_tf.data import DatasetSplits, load_dataset, make_dataset


def _write_png(path, image):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(tf.io.encode_png(image).numpy())


def _image_folder(root, sizes=None, channels=3):
    """train/ and test/ folders with classes 'cat' and 'ant' (sorted: ant=0, cat=1)."""
    rng = np.random.default_rng(0)
    written = {}
    for split, count in (("train", 6), ("test", 2)):
        for class_name in ("cat", "ant"):
            for index in range(count):
                size = (sizes or {}).get((split, class_name, index), (4, 5))
                image = rng.integers(0, 256, size=(*size, channels), dtype=np.uint8)
                path = root / split / class_name / f"{index:03d}.png"
                _write_png(path, image)
                written[path] = image
    return written


def _npz(path, **overrides):
    rng = np.random.default_rng(0)
    arrays = {
        "x_train": rng.integers(0, 256, size=(20, 4, 4), dtype=np.uint8),
        "y_train": (np.arange(20) % 2).reshape(-1, 1),
        "x_test": rng.integers(0, 256, size=(6, 4, 4), dtype=np.uint8),
        "y_test": np.arange(6) % 2,
    }
    arrays.update(overrides)
    arrays = {key: value for key, value in arrays.items() if value is not None}
    np.savez(path, **arrays)
    return arrays


class TestDigits:
    def test_splits(self):
        splits = load_dataset("digits", validation_fraction=0.1, seed=0)
        assert isinstance(splits, DatasetSplits)
        assert (len(splits.x_train), len(splits.x_val), len(splits.x_test)) == (1293, 144, 360)
        assert splits.input_shape == (8, 8, 1) and splits.num_classes == 10
        for images in (splits.x_train, splits.x_val, splits.x_test):
            assert images.dtype == np.float32 and images.min() >= 0 and images.max() <= 1
        for labels in (splits.y_train, splits.y_val, splits.y_test):
            assert labels.dtype == np.int32 and labels.ndim == 1
        # Stratified: every class is in the validation split.
        assert set(splits.y_val.tolist()) == set(range(10))

    def test_test_split_is_fixed_and_validation_split_follows_the_seed(self):
        first = load_dataset("digits", seed=0)
        second = load_dataset("digits", seed=1)
        np.testing.assert_array_equal(first.x_test, second.x_test)
        assert not np.array_equal(first.y_val, second.y_val)
        # Train + validation together are the same images for every seed.
        first_all = np.sort(np.concatenate([first.x_train, first.x_val]).reshape(-1, 64), axis=0)
        second_all = np.sort(np.concatenate([second.x_train, second.x_val]).reshape(-1, 64), axis=0)
        np.testing.assert_array_equal(first_all, second_all)

    def test_no_validation(self):
        splits = load_dataset("digits", validation_fraction=0.0)
        assert len(splits.x_val) == 0 and len(splits.x_train) == 1437


class TestNpz:
    def test_load(self, tmp_path):
        arrays = _npz(tmp_path / "data.npz")
        splits = load_dataset(tmp_path / "data.npz", validation_fraction=0.2, seed=0)
        assert splits.input_shape == (4, 4, 1)
        assert (len(splits.x_train), len(splits.x_val), len(splits.x_test)) == (16, 4, 6)
        np.testing.assert_allclose(splits.x_test[..., 0], arrays["x_test"] / 255.0, rtol=1e-6)
        np.testing.assert_array_equal(splits.y_test, arrays["y_test"])
        assert splits.class_names == ("0", "1")

    def test_local_copy_under_data_dir_replaces_the_download(self, tmp_path):
        _npz(tmp_path / "cifar10.npz")
        splits = load_dataset("cifar10", data_dir=tmp_path, validation_fraction=0.0)
        assert splits.input_shape == (4, 4, 1) and len(splits.x_train) == 20

    def test_download_is_cached_under_data_dir(self, tmp_path, monkeypatch):
        import keras

        rng = np.random.default_rng(0)
        train = (rng.integers(0, 256, (10, 3, 3), dtype=np.uint8), np.arange(10) % 2)
        test = (rng.integers(0, 256, (4, 3, 3), dtype=np.uint8), np.arange(4) % 2)
        calls = []

        def load_data():
            calls.append(1)
            return train, test

        monkeypatch.setattr(keras.datasets.mnist, "load_data", load_data)
        first = load_dataset("mnist", data_dir=tmp_path, validation_fraction=0.0)
        assert (tmp_path / "mnist.npz").is_file() and calls == [1]
        second = load_dataset("mnist", data_dir=tmp_path, validation_fraction=0.0)
        assert calls == [1]  # read from the cache, no second download
        np.testing.assert_array_equal(second.x_train, first.x_train)
        np.testing.assert_allclose(first.x_test[..., 0], test[0] / 255.0, rtol=1e-6)

    def test_float_images_in_unit_interval_are_kept(self, tmp_path):
        images = np.random.default_rng(0).random((20, 3, 3, 2)).astype("float64")
        _npz(tmp_path / "data.npz", x_train=images, x_test=images[:6])
        splits = load_dataset(tmp_path / "data.npz", validation_fraction=0.0)
        np.testing.assert_allclose(splits.x_train, images.astype("float32"))

    @pytest.mark.parametrize(
        ("overrides", "match"),
        [
            ({"y_test": None}, r"is missing arrays \['y_test'\]"),
            ({"x_train": np.full((20, 4, 4), 2.0)}, r"must be finite and in \[0, 1\]"),
            ({"y_train": np.arange(19)}, r"must have shape \[20\]"),
            ({"y_train": -np.ones(20, dtype=int)}, "must be non-negative"),
            ({"x_test": np.zeros((6, 5, 5), dtype=np.uint8)}, "must have the same shape"),
            ({"x_train": np.zeros((20, 4), dtype=np.uint8)}, r"must have shape \[N, H, W\]"),
        ],
    )
    def test_malformed_arrays(self, tmp_path, overrides, match):
        _npz(tmp_path / "data.npz", **overrides)
        with pytest.raises(ValueError, match=match):
            load_dataset(tmp_path / "data.npz", validation_fraction=0.0)

    def test_corrupt_file_is_named(self, tmp_path):
        path = tmp_path / "broken.npz"
        path.write_bytes(b"this is not a zip archive")
        with pytest.raises(ValueError, match="Cannot read the .npz dataset .*broken.npz"):
            load_dataset(path)

    def test_object_arrays_are_refused(self, tmp_path):
        path = tmp_path / "objects.npz"
        np.savez(path, x_train=np.array([None] * 3, dtype=object))
        with pytest.raises(ValueError, match="objects.npz"):
            load_dataset(path)

    def test_missing_file(self, tmp_path):
        with pytest.raises(FileNotFoundError, match="missing.npz does not exist"):
            load_dataset(tmp_path / "missing.npz")


class TestImageFolder:
    def test_load_pixels_and_sorted_classes(self, tmp_path):
        written = _image_folder(tmp_path)
        splits = load_dataset(tmp_path, validation_fraction=0.0)
        assert splits.class_names == ("ant", "cat")
        assert splits.input_shape == (4, 5, 3)
        assert len(splits.x_train) == 12 and len(splits.x_test) == 4
        # Test images come in class order, then file order: ant/000, ant/001, cat/000, ...
        expected = [
            written[tmp_path / "test" / name / f"{index:03d}.png"]
            for name in ("ant", "cat")
            for index in range(2)
        ]
        np.testing.assert_allclose(splits.x_test, np.stack(expected) / 255.0, atol=1e-6)
        np.testing.assert_array_equal(splits.y_test, [0, 0, 1, 1])

    def test_grayscale(self, tmp_path):
        _image_folder(tmp_path, channels=1)
        assert load_dataset(tmp_path, validation_fraction=0.0).input_shape == (4, 5, 1)

    def test_corrupt_image_is_named(self, tmp_path):
        _image_folder(tmp_path)
        (tmp_path / "train" / "cat" / "004.png").write_bytes(b"\x89PNG broken")
        with pytest.raises(ValueError, match=r"Cannot read image .*cat/004\.png"):
            load_dataset(tmp_path)

    def test_image_of_another_size_is_named(self, tmp_path):
        _image_folder(tmp_path, sizes={("train", "ant", 3): (6, 5)})
        with pytest.raises(ValueError, match=r"ant/003\.png: its shape \(6, 5, 3\) differs"):
            load_dataset(tmp_path)

    def test_missing_split_folder(self, tmp_path):
        _write_png(tmp_path / "train" / "a" / "0.png", np.zeros((2, 2, 3), dtype=np.uint8))
        with pytest.raises(FileNotFoundError, match="has no test/ folder"):
            load_dataset(tmp_path)

    def test_test_class_unknown_to_train(self, tmp_path):
        _image_folder(tmp_path)
        _write_png(tmp_path / "test" / "bee" / "0.png", np.zeros((4, 5, 3), dtype=np.uint8))
        with pytest.raises(ValueError, match=r"has classes \['bee'\]"):
            load_dataset(tmp_path)

    def test_no_images(self, tmp_path):
        (tmp_path / "train" / "a").mkdir(parents=True)
        (tmp_path / "test" / "a").mkdir(parents=True)
        with pytest.raises(ValueError, match="No images"):
            load_dataset(tmp_path)

    @pytest.mark.shared_data
    def test_cifar10_subset(self, cifar10_subset_dir):
        splits = load_dataset(cifar10_subset_dir, validation_fraction=0.1, seed=0)
        assert splits.class_names == (
            "airplane",
            "automobile",
            "bird",
            "cat",
            "deer",
            "dog",
            "frog",
            "horse",
            "ship",
            "truck",
        )
        assert splits.input_shape == (32, 32, 3)
        assert (len(splits.x_train), len(splits.x_val), len(splits.x_test)) == (360, 40, 100)
        assert np.bincount(splits.y_test).tolist() == [10] * 10
        # Natural images: channel means well inside (0, 1).
        means = splits.x_train.mean(axis=(0, 1, 2))
        assert np.all((means > 0.3) & (means < 0.6)), means


@pytest.mark.parametrize(
    ("args", "kwargs", "exception", "match"),
    [
        (("imagenet21k",), {}, ValueError, "Unknown dataset 'imagenet21k'"),
        (("no/such/folder",), {}, FileNotFoundError, "does not exist"),
        (("digits",), {"validation_fraction": 1.0}, ValueError, r"must be in \[0, 1\)"),
        (("digits",), {"validation_fraction": 0.0001}, ValueError, "leaves 0 for validation"),
    ],
)
def test_load_errors(args, kwargs, exception, match):
    with pytest.raises(exception, match=match):
        load_dataset(*args, **kwargs)


class TestMakeDataset:
    def test_batches_and_labels(self):
        images = np.arange(10, dtype="float32").reshape(10, 1, 1, 1)
        labels = np.arange(10, dtype="int32")
        batches = list(make_dataset(images, labels, batch_size=4))
        assert [len(batch[1]) for batch in batches] == [4, 4, 2]
        np.testing.assert_array_equal(np.concatenate([batch[1] for batch in batches]), labels)
        dropped = list(make_dataset(images, labels, batch_size=4, drop_remainder=True))
        assert len(dropped) == 2

    def test_shuffle_is_a_seeded_permutation(self):
        labels = np.arange(50, dtype="int32")
        images = labels.astype("float32").reshape(-1, 1, 1, 1)
        dataset = make_dataset(images, labels, batch_size=50, shuffle=True, seed=3)
        first = next(iter(dataset))
        order = first[1].numpy()
        assert sorted(order.tolist()) == labels.tolist() and not np.array_equal(order, labels)
        np.testing.assert_array_equal(first[0].numpy().reshape(-1), order)
        repeat = next(iter(make_dataset(images, labels, batch_size=50, shuffle=True, seed=3)))
        np.testing.assert_array_equal(repeat[1], order)

    def test_epoch_stream_resumes_exactly(self):
        labels = np.arange(12, dtype="int32")
        images = labels.astype("float32").reshape(-1, 1, 1, 1)

        def epochs(**kwargs):
            stream = make_dataset(images, labels, batch_size=4, shuffle=True, seed=1, **kwargs)
            orders = np.concatenate([batch[1].numpy() for batch in stream])
            return orders.reshape(-1, 12)

        full = epochs(epochs=4)
        resumed = epochs(epochs=4, initial_epoch=2)
        assert full.shape == (4, 12) and resumed.shape == (2, 12)
        np.testing.assert_array_equal(full[2:], resumed)
        for order in full:
            assert sorted(order.tolist()) == labels.tolist()
        assert len({tuple(order) for order in full}) == 4  # a new order every epoch

    def test_epoch_stream_images_match_labels(self):
        labels = np.arange(12, dtype="int32")
        images = labels.astype("float32").reshape(-1, 1, 1, 1)
        for images_batch, labels_batch in make_dataset(
            images, labels, batch_size=5, shuffle=True, epochs=3, drop_remainder=True
        ):
            assert images_batch.shape == (5, 1, 1, 1)
            np.testing.assert_array_equal(images_batch.numpy().reshape(-1), labels_batch)

    @pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="reads /proc/self/statm")
    def test_memory_does_not_grow_with_epochs(self):
        """Resident memory added by the first batches of a 60-epoch stream of 100 MB of images."""

        def resident_bytes():
            pages = int(Path("/proc/self/statm").read_text().split()[1])
            return pages * os.sysconf("SC_PAGE_SIZE")

        images = np.ones((25_000, 32, 32, 1), np.float32)

        def first_batches(epochs):
            stream = iter(make_dataset(images, np.zeros(25_000), 256, shuffle=True, epochs=epochs))
            for _ in range(3):
                next(stream)

        first_batches(2)  # TensorFlow's one-off allocations (tf.data, thread pools)
        before = resident_bytes()
        first_batches(60)
        # A chain of per-epoch image shuffle buffers added about 0.8 of the images per
        # epoch (fresh processes: 1.11 GB peak at 2 epochs, 7.17 GB at 60; 6 GB here).
        assert resident_bytes() - before < 2 * images.nbytes

    def test_augment_is_applied_in_training_mode(self):
        calls = []

        def augment(images, training):
            calls.append(training)
            return images + 1.0

        images = np.zeros((4, 2, 2, 1), dtype="float32")
        batch = next(iter(make_dataset(images, batch_size=4, augment=augment)))
        np.testing.assert_array_equal(batch.numpy(), np.ones((4, 2, 2, 1)))
        assert calls == [True]

    @pytest.mark.parametrize(
        ("kwargs", "match"),
        [
            ({"batch_size": 0}, "`batch_size` must be a positive integer"),
            ({"y": np.zeros(3)}, "`x` has 4 samples but `y` has 3"),
            ({"batch_size": 8, "drop_remainder": True}, "leaves no batch"),
            ({"epochs": 2, "initial_epoch": 2}, "must be smaller than `epochs`"),
        ],
    )
    def test_errors(self, kwargs, match):
        with pytest.raises(ValueError, match=match):
            make_dataset(np.zeros((4, 2, 2, 1), dtype="float32"), **kwargs)
