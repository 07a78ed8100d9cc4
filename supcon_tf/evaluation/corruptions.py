"""Common image corruptions (CIFAR-10-C / ImageNet-C style) and robustness evaluation.

The corruptions follow the definitions and the CIFAR-10-C severity parameters of
Hendrycks & Dietterich 2019, "Benchmarking Neural Network Robustness to Common
Corruptions and Perturbations" (ICLR), re-implemented in NumPy/TensorFlow so that they
can be applied to any test set on the fly (the published corruption sets cannot be
downloaded here). Every corruption has the signature
`corruption(images, severity=1, seed=0) -> images`: float32 NHWC images in `[0, 1]` in,
the same shape, dtype and range out, severities 1 (mild) to 5 (strong), and the same seed
giving the same result. Differences from the reference code, all deliberate:

* images stay float (no rounding to uint8 between steps, except inside JPEG coding);
* the same seed draws the same underlying noise at every severity, so a stronger
  severity is a stronger version of the same corruption;
* `saturate`: the reference severities (x0.3, x0.1, x1.5, x2+0.1, x2.5+0.2 on HSV
  saturation) first desaturate and then oversaturate, so they are not ordered by
  strength; here the saturation is scaled by (1.5, 2, 2.5, 5, 20) plus
  (0, 0.1, 0.2, 0.2, 0.2): CIFAR-10-C's oversaturating levels 3-5 as levels 1-3, then
  stronger ones up to ImageNet-C's level 5;
* blurs, pixelate and fog scale with the image size only through their CIFAR (32x32)
  parameters, which are used for every image size; `fog` draws one fractal per image.

`frost`, `snow`, `motion_blur`, `glass_blur`, `zoom_blur`, `elastic_transform` and
`spatter` are not implemented (frost needs the authors' photographs; the others need
ImageMagick or OpenCV, which are not dependencies).

The module (about 650 lines) holds the fifteen corruptions, their severity tables and
`evaluate_corruptions` together: each corruption is short, and the table of severity
parameters reads best beside the code that uses it.

`evaluate_corruptions` runs one or more classifiers over corruptions x severities and
reports accuracy and ECE per severity and the corruption error relative to a baseline:
`CE_c = sum_s E_{s,c} / sum_s E^baseline_{s,c}`, `mCE = mean_c CE_c` (Hendrycks &
Dietterich normalise by AlexNet; here the baseline is the cross-entropy model).

Example:

>>> import numpy as np
>>> images = np.random.default_rng(0).random((2, 32, 32, 3)).astype("float32")
>>> noisy = corrupt(images, "gaussian_noise", severity=3, seed=0)
>>> noisy.shape, noisy.dtype.name, float(noisy.min()) >= 0.0
((2, 32, 32, 3), 'float32', True)
"""

import math

import numpy as np
import tensorflow as tf

from supcon_tf.evaluation._checks import _check_labels
from supcon_tf.evaluation.calibration import expected_calibration_error
from supcon_tf.evaluation.metrics import predict_probabilities, top_k_accuracy

SEVERITIES = (1, 2, 3, 4, 5)

# CIFAR-10-C parameters (Hendrycks & Dietterich 2019, make_cifar_c.py), severity 1..5.
_GAUSSIAN_NOISE = (0.04, 0.06, 0.08, 0.09, 0.10)  # standard deviation
_SHOT_NOISE = (500, 250, 100, 75, 50)  # photons per unit intensity (Poisson rate)
_IMPULSE_NOISE = (0.01, 0.02, 0.03, 0.05, 0.07)  # fraction of salt-and-pepper values
_SPECKLE_NOISE = (0.06, 0.10, 0.12, 0.16, 0.20)  # std of the multiplicative noise
_GAUSSIAN_BLUR = (0.4, 0.6, 0.7, 0.8, 1.0)  # sigma in pixels
_DEFOCUS_BLUR = ((0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1.0, 0.2), (1.5, 0.1))  # radius, alias
_CONTRAST = (0.75, 0.5, 0.4, 0.3, 0.15)  # factor towards the channel means
_BRIGHTNESS = (0.05, 0.1, 0.15, 0.2, 0.3)  # added to HSV value
_SATURATE = ((1.5, 0.0), (2.0, 0.1), (2.5, 0.2), (5.0, 0.2), (20.0, 0.2))  # see above
_JPEG_QUALITY = (80, 65, 58, 50, 40)
_PIXELATE = (0.95, 0.9, 0.85, 0.75, 0.65)  # relative size of the low-resolution image
_FOG = ((0.2, 3.0), (0.5, 3.0), (0.75, 2.5), (1.0, 2.0), (1.5, 1.75))  # strength, decay


