"""Blur corruptions: defocus, glass, motion and zoom blur (CIFAR-10-C), Gaussian (an extra).

Parameters are CIFAR-10-C's (Hendrycks & Dietterich 2019, `make_cifar_c.py`), in pixels,
for every image size. Differences from the reference code:

* `glass_blur`: the reference "swaps" pixels with a NumPy tuple assignment of two views
  (`x[h, w], x[h', w'] = x[h', w'], x[h, w]`), which copies instead of swapping: each
  pixel of the window takes the value of its neighbour at `(dy, dx)`, drawn from
  `{-1, 0}^2` (`randint(-1, 1)` excludes 1), and since the loop runs from the bottom
  right, every copy reads a value not yet changed. This module does that copy (the
  published data), as one gather per iteration; no rounding to uint8 after the first blur.
* `motion_blur`: the reference calls ImageMagick's `MotionBlurImage` through Wand; here
  the same kernel (`_common.motion_blur_taps`: `2 ceil(radius) + 1` half-Gaussian taps on
  the rounded line, clamped borders) is applied in NumPy, in float (the reference goes
  through 8-bit PNG). One angle per image, uniform in [-45, 45] degrees.
* `zoom_blur`: the zoom factors are exactly those of the reference's
  `np.arange(1, end, 0.01)`, end = 1.06, 1.11, 1.16, 1.21, 1.26, in floating point:
  1.00 .. 1.06, 1.11, 1.15, 1.20 and 1.25 (7, 12, 16, 21 and 26 factors: the first two
  ranges include their end by rounding, and their rounding errors decide some zoomed
  sizes, e.g. 26 * 1.2500000000000002 rounds to 33 pixels where 26 * 1.25 gives 32).
"""

import math

import numpy as np

from supcon_tf.evaluation.corruptions._common import (
    centre_zoom,
    check_images,
    convolve,
    directional_blur,
    finish,
    gaussian_filter,
    gaussian_kernel_1d,
    parameter,
)

# Severity 1..5.
GAUSSIAN_BLUR = (0.4, 0.6, 0.7, 0.8, 1.0)  # sigma in pixels
DEFOCUS_BLUR = ((0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1.0, 0.2), (1.5, 0.1))  # radius, alias
GLASS_BLUR = ((0.05, 1), (0.25, 1), (0.4, 1), (0.25, 2), (0.4, 2))  # sigma, iterations
MOTION_BLUR = ((6, 1.0), (6, 1.5), (6, 2.0), (8, 2.0), (9, 2.5))  # radius, sigma (pixels)
MOTION_ANGLE = 45.0  # angles uniform in [-45, 45] degrees
ZOOM_BLUR = (1.06, 1.11, 1.16, 1.21, 1.26)  # end of np.arange(1, end, 0.01): see above


def gaussian_blur(images, severity=1, seed=0):
    """Gaussian blur of sigma 0.4 .. 1.0 pixels (kernel truncated at 4 sigma, edge padding).

    An extra corruption. `seed` is unused (deterministic); it keeps the common signature.

    Example:

    >>> import numpy as np
    >>> image = np.zeros((1, 9, 9, 1), "float32"); image[0, 4, 4] = 1.0
    >>> blurred = gaussian_blur(image, severity=5)
    >>> 0.1 < float(blurred[0, 4, 4, 0]) < 1.0
    True
    """
    del seed
    images = check_images(images)
    return finish(gaussian_filter(images, parameter(GAUSSIAN_BLUR, severity)))


def disk_kernel(radius, alias_blur):
    """A normalised disk of `radius` pixels, anti-aliased by a 3x3 Gaussian of `alias_blur`."""
    half = int(math.ceil(radius)) + 1
    offsets = np.arange(-half, half + 1)
    rows, columns = np.meshgrid(offsets, offsets, indexing="ij")
    disk = (rows**2 + columns**2 <= radius**2).astype(np.float64)
    disk /= disk.sum()
    weights = gaussian_kernel_1d(alias_blur, 1)
    # The disk is zero on the border of its grid, so zero padding changes nothing.
    smoothed = convolve(disk[None, :, :, None], np.outer(weights, weights), "constant")
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
    images = check_images(images)
    radius, alias_blur = parameter(DEFOCUS_BLUR, severity)
    return finish(convolve(images, disk_kernel(radius, alias_blur), "reflect"))


