"""The CIFAR-10-C corruptions added to the toolkit, against transcriptions of their reference.

Each oracle is a float64 transcription of the reference definition (Hendrycks & Dietterich
2019, `make_cifar_c.py`) that uses SciPy (`ndimage.zoom`, `gaussian_filter`,
`map_coordinates`) or plain Python loops where the reference uses SciPy, scikit-image,
OpenCV or ImageMagick, so that it shares no code with the implementation; the random
draws are taken from the implementation's seeded draw functions or repeated in the same
order.
"""

import importlib
import math
import sys

import numpy as np
import pytest
from scipy import ndimage

from supcon_tf.evaluation import corruptions
from supcon_tf.evaluation.corruptions import (
    CIFAR10C_CORRUPTIONS,
    CORRUPTION_FUNCTIONS,
    CORRUPTIONS,
    EXTRA_CORRUPTIONS,
    SEVERITIES,
    _common,
    blur,
    corrupt,
    default_corruptions,
    digital,
    evaluate_corruptions,
    weather,
)

PAPER_ORDER = [
    *("gaussian_noise", "shot_noise", "impulse_noise"),  # noise
    *("defocus_blur", "glass_blur", "motion_blur", "zoom_blur"),  # blur
    *("snow", "frost", "fog", "brightness"),  # weather
    *("contrast", "elastic_transform", "pixelate", "jpeg_compression"),  # digital
]


def random_images(shape, seed=0):
    return np.random.default_rng(seed).random(shape).astype("float32")


def mean_distance(name, images, severity, seed=0):
    return float(np.abs(corrupt(images, name, severity, seed=seed) - images).mean())


# ----------------------------------------------------------------------------- oracles


def clipped_zoom(image, factor):
    """The reference's `clipped_zoom` of an [H, W, C] image, in float64, each axis alike.

    The reference crops a square (it only sees 32x32 images); on square images this is it.
    """
    height, width = image.shape[:2]
    crop_height, crop_width = int(np.ceil(height / factor)), int(np.ceil(width / factor))
    top, left = (height - crop_height) // 2, (width - crop_width) // 2
    crop = image[top : top + crop_height, left : left + crop_width]
    zoomed = ndimage.zoom(crop, (factor, factor, 1), order=1)
    trim_top, trim_left = (zoomed.shape[0] - height) // 2, (zoomed.shape[1] - width) // 2
    return zoomed[trim_top : trim_top + height, trim_left : trim_left + width]


def imagemagick_motion_blur(image, radius, sigma, angle):
    """`MotionBlurImage` of an [H, W, C] image, pixel by pixel, edge virtual pixels."""
    width = 2 * math.ceil(radius) + 1
    kernel = [
        math.exp(-(i * i) / (2 * sigma * sigma)) / (math.sqrt(2 * math.pi) * sigma)
        for i in range(width)
    ]
    total = sum(kernel)
    kernel = [value / total for value in kernel]
    point_x = width * math.sin(math.radians(angle))
    point_y = width * math.cos(math.radians(angle))
    length = math.hypot(point_x, point_y)
    offsets = [
        (math.ceil(i * point_y / length - 0.5), math.ceil(i * point_x / length - 0.5))
        for i in range(width)
    ]  # (x, y)
    height, columns = image.shape[:2]
    output = np.zeros(image.shape)
    for y in range(height):
        for x in range(columns):
            for weight, (offset_x, offset_y) in zip(kernel, offsets, strict=True):
                source_y = min(max(y + offset_y, 0), height - 1)
                source_x = min(max(x + offset_x, 0), columns - 1)
                output[y, x] += weight * image[source_y, source_x]
    return output


def skimage_gaussian(image, sigma, truncate=4.0, mode="nearest"):
    """scikit-image's `gaussian(..., multichannel=True)` of an [H, W, C] image."""
    return ndimage.gaussian_filter(
        np.asarray(image, np.float64), (sigma, sigma, 0), mode=mode, truncate=truncate
    )


# ----------------------------------------------------------------------------- the registry