# ----------------------------------------------------------------------------- helpers


def _check_images(images):
    """Returns `images` as float32 NHWC in [0, 1], or raises ValueError."""
    array = np.asarray(images)
    if not np.issubdtype(array.dtype, np.floating):
        raise ValueError(
            f"Corruptions take float images in [0, 1], got dtype {array.dtype}; divide uint8 "
            "images by 255 first."
        )
    if array.ndim != 4:
        raise ValueError(
            f"Corruptions take a batch of images [N, H, W, C], got shape {array.shape}."
        )
    if array.size == 0:
        raise ValueError(f"`images` is empty (shape {array.shape}).")
    if not np.all(np.isfinite(array)):
        raise ValueError("`images` contains NaN or infinite values.")
    low, high = float(array.min()), float(array.max())
    if low < -1e-6 or high > 1 + 1e-6:
        raise ValueError(f"Images must lie in [0, 1], got values in [{low:.4g}, {high:.4g}].")
    return np.clip(array, 0.0, 1.0).astype(np.float32)


def _parameter(table, severity):
    if isinstance(severity, bool) or not isinstance(severity, (int, np.integer)):
        raise ValueError(f"`severity` must be an integer in 1..5, got {severity!r}.")
    if severity not in SEVERITIES:
        raise ValueError(f"`severity` must be in {SEVERITIES}, got {severity}.")
    return table[severity - 1]


def _finish(images):
    return np.clip(images, 0.0, 1.0).astype(np.float32)


def _convolve(images, kernel, pad_mode):
    """Correlates every channel of NHWC `images` with a 2-D `kernel` (odd sizes)."""
    kernel_height, kernel_width = kernel.shape
    top, left = kernel_height // 2, kernel_width // 2
    padded = np.pad(images, ((0, 0), (top, top), (left, left), (0, 0)), mode=pad_mode)
    height, width = images.shape[1:3]
    output = np.zeros(images.shape, dtype=np.float64)
    for row in range(kernel_height):
        for column in range(kernel_width):
            if kernel[row, column] != 0:
                output += (
                    kernel[row, column] * padded[:, row : row + height, column : column + width]
                )
    return output


def _gaussian_kernel_1d(sigma, radius):
    offsets = np.arange(-radius, radius + 1, dtype=np.float64)
    weights = np.exp(-(offsets**2) / (2.0 * sigma**2))
    return weights / weights.sum()


def _to_hsv(images):
    return tf.image.rgb_to_hsv(images).numpy()


def _to_rgb(hsv):
    return tf.image.hsv_to_rgb(hsv.astype(np.float32)).numpy()