def glass_offsets(shape, seed):
    """The neighbour offsets of `glass_blur`: int8 `[2, N, H, W, 2]` (iteration, dy/dx).

    Drawn uniformly from {-1, 0} (the reference's `randint(-1, 1)`), for the largest
    number of iterations, so that every severity uses the same draw.
    """
    count, height, width = shape[:3]
    shape = (2, count, height, width, 2)
    return np.random.default_rng(seed).integers(-1, 1, size=shape, dtype=np.int8)


def glass_shuffle(images, offsets):
    """One pass of the glass shuffle: pixel `(y, x)` of the window takes `(y + dy, x + dx)`.

    The window is rows 2..H-1 and columns 2..W-1 (the reference's `range(31, 1, -1)`);
    `offsets` is `[N, H, W, 2]` (dy, dx); other pixels keep their value.
    """
    output = np.array(images, dtype=np.float64)
    height, width = images.shape[1:3]
    if height < 3 or width < 3:
        return output
    rows = np.arange(2, height)[None, :, None]
    columns = np.arange(2, width)[None, None, :]
    image_index = np.arange(images.shape[0])[:, None, None]
    window = offsets[:, 2:, 2:]
    output[:, 2:, 2:] = images[image_index, rows + window[..., 0], columns + window[..., 1]]
    return output


def glass_blur(images, severity=1, seed=0):
    """Frosted glass: Gaussian blur, 1 or 2 local pixel shuffles, Gaussian blur again.

    (sigma, shuffles) = (0.05, 1), (0.25, 1), (0.4, 1), (0.25, 2), (0.4, 2); a shuffle
    copies into each pixel its neighbour up, left, up-left or itself (`glass_shuffle`,
    see the module notes for why a copy, not a swap).

    Example:

    >>> import numpy as np
    >>> glassy = glass_blur(np.random.default_rng(0).random((2, 32, 32, 3)), severity=5)
    >>> glassy.shape
    (2, 32, 32, 3)
    """
    images = check_images(images)
    sigma, iterations = parameter(GLASS_BLUR, severity)
    offsets = glass_offsets(images.shape, seed)
    shuffled = gaussian_filter(images, sigma)
    for iteration in range(iterations):
        shuffled = glass_shuffle(shuffled, offsets[iteration])
    return finish(gaussian_filter(shuffled, sigma))


def motion_angles(count, seed):
    """The blur direction of each image in degrees, uniform in [-45, 45]."""
    return np.random.default_rng(seed).uniform(-MOTION_ANGLE, MOTION_ANGLE, count)


def motion_blur(images, severity=1, seed=0):
    """Motion blur: a one-sided half-Gaussian streak along a random angle per image.

    (radius, sigma) = (6, 1) .. (9, 2.5) pixels; ImageMagick's kernel, applied in NumPy
    (see the module notes).

    Example:

    >>> import numpy as np
    >>> flat = motion_blur(np.full((1, 8, 8, 3), 0.4, "float32"), severity=5)
    >>> bool(np.allclose(flat, 0.4))
    True
    """
    images = check_images(images)
    radius, sigma = parameter(MOTION_BLUR, severity)
    angles = motion_angles(images.shape[0], seed)
    return finish(directional_blur(images, radius, sigma, angles))


def zoom_factors(severity):
    """The zoom factors of `zoom_blur` at `severity`: 1.00, 1.01, .. (see the module notes)."""
    return np.arange(1.0, parameter(ZOOM_BLUR, severity), 0.01)


def zoom_blur(images, severity=1, seed=0):
    """Zoom blur: the mean of the image and its centre zooms by 1.00, 1.01, .. 1.06 .. 1.25.

    `(x + sum_z zoom_z(x)) / (n + 1)` over the `n` factors of `zoom_factors` (the first,
    1.00, is the image itself); `_common.centre_zoom` zooms. `seed` is unused.

    Example:

    >>> import numpy as np
    >>> bool(np.allclose(zoom_blur(np.full((1, 8, 8, 1), 0.7, "float32"), severity=5), 0.7))
    True
    """
    del seed
    images = check_images(images)
    factors = zoom_factors(severity)
    total = np.array(images, dtype=np.float64)
    for factor in factors:
        total += centre_zoom(images, factor)
    return finish(total / (len(factors) + 1))