class TestRegistry:
    def test_the_fifteen_in_the_papers_order_and_the_extras_apart(self):
        assert list(CIFAR10C_CORRUPTIONS) == PAPER_ORDER
        assert set(EXTRA_CORRUPTIONS) == {"speckle_noise", "gaussian_blur", "saturate"}
        assert not set(EXTRA_CORRUPTIONS) & set(CIFAR10C_CORRUPTIONS)
        assert CORRUPTIONS == CIFAR10C_CORRUPTIONS + EXTRA_CORRUPTIONS
        for name in CORRUPTIONS:
            assert CORRUPTION_FUNCTIONS[name].__name__ == name
            assert getattr(corruptions, name) is CORRUPTION_FUNCTIONS[name]

    def test_defaults_are_the_fifteen(self):
        assert default_corruptions(3) == CIFAR10C_CORRUPTIONS
        assert default_corruptions(1) == CIFAR10C_CORRUPTIONS

    def test_old_module_path_still_works(self, monkeypatch):
        # Imported afresh, so that it warns even when another test imported it first.
        monkeypatch.delitem(sys.modules, "supcon_tf.corruptions", raising=False)
        with pytest.warns(DeprecationWarning):
            old = importlib.import_module("supcon_tf.corruptions")
        assert old.corrupt is corruptions.corrupt
        assert old.CORRUPTIONS is corruptions.CORRUPTIONS


class TestMeanCorruptionError:
    """mCE and relative mCE average the CIFAR-10-C corruptions only, as the paper's."""

    @staticmethod
    def evaluate(names):
        rng = np.random.default_rng(0)
        labels = np.arange(40) % 2
        images = 0.35 + 0.3 * labels[:, None, None, None] + rng.normal(0, 0.03, (40, 6, 6, 3))
        images = np.clip(images, 0, 1).astype("float32")

        def by_brightness(threshold):
            def classify(batch):
                mean = np.asarray(batch).mean(axis=(1, 2, 3))
                return np.stack([threshold - mean, mean - threshold], axis=1) * 20

            return classify

        models = {"bright": by_brightness(0.5), "baseline": by_brightness(0.55)}
        return evaluate_corruptions(models, images, labels, names, baseline="baseline")

    def test_extras_are_left_out_of_the_means(self):
        result = self.evaluate(["brightness", "fog", "saturate"])
        assert result["mean_corruption_error_over"] == ["brightness", "fog"]
        model = result["models"]["bright"]
        errors = model["corruption_error"]
        assert set(errors) == {"brightness", "fog", "saturate"}
        # The three corruption errors differ, so the average tells which were averaged.
        assert len({round(value, 9) for value in errors.values()}) == 3
        assert model["mean_corruption_error"] == pytest.approx(
            (errors["brightness"] + errors["fog"]) / 2, abs=1e-12
        )
        relative = model["relative_corruption_error"]
        assert model["relative_mean_corruption_error"] == pytest.approx(
            (relative["brightness"] + relative["fog"]) / 2, abs=1e-12
        )
        # CE: the summed errors over the summed errors of the baseline.
        baseline = result["models"]["baseline"]["accuracy"]["brightness"]
        error_sum = sum(1 - value for value in model["accuracy"]["brightness"])
        baseline_sum = sum(1 - value for value in baseline)
        assert errors["brightness"] == pytest.approx(error_sum / baseline_sum, abs=1e-12)

    def test_only_extras_average_the_extras(self):
        result = self.evaluate(["saturate"])
        assert result["mean_corruption_error_over"] == ["saturate"]
        errors = result["models"]["bright"]["corruption_error"]
        assert result["models"]["bright"]["mean_corruption_error"] == errors["saturate"]


# ----------------------------------------------------------------------------- blur