def _plasma_fractals(count, size, decay, rng):
    """`count` square diamond-square height maps of side `size` (a power of 2), in [0, 1].

    The plasma fractal of the reference fog: the map starts at 0; at every level (the
    step halving from `size` to 2) square centres and then diamond centres are set to the
    mean of their 4 neighbours (periodic boundary) plus `wibble * U(-wibble, wibble)`,
    with `wibble` starting at 100 and divided by `decay` per level; each map is finally
    rescaled to [0, 1].
    """
    maps = np.zeros((count, size, size), dtype=np.float64)
    step = size
    wibble = 100.0
    while step >= 2:
        half = step // 2
        corners = maps[:, 0:size:step, 0:size:step]
        # Square step: the centre of each square from its four corners.
        square_sum = corners + np.roll(corners, -1, axis=1)
        square_sum = square_sum + np.roll(square_sum, -1, axis=2)
        maps[:, half:size:step, half:size:step] = square_sum / 4 + wibble * rng.uniform(
            -wibble, wibble, square_sum.shape
        )
        # Diamond step: edge midpoints from the two corners and two centres around them.
        centres = maps[:, half:size:step, half:size:step]
        corners = maps[:, 0:size:step, 0:size:step]
        horizontal = centres + np.roll(centres, 1, axis=1) + corners + np.roll(corners, -1, axis=2)
        maps[:, 0:size:step, half:size:step] = horizontal / 4 + wibble * rng.uniform(
            -wibble, wibble, horizontal.shape
        )
        vertical = centres + np.roll(centres, 1, axis=2) + corners + np.roll(corners, -1, axis=1)
        maps[:, half:size:step, 0:size:step] = vertical / 4 + wibble * rng.uniform(
            -wibble, wibble, vertical.shape
        )
        step = half
        wibble /= decay
    maps -= maps.min(axis=(1, 2), keepdims=True)
    return maps / np.maximum(maps.max(axis=(1, 2), keepdims=True), 1e-12)


# ----------------------------------------------------------------------------- noise


def gaussian_noise(images, severity=1, seed=0):
    """Adds `N(0, sigma^2)` noise per value, sigma = 0.04 .. 0.10 (CIFAR-10-C).

    Example:

    >>> import numpy as np
    >>> float(gaussian_noise(np.full((1, 4, 4, 1), 0.5, "float32"), severity=5).std()) > 0
    True
    """
    images = _check_images(images)
    sigma = _parameter(_GAUSSIAN_NOISE, severity)
    noise = np.random.default_rng(seed).standard_normal(images.shape)
    return _finish(images + sigma * noise)


def shot_noise(images, severity=1, seed=0):
    """Poisson (photon) noise: `Poisson(x * rate) / rate`, rate = 500 .. 50.

    Example:

    >>> import numpy as np
    >>> float(shot_noise(np.full((1, 4, 4, 1), 0.5, "float32"), severity=5).std()) > 0
    True
    """
    images = _check_images(images)
    rate = _parameter(_SHOT_NOISE, severity)
    return _finish(np.random.default_rng(seed).poisson(images * rate) / rate)


def impulse_noise(images, severity=1, seed=0):
    """Salt-and-pepper noise: a fraction 0.01 .. 0.07 of the values set to 0 or 1 (equally).

    Each value (pixel and channel) is hit independently, as in scikit-image's `s&p` mode.

    Example:

    >>> import numpy as np
    >>> noisy = impulse_noise(np.full((1, 32, 32, 3), 0.5, "float32"), severity=5)
    >>> bool(np.isin(noisy[noisy != 0.5], [0.0, 1.0]).all())
    True
    """
    images = _check_images(images)
    amount = _parameter(_IMPULSE_NOISE, severity)
    rng = np.random.default_rng(seed)
    hit = rng.random(images.shape) < amount
    salt = rng.random(images.shape) < 0.5
    return _finish(np.where(hit, salt.astype(np.float32), images))


def speckle_noise(images, severity=1, seed=0):
    """Multiplicative noise: `x + x * N(0, sigma^2)`, sigma = 0.06 .. 0.20.

    Example:

    >>> import numpy as np
    >>> float(speckle_noise(np.zeros((1, 4, 4, 1), "float32"), severity=5).max())
    0.0
    """
    images = _check_images(images)
    sigma = _parameter(_SPECKLE_NOISE, severity)
    noise = np.random.default_rng(seed).standard_normal(images.shape)
    return _finish(images + images * sigma * noise)


# ----------------------------------------------------------------------------- blur


def gaussian_blur(images, severity=1, seed=0):
    """Gaussian blur of sigma 0.4 .. 1.0 pixels (kernel truncated at 4 sigma, edge padding).

    `seed` is unused (the corruption is deterministic); it keeps the common signature.

    Example:

    >>> import numpy as np
    >>> image = np.zeros((1, 9, 9, 1), "float32"); image[0, 4, 4] = 1.0
    >>> blurred = gaussian_blur(image, severity=5)
    >>> 0.1 < float(blurred[0, 4, 4, 0]) < 1.0
    True
    """
    del seed
    images = _check_images(images)
    sigma = _parameter(_GAUSSIAN_BLUR, severity)
    weights = _gaussian_kernel_1d(sigma, int(4.0 * sigma + 0.5))
    output = _convolve(images, weights[None, :], "edge")
    return _finish(_convolve(output, weights[:, None], "edge"))


