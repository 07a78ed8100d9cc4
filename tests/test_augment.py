"""Tests of supcon_tf.augment: operations against PIL and NumPy oracles, layers, policies.

The AutoAugment operations are checked against PIL (`ImageOps`, `ImageEnhance`), the
library whose definitions the published policies were searched with; geometric
operations against exact NumPy rotations and shifts; crops against TensorFlow's own
`crop_and_resize` and `resize` kernels. Random rates are checked against their
probabilities with a binomial tolerance of 4.5 standard deviations.
"""

import math
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image, ImageEnhance, ImageOps

from supcon_tf import augment
from supcon_tf.augment import ops as augment_ops

ROOT = Path(__file__).resolve().parents[1]
TOLERANCE = 4.5  # binomial standard deviations


def assert_rate(count, total, probability):
    """Asserts that `count` successes in `total` draws agree with `probability`."""
    deviation = math.sqrt(total * probability * (1 - probability)) or 1.0
    assert abs(count - total * probability) <= TOLERANCE * deviation + 1e-9, (
        f"{count}/{total} = {count / total:.4f}, expected {probability}"
    )


def uint8_images(batch=3, height=12, width=10, channels=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (batch, height, width, channels), dtype=np.uint8)


def random_images(batch=4, size=16, seed=0):
    return np.random.default_rng(seed).random((batch, size, size, 3)).astype("float32")


def apply_pil(images, function):
    return np.stack([np.asarray(function(Image.fromarray(image))) for image in images])


def per_image(values, batch):
    return tf.constant(np.broadcast_to(np.asarray(values, np.float32), (batch,)))