class TestZoomBlur:
    def test_factors_are_the_references_aranges(self):
        # The reference's floating-point aranges: 1.25 is 1.2500000000000002 there, which
        # rounds a 26-pixel crop to 33 pixels (not 32): the factors are copied exactly.
        for severity, end in zip(SEVERITIES, (1.06, 1.11, 1.16, 1.21, 1.26), strict=True):
            reference = np.arange(1, end, 0.01)
            np.testing.assert_array_equal(blur.zoom_factors(severity), reference)
        assert [len(blur.zoom_factors(severity)) for severity in SEVERITIES] == [7, 12, 16, 21, 26]

    @pytest.mark.parametrize("size", [32, 19])
    def test_matches_the_reference_with_scipy_zoom(self, size):
        images = random_images((2, size, size, 3))
        for severity in SEVERITIES:
            factors = np.arange(1, (1.06, 1.11, 1.16, 1.21, 1.26)[severity - 1], 0.01)
            for index, image in enumerate(images.astype(np.float64)):
                total = image + sum(clipped_zoom(image, factor) for factor in factors)
                expected = np.clip(total / (len(factors) + 1), 0, 1)
                np.testing.assert_allclose(
                    corruptions.zoom_blur(images, severity)[index], expected, atol=2e-6
                )

    def test_centre_zoom_of_a_ramp_is_a_ramp(self):
        # Linear interpolation reproduces a linear image: zooming rows 0..31 by 1.2 takes
        # the ceil(32 / 1.2) = 27 rows from row 2 to round(27 * 1.2) = 32 rows, corners
        # aligned (no trim): row i reads crop row i * 26 / 31.
        ramp = np.broadcast_to(np.arange(32.0)[None, :, None, None], (1, 32, 5, 1))
        zoomed = _common.centre_zoom(ramp, 1.2)[0, :, 0, 0]
        np.testing.assert_allclose(zoomed, 2 + np.arange(32) * 26 / 31, atol=1e-12)

    def test_non_square_images_zoom_each_axis(self):
        images = random_images((2, 20, 33, 2))
        blurred = corruptions.zoom_blur(images, 5)
        factors = np.arange(1, 1.26, 0.01)
        for index, image in enumerate(images.astype(np.float64)):
            total = image + sum(clipped_zoom(image, factor) for factor in factors)
            expected = np.clip(total / (len(factors) + 1), 0, 1)
            np.testing.assert_allclose(blurred[index], expected, atol=2e-6)


class TestMotionBlur:
    def test_kernel_taps_are_imagemagicks(self):
        weights, rows, columns = _common.motion_blur_taps(6, 1.5, 30.0)
        assert len(weights) == 13
        expected = np.exp(-(np.arange(13.0) ** 2) / (2 * 1.5**2))
        np.testing.assert_allclose(weights, expected / expected.sum())
        np.testing.assert_array_equal(rows, np.ceil(np.arange(13) * 0.5 - 0.5))
        np.testing.assert_array_equal(
            columns, np.ceil(np.arange(13) * math.cos(math.radians(30)) - 0.5)
        )
        # Horizontal motion stays on the row.
        _, rows, columns = _common.motion_blur_taps(9, 2.5, 0.0)
        assert not rows.any() and list(columns) == list(range(19))

    def test_angles_are_seeded_and_within_45_degrees(self):
        angles = blur.motion_angles(2000, seed=3)
        np.testing.assert_array_equal(angles, blur.motion_angles(2000, seed=3))
        assert angles.min() >= -45 and angles.max() <= 45
        assert angles.min() < -40 and angles.max() > 40

    def test_matches_a_pixel_loop_of_imagemagicks_filter(self):
        images = random_images((3, 9, 11, 2))
        angles = blur.motion_angles(3, seed=7)
        for severity, (radius, sigma) in zip(SEVERITIES, blur.MOTION_BLUR, strict=True):
            blurred = corruptions.motion_blur(images, severity, seed=7)
            for index in range(3):
                expected = imagemagick_motion_blur(
                    images[index].astype(np.float64), radius, sigma, angles[index]
                )
                np.testing.assert_allclose(blurred[index], expected, atol=1e-6)

    def test_constant_image_stays_constant(self):
        images = np.full((4, 16, 16, 3), 0.37, "float32")
        for severity in SEVERITIES:
            np.testing.assert_allclose(corruptions.motion_blur(images, severity), 0.37, atol=1e-6)