def _disk_kernel(radius, alias_blur):
    """A normalised disk of `radius` pixels, anti-aliased by a 3x3 Gaussian of `alias_blur`."""
    half = int(math.ceil(radius)) + 1
    offsets = np.arange(-half, half + 1)
    rows, columns = np.meshgrid(offsets, offsets, indexing="ij")
    disk = (rows**2 + columns**2 <= radius**2).astype(np.float64)
    disk /= disk.sum()
    weights = _gaussian_kernel_1d(alias_blur, 1)
    # The disk is zero on the border of its grid, so zero padding changes nothing.
    smoothed = _convolve(disk[None, :, :, None], np.outer(weights, weights), "constant")
    return smoothed[0, :, :, 0]


def defocus_blur(images, severity=1, seed=0):
    """Defocus: convolution with an anti-aliased disk, (radius, alias sigma) = (0.3, 0.4) ..

    (1.5, 0.1) pixels; borders are mirrored. `seed` is unused (deterministic).

    Example:

    >>> import numpy as np
    >>> image = np.zeros((1, 9, 9, 1), "float32"); image[0, 4, 4] = 1.0
    >>> round(float(defocus_blur(image, severity=5).sum()), 4)
    1.0
    """
    del seed
    images = _check_images(images)
    radius, alias_blur = _parameter(_DEFOCUS_BLUR, severity)
    return _finish(_convolve(images, _disk_kernel(radius, alias_blur), "reflect"))


def pixelate(images, severity=1, seed=0):
    """Box-downsamples to `int(size * f)` pixels, f = 0.95 .. 0.65, and box-upsamples back.

    `seed` is unused (deterministic).

    Example:

    >>> import numpy as np
    >>> pixelate(np.random.default_rng(0).random((1, 32, 32, 3)), severity=5).shape
    (1, 32, 32, 3)
    """
    del seed
    images = _check_images(images)
    factor = _parameter(_PIXELATE, severity)
    height, width = images.shape[1:3]
    small = (max(1, int(height * factor)), max(1, int(width * factor)))
    low = tf.image.resize(images, small, method="area", antialias=True)
    return _finish(tf.image.resize(low, (height, width), method="area").numpy())


# ----------------------------------------------------------------------------- digital


def contrast(images, severity=1, seed=0):
    """Pulls every channel towards its image mean: `(x - mean) * c + mean`, c = 0.75 .. 0.15.

    `seed` is unused (deterministic).

    Example:

    >>> import numpy as np
    >>> contrast(np.array([[[[0.0]], [[1.0]]]], "float32"), severity=2).ravel().tolist()
    [0.25, 0.75]
    """
    del seed
    images = _check_images(images)
    factor = _parameter(_CONTRAST, severity)
    means = images.mean(axis=(1, 2), keepdims=True)
    return _finish((images - means) * factor + means)


def brightness(images, severity=1, seed=0):
    """Adds 0.05 .. 0.3 to the HSV value of RGB images (to the intensity of grey images).

    `seed` is unused (deterministic).

    Example:

    >>> import numpy as np
    >>> round(float(brightness(np.full((1, 2, 2, 1), 0.5, "float32"), severity=5).max()), 6)
    0.8
    """
    del seed
    images = _check_images(images)
    shift = _parameter(_BRIGHTNESS, severity)
    if images.shape[-1] == 1:
        return _finish(images + np.float32(shift))
    if images.shape[-1] != 3:
        raise ValueError(
            f"`brightness` needs 1 (grey) or 3 (RGB) channels, got {images.shape[-1]}."
        )
    hsv = _to_hsv(images)
    hsv[..., 2] = np.clip(hsv[..., 2] + shift, 0.0, 1.0)
    return _finish(_to_rgb(hsv))


