"""Tests of `supcon_tf.evaluation.corruptions`: invariants, closed forms, independent oracles, mCE."""

import colorsys
import math
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from supcon_tf import evaluation
from supcon_tf.errors import DataError, UsageError
from supcon_tf.evaluation import corruptions
from supcon_tf.evaluation.corruptions import (
    CORRUPTIONS,
    EXTRA_CORRUPTIONS,
    SEVERITIES,
    _common,
    blur,
    corrupt,
    default_corruptions,
    evaluate_corruptions,
    weather,
)
from supcon_tf.evaluation.plots import plot_corruption_results
from supcon_tf.evaluation.report import corruption_table

RANDOM_CORRUPTIONS = (
    "gaussian_noise",
    "shot_noise",
    "impulse_noise",
    "glass_blur",
    "motion_blur",
    "snow",
    "frost",
    "fog",
    "elastic_transform",
    "speckle_noise",
)
# With CIFAR-10-C's parameters the distance from the clean image does not grow at every
# step for these; tests/test_corruptions_cifar10c.py checks what their tables do instead.
NOT_MONOTONE = ("glass_blur", "motion_blur", "frost", "elastic_transform")


def smooth_images(channels=3, count=8, size=32, seed=0):
    """Natural-looking test images: bicubic upsampling of random 8x8 images, in [0.1, 0.9]."""
    low = np.random.default_rng(seed).random((count, 8, 8, channels)).astype("float32")
    images = tf.image.resize(low, (size, size), method="bicubic").numpy()
    return (np.clip(images, 0, 1) * 0.8 + 0.1).astype("float32")


def applicable(channels):
    names = default_corruptions(channels) + EXTRA_CORRUPTIONS
    if channels == 1:
        names = tuple(name for name in names if name not in corruptions.COLOR_CORRUPTIONS)
    return [(name, channels) for name in names]


def monotone(channels):
    return [case for case in applicable(channels) if case[0] not in NOT_MONOTONE]


class TestInvariants:
    @pytest.mark.parametrize("name, channels", applicable(3) + applicable(1))
    @pytest.mark.parametrize("severity", SEVERITIES)
    def test_shape_dtype_range(self, name, channels, severity):
        images = smooth_images(channels, count=3)
        corrupted = corrupt(images, name, severity, seed=1)
        assert corrupted.shape == images.shape
        assert corrupted.dtype == np.float32
        assert corrupted.min() >= 0.0 and corrupted.max() <= 1.0
        assert np.all(np.isfinite(corrupted))

    @pytest.mark.parametrize("name, channels", monotone(3) + monotone(1))
    def test_stronger_with_severity(self, name, channels):
        images = smooth_images(channels)
        distances = [
            float(np.abs(corrupt(images, name, severity, seed=2) - images).mean())
            for severity in SEVERITIES
        ]
        assert distances[0] > 1e-3, distances  # severity 1 already changes the images
        assert all(np.diff(distances) > 0), distances

    @pytest.mark.parametrize("name", CORRUPTIONS)
    def test_seeded(self, name):
        images = smooth_images(count=2)
        first = corrupt(images, name, 3, seed=5)
        np.testing.assert_array_equal(first, corrupt(images, name, 3, seed=5))
        other = corrupt(images, name, 3, seed=6)
        if name in RANDOM_CORRUPTIONS:
            assert not np.array_equal(first, other)
        else:
            np.testing.assert_array_equal(first, other)

    @pytest.mark.parametrize("shape", [(2, 8, 12, 3), (1, 1, 1, 3), (2, 2, 5, 1), (1, 45, 37, 3)])
    def test_accepts_float64_and_any_size(self, shape):
        images = np.random.default_rng(0).random(shape)
        for name in CORRUPTIONS:
            if shape[-1] == 1 and name in corruptions.COLOR_CORRUPTIONS:
                continue
            corrupted = corrupt(images, name, 5)
            assert corrupted.shape == shape and corrupted.dtype == np.float32
            assert np.all(np.isfinite(corrupted))
            assert corrupted.min() >= 0.0 and corrupted.max() <= 1.0

    def test_does_not_modify_its_input(self):
        images = smooth_images(count=2)
        copy = images.copy()
        for name in CORRUPTIONS:
            corrupt(images, name, 5)
        np.testing.assert_array_equal(images, copy)