class TestGlassBlur:
    def test_offsets_are_up_left_or_none_equally(self):
        offsets = blur.glass_offsets((50, 40, 40, 3), seed=0)
        assert offsets.shape == (2, 50, 40, 40, 2)
        assert set(np.unique(offsets)) == {-1, 0}
        pairs = offsets.reshape(-1, 2)
        for pair in ([0, 0], [0, -1], [-1, 0], [-1, -1]):
            assert (pairs == pair).all(axis=1).mean() == pytest.approx(0.25, abs=0.01)

    def test_shuffle_copies_a_neighbour_inside_the_window(self):
        images = random_images((2, 7, 9, 3)).astype(np.float64)
        offsets = blur.glass_offsets(images.shape, seed=1)[0]
        shuffled = blur.glass_shuffle(images, offsets)
        for n in range(2):
            for y in range(7):
                for x in range(9):
                    if y < 2 or x < 2:  # outside the window: unchanged
                        np.testing.assert_array_equal(shuffled[n, y, x], images[n, y, x])
                    else:
                        dy, dx = offsets[n, y, x]
                        np.testing.assert_array_equal(shuffled[n, y, x], images[n, y + dy, x + dx])

    def test_matches_the_references_loop(self):
        # The reference's loop, with its tuple assignment of NumPy views (a copy, not a
        # swap), between two scikit-image Gaussian blurs.
        images = random_images((2, 10, 12, 3))
        offsets = blur.glass_offsets(images.shape, seed=4)
        for severity, (sigma, iterations) in zip(SEVERITIES, blur.GLASS_BLUR, strict=True):
            glassy = corruptions.glass_blur(images, severity, seed=4)
            for n in range(2):
                x = skimage_gaussian(images[n], sigma)
                for iteration in range(iterations):
                    for h in range(10 - 1, 1, -1):
                        for w in range(12 - 1, 1, -1):
                            dy, dx = offsets[iteration, n, h, w]
                            h_prime, w_prime = h + dy, w + dx
                            x[h, w], x[h_prime, w_prime] = x[h_prime, w_prime], x[h, w]
                expected = np.clip(skimage_gaussian(x, sigma), 0, 1)
                np.testing.assert_allclose(glassy[n], expected, atol=1e-6)

    def test_two_shuffles_move_further_than_one(self):
        # Severities 1-3 shuffle once (blur 0.05, 0.25, 0.4), 4-5 twice: with the
        # reference's parameters the distance grows with the shuffles, not with the blur.
        images = random_images((16, 32, 32, 3))
        distances = [mean_distance("glass_blur", images, severity) for severity in SEVERITIES]
        assert min(distances[3:]) > max(distances[:3]), distances


# ----------------------------------------------------------------------------- weather


class TestSnow:
    @pytest.mark.parametrize("channels", [3, 1])
    def test_matches_a_transcription_of_the_reference(self, channels):
        images = random_images((2, 12, 12, channels))
        for severity in SEVERITIES:
            mean, std, zoom, threshold, radius, sigma, blend = weather.SNOW[severity - 1]
            rng = np.random.default_rng(5)
            normal = rng.standard_normal((2, 12, 12, 1))
            angles = rng.uniform(-135, -45, 2)
            snowy = corruptions.snow(images, severity, seed=5)
            for n in range(2):
                layer = clipped_zoom(mean + std * normal[n], zoom)
                layer[layer < threshold] = 0
                layer = imagemagick_motion_blur(np.clip(layer, 0, 1), radius, sigma, angles[n])
                x = images[n].astype(np.float64)
                grey = x if channels == 1 else x @ np.array([[0.299], [0.587], [0.114]])
                x = blend * x + (1 - blend) * np.maximum(x, grey * 1.5 + 0.5)
                expected = np.clip(x + layer + np.rot90(layer, k=2), 0, 1)
                np.testing.assert_allclose(snowy[n], expected, atol=1e-6)

    def test_flakes_fall_downwards(self):
        # The streaks run within 45 degrees of vertical: the snow layer is smoother down
        # the columns than along the rows.
        layer = weather.snow_layers((20, 64, 64, 1), 5, seed=0)
        assert np.abs(np.diff(layer, axis=1)).mean() < np.abs(np.diff(layer, axis=2)).mean()