def saturate(images, severity=1, seed=0):
    """Scales the HSV saturation of RGB images: `s * a + b` (see the module notes).

    `seed` is unused (deterministic). Grey images have no saturation: ValueError.

    Example:

    >>> import numpy as np
    >>> pale = np.array([[[[0.6, 0.5, 0.5]]]], "float32")
    >>> [round(float(value), 2) for value in saturate(pale, severity=1).ravel()]
    [0.6, 0.45, 0.45]
    """
    del seed
    images = _check_images(images)
    if images.shape[-1] != 3:
        raise ValueError(f"`saturate` needs RGB images (3 channels), got {images.shape[-1]}.")
    scale, offset = _parameter(_SATURATE, severity)
    hsv = _to_hsv(images)
    hsv[..., 1] = np.clip(hsv[..., 1] * scale + offset, 0.0, 1.0)
    return _finish(_to_rgb(hsv))


@tf.function(
    input_signature=(
        tf.TensorSpec([None, None, None, None], tf.uint8),
        tf.TensorSpec([], tf.int32),
    )
)
def _jpeg_round_trip(images, quality):
    """Encodes and decodes every uint8 image at `quality` (one graph for all qualities)."""
    return tf.map_fn(
        lambda image: tf.image.adjust_jpeg_quality(image, quality),
        images,
        fn_output_signature=tf.TensorSpec([None, None, None], tf.uint8),
    )


def jpeg_compression(images, severity=1, seed=0):
    """JPEG encoding and decoding at quality 80 .. 40 (1 or 3 channels).

    `seed` is unused (deterministic).

    Example:

    >>> import numpy as np
    >>> jpeg_compression(np.random.default_rng(0).random((1, 8, 8, 3)), severity=5).shape
    (1, 8, 8, 3)
    """
    del seed
    images = _check_images(images)
    if images.shape[-1] not in (1, 3):
        raise ValueError(f"`jpeg_compression` needs 1 or 3 channels, got {images.shape[-1]}.")
    quality = _parameter(_JPEG_QUALITY, severity)
    encoded = np.round(images * 255.0).astype(np.uint8)
    decoded = _jpeg_round_trip(tf.constant(encoded), quality).numpy()
    return _finish(decoded.reshape(images.shape).astype(np.float32) / 255.0)


# ----------------------------------------------------------------------------- weather


def fog(images, severity=1, seed=0):
    """Fog: adds a plasma fractal `c * F` and rescales, `(x + c F) * m / (m + c)`.

    `m` is the image's maximum, (c, fractal decay) = (0.2, 3) .. (1.5, 1.75); the
    fractal (`_plasma_fractals`) is drawn per image from `seed`.

    Example:

    >>> import numpy as np
    >>> foggy = fog(np.random.default_rng(0).random((2, 32, 32, 3)), severity=5, seed=1)
    >>> foggy.shape, float(foggy.max()) <= 1.0
    ((2, 32, 32, 3), True)
    """
    images = _check_images(images)
    strength, decay = _parameter(_FOG, severity)
    height, width = images.shape[1:3]
    size = 1 << max(1, math.ceil(math.log2(max(height, width))))
    fractals = _plasma_fractals(images.shape[0], size, decay, np.random.default_rng(seed))
    maximum = images.max(axis=(1, 2, 3), keepdims=True)
    foggy = images + strength * fractals[:, :height, :width, None]
    return _finish(foggy * maximum / (maximum + strength))


CORRUPTION_FUNCTIONS = {
    "gaussian_noise": gaussian_noise,
    "shot_noise": shot_noise,
    "impulse_noise": impulse_noise,
    "speckle_noise": speckle_noise,
    "gaussian_blur": gaussian_blur,
    "defocus_blur": defocus_blur,
    "pixelate": pixelate,
    "contrast": contrast,
    "brightness": brightness,
    "saturate": saturate,
    "jpeg_compression": jpeg_compression,
    "fog": fog,
}
CORRUPTIONS = tuple(CORRUPTION_FUNCTIONS)
# Corruptions defined on colour only (skipped by default for grey images).
COLOR_CORRUPTIONS = ("saturate",)