class TestDefinitions:
    """Closed forms and independent re-derivations of the reference definitions."""

    def test_gaussian_noise_statistics(self):
        images = np.full((4, 64, 64, 3), 0.5, "float32")
        for severity, sigma in zip(SEVERITIES, (0.04, 0.06, 0.08, 0.09, 0.10), strict=True):
            noise = corruptions.gaussian_noise(images, severity, seed=0) - 0.5
            assert abs(noise.mean()) < 0.003
            assert noise.std() == pytest.approx(sigma, rel=0.02)

    def test_shot_noise_is_poisson(self):
        images = np.full((4, 64, 64, 3), 0.4, "float32")
        for severity, rate in zip(SEVERITIES, (500, 250, 100, 75, 50), strict=True):
            values = corruptions.shot_noise(images, severity, seed=0)
            assert values.mean() == pytest.approx(0.4, abs=0.003)
            # Var(Poisson(x c) / c) = x / c.
            assert values.var() == pytest.approx(0.4 / rate, rel=0.05)

    def test_impulse_noise_fraction(self):
        images = np.full((4, 64, 64, 3), 0.5, "float32")
        for severity, amount in zip(SEVERITIES, (0.01, 0.02, 0.03, 0.05, 0.07), strict=True):
            values = corruptions.impulse_noise(images, severity, seed=0)
            changed = values != 0.5
            assert changed.mean() == pytest.approx(amount, rel=0.1)
            assert (values[changed] == 1.0).mean() == pytest.approx(0.5, abs=0.05)

    def test_speckle_noise_scales_with_intensity(self):
        images = np.full((4, 64, 64, 1), 0.5, "float32")
        noise = corruptions.speckle_noise(images, 5, seed=0) - 0.5
        assert noise.std() == pytest.approx(0.5 * 0.2, rel=0.03)

    def test_contrast_closed_form(self):
        images = smooth_images(count=2)
        for severity, factor in zip(SEVERITIES, (0.75, 0.5, 0.4, 0.3, 0.15), strict=True):
            means = images.mean(axis=(1, 2), keepdims=True)
            expected = np.clip((images - means) * factor + means, 0, 1)
            np.testing.assert_allclose(corruptions.contrast(images, severity), expected, atol=1e-6)

    def test_brightness_and_saturate_match_colorsys(self):
        images = smooth_images(count=1, size=6)
        pixels = images.reshape(-1, 3).astype(np.float64)
        for severity in SEVERITIES:
            shift = (0.05, 0.1, 0.15, 0.2, 0.3)[severity - 1]
            scale, offset = ((1.5, 0.0), (2.0, 0.1), (2.5, 0.2), (5.0, 0.2), (20.0, 0.2))[
                severity - 1
            ]
            brighter, saturated = [], []
            for red, green, blue in pixels:
                hue, saturation, value = colorsys.rgb_to_hsv(red, green, blue)
                brighter.append(colorsys.hsv_to_rgb(hue, saturation, min(value + shift, 1.0)))
                saturation = min(max(saturation * scale + offset, 0.0), 1.0)
                saturated.append(colorsys.hsv_to_rgb(hue, saturation, value))
            np.testing.assert_allclose(
                corruptions.brightness(images, severity).reshape(-1, 3), brighter, atol=2e-5
            )
            np.testing.assert_allclose(
                corruptions.saturate(images, severity).reshape(-1, 3), saturated, atol=2e-5
            )

    def test_brightness_of_grey_images_adds_the_shift(self):
        images = np.full((1, 4, 4, 1), 0.5, "float32")
        np.testing.assert_allclose(corruptions.brightness(images, 3), 0.65, atol=1e-7)

    def test_gaussian_blur_matches_direct_convolution(self):
        image = np.random.default_rng(0).random((1, 7, 9, 1)).astype("float32")
        for severity, sigma in zip(SEVERITIES, (0.4, 0.6, 0.7, 0.8, 1.0), strict=True):
            radius = int(4 * sigma + 0.5)
            expected = np.zeros((7, 9))
            for row in range(7):
                for column in range(9):
                    total = norm = 0.0
                    for dy in range(-radius, radius + 1):
                        for dx in range(-radius, radius + 1):
                            weight = math.exp(-(dy * dy + dx * dx) / (2 * sigma * sigma))
                            # 'edge' padding: clamp the coordinates into the image.
                            y = min(max(row + dy, 0), 6)
                            x = min(max(column + dx, 0), 8)
                            total += weight * image[0, y, x, 0]
                            norm += weight
                    expected[row, column] = total / norm
            blurred = corruptions.gaussian_blur(image, severity)[0, :, :, 0]
            np.testing.assert_allclose(blurred, expected, atol=1e-6)

    def test_defocus_kernels(self):
        # Severity 5: radius 1.5 covers the 3x3 block; alias sigma 0.1 leaves it unchanged.
        kernel = blur.disk_kernel(1.5, 0.1)
        expected = np.zeros_like(kernel)
        center = kernel.shape[0] // 2
        expected[center - 1 : center + 2, center - 1 : center + 2] = 1 / 9
        np.testing.assert_allclose(kernel, expected, atol=1e-12)
        # Severity 1: radius 0.3 is a single pixel, blurred by a 3-tap Gaussian (sigma 0.4).
        kernel = blur.disk_kernel(0.3, 0.4)
        side = math.exp(-1 / (2 * 0.4**2))
        taps = np.array([side, 1.0, side]) / (1 + 2 * side)
        center = kernel.shape[0] // 2
        np.testing.assert_allclose(
            kernel[center - 1 : center + 2, center - 1 : center + 2], np.outer(taps, taps)
        )
        for radius, alias in blur.DEFOCUS_BLUR:
            assert blur.disk_kernel(radius, alias).sum() == pytest.approx(1.0)

    def test_blurs_keep_constant_images(self):
        images = np.full((1, 10, 10, 3), 0.3, "float32")
        for name in ("gaussian_blur", "defocus_blur", "pixelate"):
            np.testing.assert_allclose(corrupt(images, name, 5), 0.3, atol=1e-6)

    def test_pixelate_makes_blocks(self):
        # 32 * 0.75 = 24 pixels: after box down- and up-sampling a 1-pixel checkerboard
        # is flattened towards its mean.
        board = (np.indices((32, 32)).sum(axis=0) % 2).astype("float32")[None, :, :, None]
        pixelated = corruptions.pixelate(board, 4)
        assert np.abs(pixelated - 0.5).mean() < np.abs(board - 0.5).mean() / 2

    def test_jpeg_changes_little_on_smooth_images(self):
        images = smooth_images(count=2)
        error = np.abs(corruptions.jpeg_compression(images, 1) - images).mean()
        assert 0 < error < 0.05

    def test_plasma_fractals(self):
        maps = _common.plasma_fractals(3, 32, 2.0, np.random.default_rng(0))
        assert maps.shape == (3, 32, 32)
        np.testing.assert_allclose(maps.min(axis=(1, 2)), 0.0)
        np.testing.assert_allclose(maps.max(axis=(1, 2)), 1.0)
        # A smaller decay keeps more fine detail: neighbouring values differ more.
        rough = _common.plasma_fractals(3, 32, 1.5, np.random.default_rng(0))
        smooth = _common.plasma_fractals(3, 32, 3.0, np.random.default_rng(0))
        assert np.abs(np.diff(rough, axis=2)).mean() > np.abs(np.diff(smooth, axis=2)).mean()

    def test_fog_closed_form_for_a_black_image_with_one_white_pixel(self):
        images = np.zeros((1, 32, 32, 1), "float32")
        images[0, 0, 0, 0] = 1.0
        strength, decay = weather.FOG[2]
        fractal = _common.plasma_fractals(1, 32, decay, np.random.default_rng(4))[0]
        expected = (images[0, :, :, 0] + strength * fractal) / (1 + strength)
        np.testing.assert_allclose(
            corruptions.fog(images, 3, seed=4)[0, :, :, 0], np.clip(expected, 0, 1), atol=1e-6
        )