class TestFrost:
    def test_closed_form_blend_with_the_texture(self):
        images = random_images((3, 16, 16, 3))
        texture = weather.frost_textures(images.shape, seed=2)
        for severity, (image_weight, texture_weight) in zip(SEVERITIES, weather.FROST, strict=True):
            expected = np.clip(image_weight * images + texture_weight * texture, 0, 1)
            np.testing.assert_allclose(
                corruptions.frost(images, severity, seed=2), expected, atol=1e-6
            )

    def test_texture_is_the_ridges_of_a_plasma_fractal(self):
        texture = weather.frost_textures((2, 20, 24, 3), seed=9)
        fractal = _common.plasma_fractals(2, 32, 1.6, np.random.default_rng(9))[:, :20, :24]
        ridges = (1 - np.abs(2 * fractal - 1)) ** 4
        np.testing.assert_allclose(texture, ridges[..., None] * [0.85, 0.93, 1.0], atol=1e-12)
        grey = weather.frost_textures((2, 20, 24, 1), seed=9)
        np.testing.assert_allclose(grey[..., 0], ridges, atol=1e-12)
        assert texture.min() >= 0 and texture.max() <= 1
        assert not np.allclose(texture[0], texture[1])  # one texture per image

    def test_texture_grows_relative_to_the_image(self):
        # CIFAR-10-C's table: the texture's weight relative to the image's grows at every
        # severity, although the image weight falls from severity 3 to 4 with the texture
        # weight unchanged (so the distance from the clean image can fall there).
        ratios = [texture / image for image, texture in weather.FROST]
        assert all(np.diff(ratios) > 0)


# ----------------------------------------------------------------------------- digital