def corrupt(images, name, severity=1, seed=0):
    """Applies the corruption called `name` (one of `CORRUPTIONS`) at `severity` (1..5).

    Args:
        images: float NHWC images in `[0, 1]`.
        name: the corruption's name.
        severity: 1 (mild) .. 5 (strong).
        seed: seed of the random corruptions (ignored by the deterministic ones).

    Returns:
        float32 images of the same shape, in `[0, 1]`.

    Example:

    >>> import numpy as np
    >>> float(corrupt(np.zeros((1, 8, 8, 3)), "contrast", severity=5).max())
    0.0
    """
    if name not in CORRUPTION_FUNCTIONS:
        raise ValueError(f"Unknown corruption {name!r}. Expected one of {CORRUPTIONS}.")
    return CORRUPTION_FUNCTIONS[name](images, severity=severity, seed=seed)


def default_corruptions(num_channels):
    """The corruptions that apply to images with `num_channels` channels.

    Example:

    >>> "saturate" in default_corruptions(1), "saturate" in default_corruptions(3)
    (False, True)
    """
    if num_channels == 3:
        return CORRUPTIONS
    if num_channels == 1:
        return tuple(name for name in CORRUPTIONS if name not in COLOR_CORRUPTIONS)
    excluded = (*COLOR_CORRUPTIONS, "brightness", "jpeg_compression")
    return tuple(name for name in CORRUPTIONS if name not in excluded)


# ----------------------------------------------------------------------------- evaluation


def _ratio(numerator, denominator):
    """`numerator / denominator`, or None (JSON null) when the denominator is 0."""
    return float(numerator / denominator) if denominator > 0 else None


