"""The pieces the corruption families share: input checks, filters, resampling, fractals.

Every helper takes and returns NumPy arrays; images are NHWC. Filters and resampling
work in float64 and leave clipping and the float32 cast to `finish`.
"""

import math

import numpy as np
import tensorflow as tf

from supcon_tf import checks
from supcon_tf.errors import DataError

SEVERITIES = (1, 2, 3, 4, 5)


def check_images(images):
    """Returns `images` as float32 NHWC in [0, 1], or raises `DataError` saying what to fix."""
    array = np.asarray(images)
    if not np.issubdtype(array.dtype, np.floating):
        raise DataError(
            f"Corruptions take float images in [0, 1], got dtype {array.dtype}; divide uint8 "
            "images by 255 first."
        )
    if array.ndim != 4:
        raise DataError(
            f"Corruptions take a batch of images [N, H, W, C], got shape {array.shape}."
        )
    if array.size == 0:
        raise DataError(f"`images` is empty (shape {array.shape}).")
    if not np.all(np.isfinite(array)):
        raise DataError("`images` contains NaN or infinite values.")
    low, high = float(array.min()), float(array.max())
    if low < -1e-6 or high > 1 + 1e-6:
        raise DataError(f"Images must lie in [0, 1], got values in [{low:.4g}, {high:.4g}].")
    return np.clip(array, 0.0, 1.0).astype(np.float32)


def parameter(table, severity):
    """The entry of a 5-row severity `table` for `severity` (1..5), else `UsageError`."""
    severity = checks.integer("severity", severity, minimum=1, maximum=len(SEVERITIES))
    return table[severity - 1]


def finish(images):
    """Clips to [0, 1] and casts to float32: the common last step of every corruption."""
    return np.clip(images, 0.0, 1.0).astype(np.float32)


def luminance(images):
    """The grey level of 1- or 3-channel NHWC images, [N, H, W, 1].

    RGB: `0.299 R + 0.587 G + 0.114 B` (Rec. 601, OpenCV's RGB2GRAY); grey: the image.
    """
    if images.shape[-1] == 1:
        return images
    return images @ np.array([[0.299], [0.587], [0.114]])


# ----------------------------------------------------------------------------- filters


def convolve(images, kernel, pad_mode):
    """Correlates every channel of NHWC `images` with a 2-D `kernel` (odd sizes).

    `pad_mode` is a `np.pad` mode: "edge" (clamped coordinates), "reflect" (mirror
    without repeating the border) or "symmetric" (mirror repeating it).
    """
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


def gaussian_kernel_1d(sigma, radius):
    """Normalised Gaussian weights of `sigma` at offsets `-radius..radius`."""
    offsets = np.arange(-radius, radius + 1, dtype=np.float64)
    weights = np.exp(-(offsets**2) / (2.0 * sigma**2))
    return weights / weights.sum()


def gaussian_filter(images, sigma, truncate=4.0, pad_mode="edge"):
    """Separable Gaussian blur of NHWC `images`, kernel radius `int(truncate * sigma + 0.5)`.

    The radius rule and the default edge padding are those of `skimage.filters.gaussian`
    (SciPy's `gaussian_filter`, mode "nearest"), which the reference code calls.
    """
    radius = int(truncate * sigma + 0.5)
    if sigma <= 0 or radius == 0:
        return np.asarray(images, dtype=np.float64)
    weights = gaussian_kernel_1d(sigma, radius)
    output = convolve(images, weights[None, :], pad_mode)
    return convolve(output, weights[:, None], pad_mode)


def motion_blur_taps(radius, sigma, angles):
    """The taps of ImageMagick's motion blur: `(weights, row_offsets, column_offsets)`.

    `2 ceil(radius) + 1` taps `i = 0, 1, ...` along the direction `angle` (degrees, 0 =
    towards +x, 90 = towards +y, i.e. down), weight `exp(-i^2 / (2 sigma^2))` normalised,
    at the pixel `(round(i sin angle), round(i cos angle))` with halves rounded down
    (`ceil(v - 0.5)`), as `MotionBlurImage` computes them. `angles` is a number or an
    array: the offsets then have its shape plus one axis of taps; the weights are `[taps]`.
    """
    width = 2 * math.ceil(radius) + 1
    steps = np.arange(width, dtype=np.float64)
    weights = np.exp(-(steps**2) / (2.0 * sigma**2))
    radians = np.radians(np.asarray(angles, dtype=np.float64))[..., None]
    rows = np.ceil(steps * np.sin(radians) - 0.5).astype(np.int64)
    columns = np.ceil(steps * np.cos(radians) - 0.5).astype(np.int64)
    return weights / weights.sum(), rows, columns