class TestElasticTransform:
    @pytest.mark.parametrize("size", [(32, 32), (15, 21)])
    def test_matches_a_scipy_transcription_of_the_reference(self, size):
        height, width = size
        images = random_images((2, height, width, 3))
        rng = np.random.default_rng(6)
        affine = rng.uniform(-1, 1, (2, 3, 2))
        fields = rng.uniform(-1, 1, (2, 2, height, width, 1))
        centre = np.array([width // 2, height // 2], np.float64)
        side = min(height, width) // 3
        points = np.array([centre + side, centre + [side, -side], centre - side])
        rows, columns = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
        for severity in SEVERITIES:
            alpha, sigma, jitter = (
                np.array(
                    [
                        (0, 0, 0.08),
                        (0.05, 0.2, 0.07),
                        (0.08, 0.06, 0.06),
                        (0.1, 0.04, 0.05),
                        (0.1, 0.03, 0.03),
                    ][severity - 1]
                )
                * 32
            )
            elastic = corruptions.elastic_transform(images, severity, seed=6)
            for n in range(2):
                moved = points + jitter * affine[n]
                # cv2.getAffineTransform(points, moved), inverted as warpAffine does.
                forward = np.linalg.solve(np.column_stack([points, np.ones(3)]), moved).T
                inverse = np.linalg.inv(np.vstack([forward, [0, 0, 1]]))
                source_x = inverse[0, 0] * columns + inverse[0, 1] * rows + inverse[0, 2]
                source_y = inverse[1, 0] * columns + inverse[1, 1] * rows + inverse[1, 2]
                warped = np.stack(
                    [
                        ndimage.map_coordinates(
                            images[n, :, :, c].astype(np.float64),
                            [source_y, source_x],
                            order=1,
                            mode="mirror",
                        )
                        for c in range(3)
                    ],
                    axis=-1,
                )
                shift_x, shift_y = (
                    ndimage.gaussian_filter(
                        fields[k, n, :, :, 0], sigma, mode="reflect", truncate=3
                    )
                    * alpha
                    for k in range(2)
                )
                expected = np.stack(
                    [
                        ndimage.map_coordinates(
                            warped[:, :, c],
                            [rows + shift_y, columns + shift_x],
                            order=1,
                            mode="reflect",
                        )
                        for c in range(3)
                    ],
                    axis=-1,
                )
                np.testing.assert_allclose(elastic[n], np.clip(expected, 0, 1), atol=1e-5)

    def test_zero_displacement_is_the_identity(self):
        images = random_images((2, 13, 17, 3)).astype(np.float64)
        rows, columns = digital.affine_source(13, 17, np.zeros((2, 3, 2)))
        grid_rows, grid_columns = np.meshgrid(np.arange(13), np.arange(17), indexing="ij")
        np.testing.assert_allclose(rows, np.broadcast_to(grid_rows, rows.shape), atol=1e-9)
        np.testing.assert_allclose(columns, np.broadcast_to(grid_columns, rows.shape), atol=1e-9)
        for mode in ("mirror", "reflect", "edge"):
            np.testing.assert_allclose(
                _common.sample_bilinear(images, rows, columns, mode), images, atol=1e-9
            )

    def test_a_common_jitter_translates(self):
        # All three points moved by (x, y) = (2, -1): the output reads the source at
        # (row + 1, column - 2), mirrored (`c b | a b c`) outside.
        images = random_images((1, 9, 10, 1)).astype(np.float64)
        jitter = np.broadcast_to(np.array([2.0, -1.0]), (1, 3, 2))
        rows, columns = digital.affine_source(9, 10, jitter)
        shifted = _common.sample_bilinear(images, rows, columns, "mirror")
        mirrored = np.pad(images, ((0, 0), (2, 2), (2, 2), (0, 0)), mode="reflect")
        np.testing.assert_allclose(shifted, mirrored[:, 3:12, 0:10], atol=1e-9)

    def test_local_displacement_grows_as_the_affine_shrinks(self):
        # CIFAR-10-C's table trades a shrinking random affine for a growing local field,
        # so the distance from the clean image falls with severity; the field's RMS
        # (alpha times the RMS of a smoothed U(-1, 1)) grows from 0.
        field = np.random.default_rng(0).uniform(-1, 1, (256, 256))
        rms = [
            alpha * float(np.sqrt(np.mean(ndimage.gaussian_filter(field, sigma, truncate=3) ** 2)))
            if alpha
            else 0.0
            for alpha, sigma, _ in digital.ELASTIC
        ]
        assert rms[0] == 0 and all(np.diff(rms) > 0), rms
        assert all(np.diff([jitter for _, _, jitter in digital.ELASTIC]) < 0)


def test_motion_blur_severities_3_and_4_coincide():
    # Radius 6 -> 8 at sigma 2 only adds taps of weight < exp(-13^2 / 8) ~ 7e-10: in
    # CIFAR-10-C the two levels are the same blur; the other steps grow.
    images = random_images((8, 32, 32, 3))
    distances = [mean_distance("motion_blur", images, severity) for severity in SEVERITIES]
    assert distances[2] == pytest.approx(distances[3], rel=1e-6)
    assert distances[0] < distances[1] < distances[2] and distances[3] < distances[4]


@pytest.mark.parametrize(
    "name", ["glass_blur", "motion_blur", "zoom_blur", "snow", "frost", "elastic_transform"]
)
def test_new_corruptions_on_grey_and_large_images(name):
    grey = random_images((2, 32, 32, 1))
    large = random_images((1, 96, 80, 3))
    for images in (grey, large):
        first = corrupt(images, name, 4, seed=3)
        np.testing.assert_array_equal(first, corrupt(images, name, 4, seed=3))
        assert first.shape == images.shape and first.dtype == np.float32
        assert first.min() >= 0 and first.max() <= 1
        assert np.abs(first - images).mean() > 1e-3