class TestImageOperations:
    """Each AutoAugment/RandAugment operation against its PIL or NumPy definition."""

    @pytest.mark.parametrize("seed", [0, 1])
    def test_equalize_matches_pil(self, seed):
        images = uint8_images(seed=seed)
        images[0] //= 4  # a low-contrast image, where equalization changes a lot
        result = augment_ops._equalize(tf.constant(images / 255.0, tf.float32)).numpy()
        np.testing.assert_allclose(result * 255, apply_pil(images, ImageOps.equalize), atol=1e-3)

    def test_equalize_keeps_a_flat_channel(self):
        images = np.full((1, 4, 4, 3), 0.4, np.float32)
        np.testing.assert_array_equal(augment_ops._equalize(tf.constant(images)).numpy(), images)

    def test_autocontrast_matches_pil(self):
        images = (uint8_images() // 3 + 40).astype(np.uint8)
        result = augment_ops._autocontrast(tf.constant(images / 255.0, tf.float32)).numpy()
        np.testing.assert_allclose(
            result * 255, apply_pil(images, ImageOps.autocontrast), atol=1.01
        )

    @pytest.mark.parametrize("bits", [1, 4, 5, 7, 8])
    def test_posterize_matches_pil(self, bits):
        images = uint8_images()
        result = augment_ops._posterize(
            tf.constant(images / 255.0, tf.float32), per_image(bits, 3)
        ).numpy()
        expected = apply_pil(images, lambda image: ImageOps.posterize(image, bits))
        np.testing.assert_allclose(result * 255, expected, atol=1e-3)

    @pytest.mark.parametrize("threshold", [0, 100, 128, 256])
    def test_solarize_matches_pil(self, threshold):
        images = uint8_images()
        result = augment_ops._solarize(
            tf.constant(images / 255.0, tf.float32), per_image(threshold, 3)
        ).numpy()
        expected = apply_pil(images, lambda image: ImageOps.solarize(image, threshold))
        np.testing.assert_allclose(result * 255, expected, atol=1e-3)

    def test_invert_matches_pil(self):
        images = uint8_images()
        result = augment_ops._invert(tf.constant(images / 255.0, tf.float32)).numpy()
        np.testing.assert_allclose(result * 255, apply_pil(images, ImageOps.invert), atol=1e-3)

    @pytest.mark.parametrize(
        ("operation", "enhancer"),
        [
            (augment_ops._color, ImageEnhance.Color),
            (augment_ops._contrast, ImageEnhance.Contrast),
            (augment_ops._brightness, ImageEnhance.Brightness),
            (augment_ops._sharpness, ImageEnhance.Sharpness),
        ],
    )
    @pytest.mark.parametrize("factor", [0.1, 0.55, 1.0, 1.9])
    def test_enhancements_match_pil(self, operation, enhancer, factor):
        images = uint8_images()
        result = operation(tf.constant(images / 255.0, tf.float32), per_image(factor, 3))
        expected = apply_pil(images, lambda image: enhancer(image).enhance(factor))
        # PIL rounds its intermediate grey image and mean to 8 bits.
        np.testing.assert_allclose(result.numpy() * 255, expected, atol=2.01)

    def test_rotate_quarter_turn_is_exact(self):
        images = random_images(batch=2, size=9)
        rotated = augment_ops._rotate(tf.constant(images), per_image(90.0, 2), 0.5).numpy()
        # Counter-clockwise as PIL's Image.rotate: np.rot90 turns rows into columns so.
        np.testing.assert_allclose(rotated, np.rot90(images, k=1, axes=(1, 2)), atol=1e-5)

    @pytest.mark.parametrize("pixels", [3, -2])
    def test_translate_shifts_and_fills(self, pixels):
        images = random_images(batch=2, size=8)
        fraction = per_image(pixels / 8, 2)
        moved_x = augment_ops._translate_x(tf.constant(images), fraction, 0.25).numpy()
        moved_y = augment_ops._translate_y(tf.constant(images), fraction, 0.25).numpy()
        expected_x = np.full_like(images, 0.25)
        expected_y = np.full_like(images, 0.25)
        if pixels > 0:
            expected_x[:, :, pixels:] = images[:, :, :-pixels]
            expected_y[:, pixels:] = images[:, :-pixels]
        else:
            expected_x[:, :, :pixels] = images[:, :, -pixels:]
            expected_y[:, :pixels] = images[:, -pixels:]
        np.testing.assert_allclose(moved_x, expected_x, atol=1e-5)
        np.testing.assert_allclose(moved_y, expected_y, atol=1e-5)

    @pytest.mark.parametrize("shear", [0.3, -0.2])
    def test_shear_matches_pil_affine(self, shear):
        images = uint8_images(batch=1, height=16, width=16)
        result = augment_ops._shear_x(
            tf.constant(images / 255.0, tf.float32), per_image(shear, 1), 0.0
        ).numpy()
        # PIL maps output (x, y) to input (x + shear * y + c); centre the shear.
        expected = apply_pil(
            images,
            lambda image: image.transform(
                image.size, Image.AFFINE, (1, shear, -shear * 8, 0, 1, 0), Image.BILINEAR
            ),
        )
        # Compare where the source stays inside the image (PIL blends borders otherwise).
        rows = np.arange(16)[:, None] - 7.5
        source = np.arange(16)[None, :] + shear * rows
        inside = (source >= 0) & (source <= 15)
        np.testing.assert_allclose(
            (result[0] * 255)[inside], expected[0][inside].astype(float), atol=1.01
        )

    def test_bilinear_sample_clamps_or_fills(self):
        images = tf.constant(np.arange(4, dtype=np.float32).reshape(1, 2, 2, 1))
        rows = tf.constant([[[-1.0, 0.5]]])
        columns = tf.constant([[[0.0, 0.5]]])
        clamped = augment_ops._bilinear_sample(images, rows, columns).numpy().ravel()
        filled = augment_ops._bilinear_sample(images, rows, columns, 9.0).numpy().ravel()
        np.testing.assert_allclose(clamped, [0.0, 1.5])
        np.testing.assert_allclose(filled, [9.0, 1.5])

    def test_apply_operations_selects_per_image_and_stage(self):
        images = uint8_images(batch=4, seed=3)
        names = ("Identity", "Invert", "Equalize")
        transformation = {
            "operations": tf.constant([[1, 0], [2, 2], [1, 2], [1, 1]]),
            "levels": tf.zeros([4, 2]),
            "signs": tf.ones([4, 2]),
            "apply": tf.constant([[True, True], [True, False], [True, True], [False, False]]),
        }
        result = augment_ops._apply_operations(
            tf.constant(images / 255.0, tf.float32), names, transformation, 0.5
        ).numpy()
        equalize = apply_pil(images, ImageOps.equalize)
        expected = [
            255 - images[0],
            equalize[1],
            np.asarray(ImageOps.equalize(Image.fromarray(255 - images[2]))),
            images[3],
        ]
        np.testing.assert_allclose(result * 255, np.stack(expected), atol=1e-3)


class TestRandomResizedCrop:
    def test_full_box_is_identity(self):
        images = random_images()
        layer = augment.RandomResizedCrop(area_range=(1.0, 1.0), aspect_ratio_range=(1, 1))
        np.testing.assert_allclose(layer(images, training=True), images, atol=1e-6)

    def test_crop_matches_tensorflow_crop_and_resize(self):
        images = random_images(batch=2, size=20)
        transformation = {
            "top": tf.constant([2.0, 5.5]),
            "left": tf.constant([3.0, 1.25]),
            "height": tf.constant([10.0, 12.0]),
            "width": tf.constant([14.0, 8.5]),
        }
        layer = augment.RandomResizedCrop(8, 6)
        result = layer.transform_images(tf.constant(images), transformation, 8, 6).numpy()

        # crop_and_resize samples rows y1 * (H - 1) + i * (y2 - y1) * (H - 1) / (h - 1):
        # choose y1, y2 so that they equal our pixel-centre rows.
        def corners(start, extent, size, image_size):
            first = start + 0.5 * extent / size - 0.5
            last = start + (size - 0.5) * extent / size - 0.5
            return first / (image_size - 1), last / (image_size - 1)

        boxes = []
        for i in range(2):
            y1, y2 = corners(*(transformation[k][i].numpy() for k in ("top", "height")), 8, 20)
            x1, x2 = corners(*(transformation[k][i].numpy() for k in ("left", "width")), 6, 20)
            boxes.append([y1, x1, y2, x2])
        expected = tf.image.crop_and_resize(images, boxes, [0, 1], (8, 6)).numpy()
        np.testing.assert_allclose(result, expected, atol=1e-5)

    def test_inference_resizes_like_tensorflow(self):
        images = random_images(size=32)
        layer = augment.RandomResizedCrop(16, 12, seed=0)
        expected = tf.image.resize(images, (16, 12), method="bilinear").numpy()
        np.testing.assert_allclose(layer(images, training=False), expected, atol=1e-5)
        same_size = augment.RandomResizedCrop(seed=0)
        np.testing.assert_array_equal(same_size(images, training=False), images)

    @pytest.mark.parametrize("area_range", [(0.08, 1.0), (0.2, 1.0), (0.5, 0.6)])
    def test_boxes_follow_area_and_aspect_ranges(self, area_range):
        layer = augment.RandomResizedCrop(area_range=area_range, seed=3)
        boxes = {k: v.numpy() for k, v in layer.get_random_transformation(4000, 24, 32).items()}
        area = boxes["height"] * boxes["width"] / (24 * 32)
        ratio = boxes["width"] / boxes["height"]
        fallback = np.isclose(area, 1.0)
        assert fallback.mean() < 0.01
        assert np.all((area[~fallback] >= area_range[0] - 1e-5) & (area <= area_range[1] + 1e-5))
        assert np.all((ratio[~fallback] >= 0.75 - 1e-5) & (ratio[~fallback] <= 4 / 3 + 1e-5))
        assert np.all(boxes["top"] >= 0) and np.all(boxes["left"] >= 0)
        assert np.all(boxes["top"] + boxes["height"] <= 24 + 1e-4)
        assert np.all(boxes["left"] + boxes["width"] <= 32 + 1e-4)
        # On a square image the accepted log aspect ratios stay symmetric: half are wide.
        square = layer.get_random_transformation(4000, 32, 32)
        wide = int(np.sum(square["width"].numpy() > square["height"].numpy()))
        assert_rate(wide, 4000, 0.5)

    def test_boxes_differ_between_images_of_a_batch(self):
        images = np.repeat(random_images(batch=1), 6, axis=0)
        views = augment.RandomResizedCrop(seed=0)(images).numpy()
        assert len({view.tobytes() for view in views}) == 6

    def test_single_image_and_output_shape(self):
        layer = augment.RandomResizedCrop(10, 12, seed=0)
        assert tuple(layer(random_images()[0]).shape) == (10, 12, 3)
        assert layer.compute_output_shape((None, 32, 32, 3)) == (None, 10, 12, 3)

    @pytest.mark.parametrize(
        ("kwargs", "match"),
        [
            ({"height": 0}, "`height` must be a positive integer"),
            ({"width": 2.5}, "`width` must be a positive integer"),
            ({"area_range": (0.0, 1.0)}, "`area_range` must be a pair"),
            ({"area_range": (0.5, 0.2)}, "`area_range` must be a pair"),
            ({"area_range": 0.5}, "`area_range` must be a pair"),
            ({"aspect_ratio_range": (2.0, 1.0)}, "`aspect_ratio_range` must be a pair"),
        ],
    )
    def test_bad_arguments(self, kwargs, match):
        with pytest.raises(ValueError, match=match):
            augment.RandomResizedCrop(**kwargs)

    def test_unknown_input_size_needs_an_output_size(self):
        with pytest.raises(ValueError, match="needs a static input height"):
            augment.RandomResizedCrop().compute_output_shape((None, None, None, 3))

    def test_bad_images(self):
        layer = augment.RandomResizedCrop()
        with pytest.raises(ValueError, match="floating point"):
            layer(np.zeros((2, 8, 8, 3), np.uint8))
        with pytest.raises(ValueError, match=r"shape \[H, W, C\] or \[B, H, W, C\]"):
            layer(np.zeros((8, 8), np.float32))


class GrayscaleLayer(keras.layers.Layer):
    """Deterministic test layer: mean over channels (so an applied image is grey)."""

    def call(self, images):
        return tf.broadcast_to(tf.reduce_mean(images, -1, keepdims=True), tf.shape(images))


class TestRandomApply:
    @pytest.mark.parametrize("rate", [0.0, 0.3, 0.8, 1.0])
    def test_rate_per_image(self, rate):
        images = random_images(batch=3000, size=2, seed=1)
        outputs = augment.RandomApply(GrayscaleLayer(), rate, seed=0)(images).numpy()
        grey = np.all(np.isclose(outputs, outputs[..., :1]), axis=(1, 2, 3))
        unchanged = np.all(outputs == images, axis=(1, 2, 3))
        assert np.all(grey ^ unchanged)
        assert_rate(int(grey.sum()), len(images), rate)

    def test_not_training_is_identity(self):
        images = random_images()
        layer = augment.RandomApply(GrayscaleLayer(), 1.0)
        np.testing.assert_array_equal(layer(images, training=False), images)

    def test_single_image(self):
        image = random_images()[0]
        output = augment.RandomApply(GrayscaleLayer(), 1.0)(image).numpy()
        np.testing.assert_allclose(
            output, np.broadcast_to(image.mean(-1, keepdims=True), (16, 16, 3))
        )

    def test_config_round_trip(self):
        layer = augment.RandomApply(keras.layers.RandomGrayscale(factor=1.0), 0.4, seed=5)
        restored = keras.layers.deserialize(keras.layers.serialize(layer))
        assert isinstance(restored.layer, keras.layers.RandomGrayscale)
        assert restored.get_config() == layer.get_config()
        images = random_images(batch=16)
        fresh = augment.RandomApply(keras.layers.RandomGrayscale(factor=1.0), 0.4, seed=5)
        np.testing.assert_array_equal(restored(images), fresh(images))

    @pytest.mark.parametrize(
        ("kwargs", "match"),
        [
            ({"layer": "gray", "rate": 0.5}, "`layer` must be a keras.layers.Layer"),
            ({"layer": GrayscaleLayer(), "rate": 1.5}, "`rate` must be a probability"),
            ({"layer": GrayscaleLayer(), "rate": True}, "`rate` must be a probability"),
        ],
    )
    def test_bad_arguments(self, kwargs, match):
        with pytest.raises(ValueError, match=match):
            augment.RandomApply(**kwargs)


class TestAutoAugment:
    @pytest.mark.parametrize("policy", sorted(augment.AUTOAUGMENT_POLICIES))
    def test_published_policy_tables(self, policy):
        table = augment.AUTOAUGMENT_POLICIES[policy]
        assert len(table) == 25
        for sub_policy in table:
            assert len(sub_policy) == 2
            for name, probability, magnitude in sub_policy:
                assert name in {**augment_ops._OPERATIONS, **augment_ops._GEOMETRIC_OPERATIONS}
                assert 0 <= probability <= 1
                assert magnitude is None or magnitude in range(10)
                assert (magnitude is None) == (name in ("AutoContrast", "Equalize", "Invert"))

    @pytest.mark.parametrize("policy", sorted(augment.AUTOAUGMENT_POLICIES))
    def test_draw_rates_follow_the_policy(self, policy):
        layer = augment.AutoAugment(policy, seed=2)
        draws = {k: v.numpy() for k, v in layer.get_random_transformation(6000).items()}
        table = augment.AUTOAUGMENT_POLICIES[policy]
        counts = np.bincount(draws["sub_policy"], minlength=25)
        for count in counts:
            assert_rate(int(count), 6000, 1 / 25)
        for stage in range(2):
            probabilities = np.array([row[stage][1] for row in table])
            expected = probabilities[draws["sub_policy"]]
            # Given the sub-policies drawn, the applied count is a sum of Bernoullis.
            applied = int(draws["apply"][:, stage].sum())
            deviation = math.sqrt(np.sum(expected * (1 - expected)))
            assert abs(applied - expected.sum()) <= TOLERANCE * deviation
            names = [layer._names()[i] for i in draws["operations"][:, stage]]
            assert names == [table[i][stage][0] for i in draws["sub_policy"]]
        assert set(np.unique(draws["signs"])) == {-1.0, 1.0}

    def test_magnitude_levels(self):
        layer = augment.AutoAugment("imagenet", seed=0)
        draws = layer.get_random_transformation(200)
        table = augment.AUTOAUGMENT_POLICIES["imagenet"]
        for index, levels in zip(draws["sub_policy"].numpy(), draws["levels"].numpy(), strict=True):
            expected = [(magnitude or 0) / 9 for _, _, magnitude in table[index]]
            np.testing.assert_allclose(levels, expected, rtol=1e-6)

    def test_not_training_is_identity(self):
        images = random_images()
        np.testing.assert_array_equal(augment.AutoAugment()(images, training=False), images)

    def test_config_round_trip(self):
        layer = augment.AutoAugment("cifar10", fill_value=0.0, seed=4)
        restored = keras.layers.deserialize(keras.layers.serialize(layer))
        assert restored.get_config() == layer.get_config()
        images = random_images(batch=6)
        fresh = augment.AutoAugment("cifar10", fill_value=0.0, seed=4)
        np.testing.assert_array_equal(restored(images), fresh(images))

    @pytest.mark.parametrize(
        ("kwargs", "match"),
        [
            ({"policy": "svhn"}, "Unknown AutoAugment `policy`='svhn'"),
            ({"fill_value": 2.0}, "`fill_value` must be a number in"),
            ({"fill_value": "grey"}, "`fill_value` must be a number in"),
        ],
    )
    def test_bad_arguments(self, kwargs, match):
        with pytest.raises(ValueError, match=match):
            augment.AutoAugment(**kwargs)


class TestRandAugment:
    def test_operations_are_drawn_per_image_uniformly(self):
        layer = augment.RandAugment(num_layers=3, magnitude=7, seed=1)
        draws = {k: v.numpy() for k, v in layer.get_random_transformation(4000).items()}
        assert draws["operations"].shape == (4000, 3)
        counts = np.bincount(draws["operations"].ravel(), minlength=14)
        for count in counts:
            assert_rate(int(count), 12000, 1 / 14)
        np.testing.assert_allclose(draws["levels"], 0.7)
        assert draws["apply"].all()

    def test_views_of_one_image_differ_within_a_batch(self):
        images = np.repeat(random_images(batch=1), 8, axis=0)
        views = augment.RandAugment(magnitude=9, seed=0)(images).numpy()
        assert len({view.tobytes() for view in views}) >= 6

    def test_config_round_trip(self):
        layer = augment.RandAugment(num_layers=1, magnitude=5, seed=3)
        restored = keras.layers.deserialize(keras.layers.serialize(layer))
        assert restored.get_config() == layer.get_config()
        images = random_images(batch=6)
        fresh = augment.RandAugment(num_layers=1, magnitude=5, seed=3)
        np.testing.assert_array_equal(restored(images), fresh(images))

    @pytest.mark.parametrize(
        ("kwargs", "match"),
        [
            ({"num_layers": 0}, "`num_layers` must be a positive integer"),
            ({"magnitude": 11}, r"`magnitude` must be a number in \[0, 10\]"),
            ({"magnitude": None}, r"`magnitude` must be a number in \[0, 10\]"),
        ],
    )
    def test_bad_arguments(self, kwargs, match):
        with pytest.raises(ValueError, match=match):
            augment.RandAugment(**kwargs)


POLICIES = [name for name in augment.AUGMENTATIONS if name != "none"]


class TestBuildAugmenter:
    @pytest.mark.parametrize("name", augment.AUGMENTATIONS)
    def test_shapes_dtype_and_range_for_batch_and_single_image(self, name):
        images = random_images(batch=4, size=16)
        augmenter = augment.build_augmenter(name, seed=0)
        for inputs in (images, images[0]):
            outputs = augmenter(inputs, training=True)
            assert outputs.shape == inputs.shape
            assert outputs.dtype == "float32"
            assert float(np.min(outputs)) >= 0.0 and float(np.max(outputs)) <= 1.0

    @pytest.mark.parametrize(
        "name", ["simaugment", "randaugment", "autoaugment", "stacked_randaugment"]
    )
    def test_without_crop_drops_only_the_crop(self, name):
        with_crop = augment.build_augmenter(name, seed=3, image_size=8)
        without = augment.build_augmenter(name, seed=3, image_size=8, crop=False)
        kinds = [type(layer).__name__ for layer in with_crop.layers]
        assert kinds[0] == "RandomResizedCrop"
        assert [type(layer).__name__ for layer in without.layers] == kinds[1:]
        # The other layers keep their seeds; a 16-px input stays 16 px (no crop to 8).
        assert [layer.get_config().get("seed") for layer in without.layers] == [
            layer.get_config().get("seed") for layer in with_crop.layers[1:]
        ]
        assert without(random_images(batch=2, size=16), training=True).shape == (2, 16, 16, 3)

    @pytest.mark.parametrize("name", POLICIES)
    def test_deterministic_under_a_seed(self, name):
        images = random_images(batch=4, size=16)
        first = augment.build_augmenter(name, seed=7)(images, training=True)
        second = augment.build_augmenter(name, seed=7)(images, training=True)
        other = augment.build_augmenter(name, seed=8)(images, training=True)
        np.testing.assert_array_equal(first, second)
        assert not np.array_equal(first, other)

    @pytest.mark.parametrize("name", augment.AUGMENTATIONS)
    def test_not_training_is_identity(self, name):
        images = random_images(batch=2, size=16)
        outputs = augment.build_augmenter(name, seed=0)(images, training=False)
        np.testing.assert_allclose(outputs, images, atol=1e-6)

    @pytest.mark.parametrize("name", augment.AUGMENTATIONS)
    def test_single_channel_images(self, name):
        images = random_images(batch=3, size=8)[..., :1]
        outputs = augment.build_augmenter(name, seed=0, blur=True)(images, training=True)
        assert outputs.shape == images.shape
        assert float(np.min(outputs)) >= 0.0 and float(np.max(outputs)) <= 1.0

    def test_image_size_resizes_the_crops(self):
        augmenter = augment.build_augmenter("simaugment", seed=0, image_size=(12, 10))
        assert tuple(augmenter(random_images(size=16), training=True).shape) == (4, 12, 10, 3)

    def test_simaugment_grayscale_rate(self):
        images = random_images(batch=2000, size=4, seed=2)
        augmenter = augment.build_augmenter("simaugment", seed=1, strength=0.5)
        outputs = augmenter(images, training=True).numpy()
        grey = np.all(np.abs(outputs - outputs[..., :1]) < 1e-6, axis=(1, 2, 3))
        assert_rate(int(grey.sum()), len(images), 0.2)

    def test_color_jitter_follows_simclr_strength(self):
        jitter = augment.color_jitter(0.5)
        assert jitter.brightness_factor == pytest.approx(0.4)
        assert jitter.contrast_factor == pytest.approx(0.4)
        low, high = jitter.saturation_factor
        # Keras' saturation multiplier is f / (1 - f): the SimCLR range [0.6, 1.4].
        assert low / (1 - low) == pytest.approx(0.6) and high / (1 - high) == pytest.approx(1.4)
        assert jitter.hue_factor == pytest.approx(0.2)

    @pytest.mark.parametrize(
        "name",
        [
            "simaugment",
            "stacked_randaugment",
            pytest.param("autoaugment", marks=pytest.mark.slow),
            pytest.param("randaugment", marks=pytest.mark.slow),
        ],
    )
    def test_batched_tf_data_map_in_graph_mode(self, name):
        augmenter = augment.build_augmenter(name, seed=0, image_size=12)
        dataset = tf.data.Dataset.from_tensor_slices(random_images(batch=6, size=16))
        dataset = dataset.batch(3).map(lambda batch: augmenter(batch, training=True))
        outputs = np.concatenate(list(dataset.as_numpy_iterator()))
        assert outputs.shape == (6, 12, 12, 3)
        assert outputs.min() >= 0.0 and outputs.max() <= 1.0

    def test_inside_a_model(self):
        augmenter = augment.build_augmenter("autoaugment", seed=0, autoaugment_policy="cifar10")
        inputs = keras.Input((16, 16, 3))
        model = keras.Model(inputs, augmenter(inputs))
        images = random_images(batch=4, size=16)
        views = model(images, training=True).numpy()
        assert views.shape == images.shape and not np.allclose(views, images)
        np.testing.assert_allclose(model.predict(images, verbose=0), images, atol=1e-6)
        # Training step in graph mode (as in model.fit).
        compiled = tf.function(lambda batch: model(batch, training=True))
        graph_views = compiled(images).numpy()
        assert graph_views.shape == images.shape and not np.allclose(graph_views, images)

    @pytest.mark.parametrize(
        "layer",
        [
            lambda: augment.RandomResizedCrop(12, 12, seed=0),
            lambda: augment.RandomApply(keras.layers.RandomGrayscale(factor=1.0), 0.5, seed=0),
        ],
        ids=["random_resized_crop", "random_apply"],
    )
    def test_xla(self, layer):
        layer = layer()
        images = random_images(batch=4, size=16)
        compiled = tf.function(lambda batch: layer(batch, training=True), jit_compile=True)
        outputs = compiled(images).numpy()
        assert outputs.shape[0] == 4 and outputs.min() >= 0.0 and outputs.max() <= 1.0

    @pytest.mark.slow
    @pytest.mark.parametrize(
        "name", ["simaugment", "randaugment", "autoaugment", "stacked_randaugment"]
    )
    def test_policies_compile_with_xla(self, name):
        augmenter = augment.build_augmenter(name, seed=0, blur=True)
        compiled = tf.function(lambda batch: augmenter(batch, training=True), jit_compile=True)
        outputs = compiled(random_images(batch=4, size=16)).numpy()
        assert outputs.shape == (4, 16, 16, 3)

    @pytest.mark.parametrize(
        ("kwargs", "match"),
        [
            ({"name": "mixup"}, "Unknown augmentation 'mixup'"),
            ({"name": "simaugment", "image_size": 0}, "`image_size` must be None"),
            ({"name": "simaugment", "image_size": (3, 3, 3)}, "`image_size` must be None"),
            ({"name": "simaugment", "strength": 0}, "`strength` must be a positive number"),
            ({"name": "randaugment", "magnitude": 12}, "`magnitude` must be a number"),
            ({"name": "simaugment", "min_crop_area": 0}, "`area_range` must be a pair"),
            ({"name": "autoaugment", "autoaugment_policy": "x"}, "Unknown AutoAugment"),
        ],
    )
    def test_bad_arguments(self, kwargs, match):
        with pytest.raises(ValueError, match=match):
            augment.build_augmenter(**kwargs)

    def test_pipeline_round_trip(self):
        augmenter = augment.build_augmenter("stacked_randaugment", seed=3, image_size=12)
        restored = keras.layers.deserialize(keras.layers.serialize(augmenter))
        images = random_images(batch=3, size=16)
        fresh = augment.build_augmenter("stacked_randaugment", seed=3, image_size=12)
        np.testing.assert_array_equal(restored(images, training=True), fresh(images, training=True))


class TestColorDistortion:
    def test_grayscale_and_jitter_rates(self):
        images = random_images(batch=3000, size=2, seed=4)
        only_gray = augment.ColorDistortion(jitter_rate=0.0, grayscale_rate=0.3, seed=0)
        outputs = only_gray(images).numpy()
        grey = np.all(np.abs(outputs - outputs[..., :1]) < 1e-6, axis=(1, 2, 3))
        assert np.all(outputs[~grey] == images[~grey])
        assert_rate(int(grey.sum()), len(images), 0.3)
        only_jitter = augment.ColorDistortion(jitter_rate=0.6, grayscale_rate=0.0, seed=0)
        changed = np.any(only_jitter(images).numpy() != images, axis=(1, 2, 3))
        assert_rate(int(changed.sum()), len(images), 0.6)

    def test_not_training_is_identity(self):
        images = random_images()
        layer = augment.ColorDistortion(seed=0)
        np.testing.assert_array_equal(layer(images, training=False), images)

    def test_config_round_trip(self):
        layer = augment.ColorDistortion(0.5, 0.7, 0.1, seed=2)
        restored = keras.layers.deserialize(keras.layers.serialize(layer))
        assert restored.get_config() == layer.get_config()
        images = random_images(batch=8)
        fresh = augment.ColorDistortion(0.5, 0.7, 0.1, seed=2)
        np.testing.assert_array_equal(restored(images), fresh(images))

    @pytest.mark.parametrize(
        ("kwargs", "match"),
        [
            ({"strength": -1}, "`strength` must be a positive number"),
            ({"jitter_rate": 2}, "`jitter_rate` must be a probability"),
            ({"grayscale_rate": -0.1}, "`grayscale_rate` must be a probability"),
        ],
    )
    def test_bad_arguments(self, kwargs, match):
        with pytest.raises(ValueError, match=match):
            augment.ColorDistortion(**kwargs)

    def test_two_channels_are_rejected(self):
        with pytest.raises(ValueError, match="needs 1 or 3 channels"):
            augment.ColorDistortion()(np.zeros((1, 4, 4, 2), np.float32))


class TestAugmentationGrid:
    def test_grid_layout(self):
        images = random_images(batch=2, size=8)
        grid = augment.augmentation_grid(images, augment.build_augmenter("none"), 2, min_side=16)
        assert grid.shape == (2 + 2 * 18, 2 + 3 * 18, 3) and grid.dtype == np.uint8
        first = grid[2:18, 2:18]
        expected = np.round(np.repeat(np.repeat(images[0], 2, 0), 2, 1) * 255)
        np.testing.assert_array_equal(first, expected.astype(np.uint8))
        np.testing.assert_array_equal(grid[2:18, 20:36], first)  # "none" view = original

    def test_grayscale_images(self):
        images = random_images(batch=1, size=8)[..., :1]
        grid = augment.augmentation_grid(images, augment.build_augmenter("simple"), 1, min_side=8)
        assert grid.shape == (12, 22, 3)

    def test_save_png(self, tmp_path):
        images = random_images(batch=3, size=8)
        augmenter = augment.build_augmenter("simaugment", seed=0)
        path = augment.save_augmentation_grid(images, augmenter, 2, tmp_path / "a" / "grid.png")
        decoded = tf.io.decode_png(path.read_bytes()).numpy()
        assert decoded.shape == (3 * 66 + 2, 3 * 66 + 2, 3)

    @pytest.mark.parametrize(
        ("images", "num_views", "path", "match"),
        [
            (np.zeros((8, 8, 3)), 1, "grid.png", r"shape \[N, H, W, 1 or 3\]"),
            (np.zeros((1, 8, 8, 3)), 0, "grid.png", "`num_views` must be a positive integer"),
            (np.zeros((1, 8, 8, 3)), 1, "grid.jpg", r"must end in \.png"),
        ],
    )
    def test_bad_arguments(self, tmp_path, images, num_views, path, match):
        with pytest.raises(ValueError, match=match):
            augment.save_augmentation_grid(
                images, augment.build_augmenter("none"), num_views, tmp_path / path
            )


class TestAugmentPreviewCli:
    def test_writes_a_grid_from_an_npz_file(self, tmp_path):
        arrays = {
            "x_train": uint8_images(batch=5, height=8, width=8),
            "y_train": np.arange(5) % 2,
            "x_test": uint8_images(batch=2, height=8, width=8),
            "y_test": np.arange(2),
        }
        np.savez(tmp_path / "images.npz", **arrays)
        output = tmp_path / "preview.png"
        command = [
            sys.executable,
            "-m",
            "supcon_tf.cli.augment_preview",
            "--augment=autoaugment",
            f"--dataset={tmp_path / 'images.npz'}",
            "--num_images=3",
            "--num_views=2",
            "--min_side=8",
            f"--output={output}",
        ]
        result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
        assert result.returncode == 0, result.stderr[-2000:]
        decoded = tf.io.decode_png(output.read_bytes()).numpy()
        assert decoded.shape == (3 * 10 + 2, 3 * 10 + 2, 3)

    def test_preview_images(self):
        from supcon_tf.cli import augment_preview

        digits = augment_preview.load_preview_images("digits", 4)
        assert digits.shape == (4, 8, 8, 1) and digits.dtype == np.float32
        assert digits.min() >= 0.0 and digits.max() <= 1.0
        again = augment_preview.load_preview_images("digits", 4)
        np.testing.assert_array_equal(digits, again)

    def test_flags_are_defined_on_demand_and_once(self):
        from absl import flags

        import supcon_tf.cli.train  # noqa: F401  (defines supcon-train's flags at import)
        from supcon_tf.cli import augment_preview

        flag_values = flags.FlagValues()
        augment_preview.define_flags(flag_values)
        augment_preview.define_flags(flag_values)
        flag_values(["augment_preview", "--augment=autoaugment", "--num_views=3"])
        assert flag_values.augment == "autoaugment" and flag_values.num_views == 3