class TestErrors:
    @pytest.mark.parametrize(
        "images, match",
        [
            (np.zeros((1, 4, 4, 3), np.uint8), "divide uint8"),
            (np.zeros((4, 4, 3), np.float32), r"\[N, H, W, C\]"),
            (np.full((1, 4, 4, 3), 2.0), r"lie in \[0, 1\]"),
            (np.full((1, 4, 4, 3), np.nan), "NaN"),
            (np.zeros((0, 4, 4, 3)), "empty"),
        ],
    )
    def test_bad_images(self, images, match):
        with pytest.raises(ValueError, match=match):
            corrupt(images, "contrast", 1)

    @pytest.mark.parametrize("severity", [0, 6, 2.5, True, "1"])
    def test_bad_severity(self, severity):
        with pytest.raises(ValueError, match="severity"):
            corrupt(np.zeros((1, 4, 4, 3)), "contrast", severity)

    def test_unknown_name(self):
        with pytest.raises(UsageError, match="Unknown corruption 'spatter'"):
            corrupt(np.zeros((1, 4, 4, 3)), "spatter", 1)
        with pytest.raises(UsageError, match=r"Unknown corruption \['fog'\]"):
            corrupt(np.zeros((1, 4, 4, 3)), ["fog"], 1)

    def test_error_types(self):
        with pytest.raises(DataError, match="divide uint8"):
            corrupt(np.zeros((1, 4, 4, 3), np.uint8), "contrast", 1)
        with pytest.raises(UsageError, match="severity"):
            corrupt(np.zeros((1, 4, 4, 3)), "contrast", 6)

    def test_channel_requirements(self):
        with pytest.raises(ValueError, match="needs RGB"):
            corruptions.saturate(np.zeros((1, 4, 4, 1)), 1)
        with pytest.raises(ValueError, match="1 .grey. or 3 .RGB."):
            corruptions.brightness(np.zeros((1, 4, 4, 2)), 1)
        with pytest.raises(ValueError, match="1 or 3 channels"):
            corruptions.jpeg_compression(np.zeros((1, 4, 4, 4)), 1)
        with pytest.raises(DataError, match="`snow` needs 1 .grey. or 3 .RGB."):
            corruptions.snow(np.zeros((1, 4, 4, 2)), 1)
        for name in ("brightness", "jpeg_compression", "snow"):
            assert name not in default_corruptions(4)
        # The others take any channel count.
        images = np.random.default_rng(0).random((1, 6, 6, 4))
        for name in default_corruptions(4):
            assert corrupt(images, name, 3).shape == (1, 6, 6, 4)