def directional_blur(images, radius, sigma, angles):
    """One-sided motion blur of each image `n` along `angles[n]` (`motion_blur_taps`).

    `output[y, x] = sum_i w_i * image[y + dy_i, x + dx_i]`, coordinates clamped into the
    image (ImageMagick's default edge virtual pixels). Computes in the dtype of `images`.
    """
    count, height, width, channels = images.shape
    weights, row_offsets, column_offsets = motion_blur_taps(radius, sigma, angles)
    reach = len(weights)
    padded = np.pad(images, ((0, 0), (reach, reach), (reach, reach), (0, 0)), mode="edge")
    padded_height, padded_width = height + 2 * reach, width + 2 * reach
    pixels = padded.reshape(-1, channels)
    # The flat index of each output pixel's own place in the padded images.
    centres = (
        np.arange(count)[:, None, None] * padded_height * padded_width
        + (np.arange(height)[None, :, None] + reach) * padded_width
        + (np.arange(width)[None, None, :] + reach)
    )
    shifts = row_offsets * padded_width + column_offsets  # [N, taps]
    output = np.zeros(images.shape, dtype=images.dtype)
    for tap, weight in enumerate(weights.astype(images.dtype)):
        output += weight * np.take(pixels, centres + shifts[:, tap, None, None], axis=0)
    return output


# ----------------------------------------------------------------------------- resampling


def fold_index(index, size, mode):
    """Integer coordinates folded into `0..size-1` by a border `mode`.

    "reflect": mirror repeating the border pixel (`b a | a b`, SciPy's "reflect", OpenCV's
    BORDER_REFLECT); "mirror": mirror about it (`c b | a b c`, SciPy's "mirror", OpenCV's
    BORDER_REFLECT_101); "edge": clamp.
    """
    if mode == "edge" or size == 1:
        return np.clip(index, 0, size - 1)
    if mode == "reflect":
        period = 2 * size
        index = np.mod(index, period)
        return np.where(index >= size, period - 1 - index, index)
    period = 2 * size - 2
    index = np.mod(index, period)
    return np.where(index >= size, period - index, index)


def sample_bilinear(images, rows, columns, mode):
    """Bilinear samples of each image at real coordinates: `[N, H', W', C]`.

    `rows` and `columns` are `[N, H', W']` (pixel centres at integers); the 4 neighbours
    of a point are folded into the image by `fold_index(.., mode)`. Computes in the dtype
    of `images`.
    """
    count, height, width, channels = images.shape
    pixels = images.reshape(-1, channels)
    row_floor, column_floor = np.floor(rows), np.floor(columns)
    row_fraction = (rows - row_floor)[..., None].astype(images.dtype)
    column_fraction = (columns - column_floor)[..., None].astype(images.dtype)
    row_floor, column_floor = row_floor.astype(np.int64), column_floor.astype(np.int64)
    first_pixel = (np.arange(count) * height * width)[:, None, None]
    top, bottom = (
        first_pixel + fold_index(row_floor + step, height, mode) * width for step in (0, 1)
    )
    left, right = (fold_index(column_floor + step, width, mode) for step in (0, 1))

    def between(row_start, fraction):
        """Interpolates along the row that starts at flat pixel `row_start`."""
        start = np.take(pixels, row_start + left, axis=0)
        return start + (np.take(pixels, row_start + right, axis=0) - start) * fraction

    upper = between(top, column_fraction)
    return upper + (between(bottom, column_fraction) - upper) * row_fraction


def _zoom_axis(images, axis, factor):
    """The centre zoom along one axis of `centre_zoom`."""
    size = images.shape[axis]
    crop = math.ceil(size / factor)
    start = (size - crop) // 2
    zoomed = int(round(crop * factor))
    trim = (zoomed - size) // 2
    scale = (crop - 1) / (zoomed - 1) if zoomed > 1 else 0.0
    coordinates = (np.arange(size) + trim) * scale
    lower = np.floor(coordinates).astype(np.int64)
    upper = np.minimum(lower + 1, crop - 1)
    fraction = coordinates - lower
    shape = [1] * images.ndim
    shape[axis] = size
    fraction = fraction.reshape(shape).astype(images.dtype)
    below = np.take(images, start + lower, axis=axis)
    above = np.take(images, start + upper, axis=axis)
    above -= below
    above *= fraction
    return below + above


def centre_zoom(images, factor):
    """Zooms NHWC `images` by `factor` >= 1 into their centre, keeping their size.

    Per axis of size `n`: the centre `ceil(n / factor)` pixels (starting at
    `(n - crop) // 2`) are linearly resampled to `round(crop * factor)` pixels with
    corners aligned (SciPy's `ndimage.zoom`, order 1, as the reference's `clipped_zoom`
    does), and the centre `n` of them (from `(zoomed - n) // 2`) are kept. Computes in
    the dtype of `images`.
    """
    return _zoom_axis(_zoom_axis(images, 1, factor), 2, factor)


# ----------------------------------------------------------------------------- colour


def to_hsv(images):
    return tf.image.rgb_to_hsv(images).numpy()


def to_rgb(hsv):
    return tf.image.hsv_to_rgb(hsv.astype(np.float32)).numpy()


# ----------------------------------------------------------------------------- fractals


def plasma_fractals(count, size, decay, rng):
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


def fractal_side(height, width):
    """The side of the plasma fractal that covers an image: the power of 2 >= both sides."""
    return 1 << max(1, math.ceil(math.log2(max(height, width))))