def evaluate_corruptions(
    models,
    images,
    labels,
    corruptions=None,
    severities=SEVERITIES,
    baseline=None,
    num_bins=15,
    batch_size=256,
    seed=0,
):
    """Accuracy and ECE of classifiers over corruptions x severities, and their mCE.

    Every corrupted copy of `images` is made once and shared by all models. Corruption
    `c` (the `i`-th in `corruptions`) uses seed `seed + i` at every severity.

    With `E_{s,c}` the error (1 - accuracy) of a model at severity `s` of corruption `c`
    and `E^b` that of the baseline (Hendrycks & Dietterich 2019, Sec. 4):

    * corruption error `CE_c = sum_s E_{s,c} / sum_s E^b_{s,c}`, and its mean over
      corruptions, `mean_corruption_error` (mCE; the baseline scores 1);
    * relative corruption error
      `sum_s (E_{s,c} - E_clean) / sum_s (E^b_{s,c} - E^b_clean)` and its mean
      `relative_mean_corruption_error` (how much accuracy is lost, relative to the
      baseline's loss).

    A ratio with a zero denominator is reported as None.

    Args:
        models: a dict `name -> model` of classifiers that output logits (or a single
            model, named `"model"`).
        images: float NHWC test images in `[0, 1]`.
        labels: `[N]` integer labels.
        corruptions: names from `CORRUPTIONS` (default: `default_corruptions` for the
            images' channel count).
        severities: severities to evaluate (default 1..5).
        baseline: the name (a key of `models`) of the reference model of the corruption
            errors; None skips them.
        num_bins: ECE bins.
        batch_size: images per forward pass.
        seed: base seed of the random corruptions.

    Returns:
        A JSON-ready dict with `corruptions`, `severities`, `baseline`, `num_samples`,
        `seed` and `models`: for each model `clean` (`accuracy`,
        `expected_calibration_error`), `accuracy` and `expected_calibration_error` (dicts
        corruption -> list over severities), `per_severity` (`accuracy` and
        `expected_calibration_error` averaged over corruptions, one per severity),
        `mean_accuracy`, `mean_expected_calibration_error` and, with a baseline,
        `corruption_error`, `mean_corruption_error`, `relative_corruption_error` and
        `relative_mean_corruption_error`.

    Example:

    >>> import keras, numpy as np
    >>> images = np.random.default_rng(0).random((6, 8, 8, 3)).astype("float32")
    >>> model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Flatten(),
    ...                           keras.layers.Dense(2)])
    >>> result = evaluate_corruptions({"a": model, "b": model}, images, [0, 1] * 3,
    ...                               corruptions=["contrast"], baseline="b")
    >>> result["models"]["a"]["mean_corruption_error"]
    1.0
    """
    images = _check_images(images)
    labels = _check_labels(labels)
    if labels.shape[0] != images.shape[0]:
        raise ValueError(f"{images.shape[0]} images but {labels.shape[0]} labels were given.")
    if not isinstance(models, dict):
        models = {"model": models}
    if not models:
        raise ValueError("`models` is empty: pass at least one classifier.")
    if baseline is not None and baseline not in models:
        raise ValueError(f"`baseline`={baseline!r} is not one of the models {list(models)}.")
    if corruptions is None:
        corruptions = default_corruptions(images.shape[-1])
    corruptions = list(corruptions)
    if not corruptions:
        raise ValueError(f"`corruptions` is empty: name at least one of {CORRUPTIONS}.")
    for name in corruptions:
        if name not in CORRUPTION_FUNCTIONS:
            raise ValueError(f"Unknown corruption {name!r}. Expected one of {CORRUPTIONS}.")
    severities = [int(_parameter(SEVERITIES, severity)) for severity in severities]
    if not severities:
        raise ValueError(f"`severities` is empty: choose from {SEVERITIES}.")

    results = {}
    for name, model in models.items():
        probabilities = predict_probabilities(model, images, batch_size)
        results[name] = {
            "clean": {
                "accuracy": top_k_accuracy(labels, probabilities, k=1),
                "expected_calibration_error": expected_calibration_error(
                    labels, probabilities, num_bins
                ),
            },
            "accuracy": {corruption: [] for corruption in corruptions},
            "expected_calibration_error": {corruption: [] for corruption in corruptions},
        }
    count = images.shape[0]
    for index, corruption in enumerate(corruptions):
        # One forward pass per model over all severities (fewer, larger predict calls).
        corrupted = np.concatenate(
            [corrupt(images, corruption, severity, seed=seed + index) for severity in severities]
        )
        for name, model in models.items():
            probabilities = predict_probabilities(model, corrupted, batch_size)
            for position in range(len(severities)):
                part = probabilities[position * count : (position + 1) * count]
                results[name]["accuracy"][corruption].append(top_k_accuracy(labels, part, k=1))
                results[name]["expected_calibration_error"][corruption].append(
                    expected_calibration_error(labels, part, num_bins)
                )
    for result in results.values():
        accuracy = np.array([result["accuracy"][name] for name in corruptions])
        calibration = np.array([result["expected_calibration_error"][name] for name in corruptions])
        result["per_severity"] = {
            "accuracy": accuracy.mean(axis=0).tolist(),
            "expected_calibration_error": calibration.mean(axis=0).tolist(),
        }
        result["mean_accuracy"] = float(accuracy.mean())
        result["mean_expected_calibration_error"] = float(calibration.mean())
    if baseline is not None:
        reference = results[baseline]
        reference_clean_error = 1.0 - reference["clean"]["accuracy"]
        for result in results.values():
            clean_error = 1.0 - result["clean"]["accuracy"]
            errors, relative = {}, {}
            for name in corruptions:
                model_errors = 1.0 - np.array(result["accuracy"][name])
                reference_errors = 1.0 - np.array(reference["accuracy"][name])
                errors[name] = _ratio(model_errors.sum(), reference_errors.sum())
                relative[name] = _ratio(
                    (model_errors - clean_error).sum(),
                    (reference_errors - reference_clean_error).sum(),
                )
            result["corruption_error"] = errors
            result["relative_corruption_error"] = relative
            for key, values in (
                ("mean_corruption_error", errors),
                ("relative_mean_corruption_error", relative),
            ):
                defined = [value for value in values.values() if value is not None]
                result[key] = float(np.mean(defined)) if defined else None
    return {
        "corruptions": corruptions,
        "severities": severities,
        "baseline": baseline,
        "num_samples": int(images.shape[0]),
        "seed": seed,
        "models": results,
    }