def constant_model(logits):
    """A callable classifier that outputs the same logits for every image."""
    logits = np.asarray(logits, "float32")
    return lambda images: np.tile(logits, (len(images), 1))


class TestEvaluateCorruptions:
    # Labels 0,0,0,1: "zero" always predicts 0 (error 0.25), "one" always 1 (error 0.75).
    LABELS = [0, 0, 0, 1]

    def evaluate(self, **kwargs):
        images = smooth_images(count=4, size=8)
        models = {"zero": constant_model([2.0, 0.0]), "one": constant_model([0.0, 2.0])}
        return evaluate_corruptions(models, images, self.LABELS, **kwargs)

    def test_hand_computed_errors(self):
        result = self.evaluate(corruptions=["contrast", "fog"], severities=[1, 3], baseline="one")
        zero, one = result["models"]["zero"], result["models"]["one"]
        assert zero["accuracy"] == {"contrast": [0.75, 0.75], "fog": [0.75, 0.75]}
        assert one["per_severity"]["accuracy"] == [0.25, 0.25]
        # CE = (0.25 + 0.25) / (0.75 + 0.75) for both corruptions.
        assert zero["corruption_error"] == {"contrast": pytest.approx(1 / 3), "fog": 1 / 3}
        assert zero["mean_corruption_error"] == pytest.approx(1 / 3)
        assert one["mean_corruption_error"] == 1.0
        # No accuracy is lost under corruption: the relative CE is 0 / 0, reported as None.
        assert zero["relative_mean_corruption_error"] is None
        # ECE of a constant prediction: |accuracy - softmax confidence| in one bin.
        confidence = math.exp(2) / (1 + math.exp(2))
        assert zero["clean"]["expected_calibration_error"] == pytest.approx(confidence - 0.75)
        assert one["mean_expected_calibration_error"] == pytest.approx(confidence - 0.25)
        assert result["severities"] == [1, 3]
        assert result["num_samples"] == 4

    def test_accuracy_falls_with_severity_for_a_real_classifier(self):
        # A nearest-mean classifier of dark (0.3) vs bright (0.7) images: brightness +0.05
        # (severity 1) keeps every dark image below the 0.5 boundary, +0.3 (severity 5)
        # pushes all of them above it, so the accuracy goes from 1 to 1/2.
        rng = np.random.default_rng(0)
        labels = np.arange(64) % 2
        images = 0.3 + 0.4 * labels[:, None, None, None] + rng.normal(0, 0.05, (64, 8, 8, 1))
        images = np.clip(images, 0, 1).astype("float32")

        def classifier(batch):
            brightness = np.asarray(batch).mean(axis=(1, 2, 3))
            return np.stack([-((brightness - 0.3) ** 2), -((brightness - 0.7) ** 2)], axis=1)

        result = evaluate_corruptions(classifier, images, labels, corruptions=["brightness"])
        accuracy = result["models"]["model"]["accuracy"]["brightness"]
        assert result["models"]["model"]["clean"]["accuracy"] == 1.0
        assert accuracy[0] == 1.0
        assert accuracy[-1] == 0.5
        assert "corruption_error" not in result["models"]["model"]

    def test_default_corruptions_follow_channels(self):
        images = smooth_images(channels=1, count=2, size=8)
        result = evaluate_corruptions(constant_model([1.0, 0.0]), images, [0, 1], severities=[1])
        assert result["corruptions"] == list(default_corruptions(1))

    def test_table_and_plot(self, tmp_path):
        result = self.evaluate(corruptions=["contrast"], severities=[1, 2], baseline="one")
        lines = corruption_table(result).splitlines()
        assert lines[0].startswith("| model | clean acc. | acc. s1 | acc. s2 |")
        assert lines[2].startswith("| zero | 0.7500 | 0.7500 | 0.7500 | 0.7500 |")
        assert lines[2].endswith("| 0.333 | n/a |")
        path = plot_corruption_results(result, tmp_path / "plot.png")
        assert path == str(tmp_path / "plot.png")
        data = Path(path).read_bytes()
        assert data[:4] == b"\x89PNG" and len(data) > 1024

    @pytest.mark.parametrize(
        "kwargs, match",
        [
            ({"baseline": "alexnet"}, "not one of the models"),
            ({"corruptions": ["spatter"]}, "Unknown corruption 'spatter'"),
            ({"corruptions": []}, "is empty"),
            ({"severities": [0]}, "severity"),
            ({"severities": []}, "is empty"),
        ],
    )
    def test_errors(self, kwargs, match):
        with pytest.raises(ValueError, match=match):
            self.evaluate(**kwargs)

    def test_input_errors(self):
        images = smooth_images(count=4, size=8)
        with pytest.raises(ValueError, match="4 images but 3 labels"):
            evaluate_corruptions(constant_model([1.0]), images, [0, 0, 0])
        with pytest.raises(ValueError, match="`models` is empty"):
            evaluate_corruptions({}, images, [0, 0, 0, 0])


def test_softmax_used_for_ece_is_stable():
    # Large logits must not overflow in the probabilities used by the corruption study.
    probabilities = evaluation.softmax([[1000.0, 0.0]])
    np.testing.assert_allclose(probabilities, [[1.0, 0.0]])
