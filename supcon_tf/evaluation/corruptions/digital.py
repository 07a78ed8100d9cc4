"""Digital corruptions: contrast, elastic transform, pixelate, JPEG (CIFAR-10-C), saturate.

`saturate` is one of the extra corruptions (not in the 15 of CIFAR-10-C's mCE).
Parameters are CIFAR-10-C's (Hendrycks & Dietterich 2019, `make_cifar_c.py`), in pixels,
for every image size. Differences from the reference code:

* `saturate`: the reference severities (x0.3, x0.1, x1.5, x2+0.1, x2.5+0.2 on HSV
  saturation) first desaturate and then oversaturate, so they are not ordered by
  strength; here the saturation is scaled by (1.5, 2, 2.5, 5, 20) plus
  (0, 0.1, 0.2, 0.2, 0.2): CIFAR-10-C's oversaturating levels 3-5 as levels 1-3, then
  stronger ones up to ImageNet-C's level 5;
* `elastic_transform`: OpenCV's `warpAffine` (bilinear with 1/32-pixel fixed-point
  weights) and SciPy's `map_coordinates` are replaced by exact bilinear sampling in
  NumPy (`_common.sample_bilinear`) with the same borders; the affine's reference square
  is centred at (W // 2, H // 2) in (x, y) (the reference uses (H // 2, W // 2), the same
  on square images);
* images stay float (no rounding to uint8 between steps, except inside JPEG coding).
"""

import numpy as np
import tensorflow as tf

from supcon_tf.errors import DataError
from supcon_tf.evaluation.corruptions._common import (
    check_images,
    finish,
    gaussian_filter,
    parameter,
    sample_bilinear,
    to_hsv,
    to_rgb,
)

# Severity 1..5.
CONTRAST = (0.75, 0.5, 0.4, 0.3, 0.15)  # factor towards the channel means
# alpha (displacement scale), sigma (smoothness), affine jitter: fractions of 32 pixels.
ELASTIC = tuple(
    (32 * alpha, 32 * sigma, 32 * affine)
    for alpha, sigma, affine in (
        (0.0, 0.0, 0.08),
        (0.05, 0.2, 0.07),
        (0.08, 0.06, 0.06),
        (0.1, 0.04, 0.05),
        (0.1, 0.03, 0.03),
    )
)
PIXELATE = (0.95, 0.9, 0.85, 0.75, 0.65)  # relative size of the low-resolution image
JPEG_QUALITY = (80, 65, 58, 50, 40)
SATURATE = ((1.5, 0.0), (2.0, 0.1), (2.5, 0.2), (5.0, 0.2), (20.0, 0.2))  # see above


def contrast(images, severity=1, seed=0):
    """Pulls every channel towards its image mean: `(x - mean) * c + mean`, c = 0.75 .. 0.15.

    `seed` is unused (deterministic).

    Example:

    >>> import numpy as np
    >>> contrast(np.array([[[[0.0]], [[1.0]]]], "float32"), severity=2).ravel().tolist()
    [0.25, 0.75]
    """
    del seed
    images = check_images(images)
    factor = parameter(CONTRAST, severity)
    means = images.mean(axis=(1, 2), keepdims=True)
    return finish((images - means) * factor + means)


def elastic_draws(shape, seed):
    """The random draws of `elastic_transform`, shared by every severity.

    Returns `(affine, fields)`: `[N, 3, 2]` and `[2, N, H, W, 1]` (x then y), U(-1, 1).
    """
    count, height, width = shape[:3]
    rng = np.random.default_rng(seed)
    affine = rng.uniform(-1.0, 1.0, (count, 3, 2))
    fields = rng.uniform(-1.0, 1.0, (2, count, height, width, 1))
    return affine, fields


def affine_source(height, width, jitter):
    """Where each output pixel of the random affine reads: `(rows, columns)`, `[N, H, W]`.

    The three points `(c + s, c + s)`, `(c + s, c - s)`, `(c - s, c - s)` (x, y), with
    `c` the centre and `s = min(H, W) // 3` (at least 1), move by `jitter` (`[N, 3, 2]`, pixels); the
    affine map taking the points to their moved places warps the image, so output pixel
    `p` reads the source at `M^-1 p`.
    """
    centre = np.array([width // 2, height // 2], dtype=np.float64)
    side = max(1, min(height, width) // 3)  # 1 on images under 3 pixels: a valid triangle
    points = np.stack(
        [centre + side, centre + np.array([side, -side]), centre - side]
    )  # [3, 2] (x, y)
    moved = points[None] + jitter
    ones = np.ones(moved.shape[:2] + (1,))
    # [moved | 1] @ inverse^T = points: the inverse map, [N, 3, 2].
    inverse = np.linalg.solve(
        np.concatenate([moved, ones], axis=-1), np.broadcast_to(points, moved.shape)
    )
    rows, columns = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    grid = np.stack([columns, rows, np.ones_like(rows)], axis=-1).astype(np.float64)
    source = np.einsum("hwk,nkd->nhwd", grid, inverse)
    return source[..., 1], source[..., 0]


def elastic_transform(images, severity=1, seed=0):
    """Elastic transform: a random affine warp, then a smooth random displacement field.

    (alpha, sigma, affine jitter) = 32 x (0, 0, 0.08), (0.05, 0.2, 0.07), (0.08, 0.06,
    0.06), (0.1, 0.04, 0.05), (0.1, 0.03, 0.03) pixels. The affine (`affine_source`)
    samples with mirrored borders (`c b | a b c`); the displacement of each axis is
    `alpha * gaussian(U(-1, 1), sigma)` (kernel truncated at 3 sigma, symmetric borders)
    and `output[y, x] = warped[y + dy, x + dx]` with symmetric borders (`b a | a b`);
    both bilinear.

    Example:

    >>> import numpy as np
    >>> images = np.full((2, 8, 8, 3), 0.6, "float32")
    >>> bool(np.allclose(elastic_transform(images, severity=5), images))  # flat stays flat
    True
    """
    images = check_images(images)
    alpha, sigma, jitter = parameter(ELASTIC, severity)
    count, height, width = images.shape[:3]
    affine, fields = elastic_draws(images.shape, seed)
    rows, columns = affine_source(height, width, jitter * affine)
    warped = sample_bilinear(images, rows, columns, "mirror")
    shift_x, shift_y = (
        alpha * gaussian_filter(field, sigma, truncate=3.0, pad_mode="symmetric")[..., 0]
        for field in fields
    )
    grid_rows, grid_columns = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    displaced = sample_bilinear(warped, grid_rows + shift_y, grid_columns + shift_x, "reflect")
    return finish(displaced)


def pixelate(images, severity=1, seed=0):
    """Box-downsamples to `int(size * f)` pixels, f = 0.95 .. 0.65, and box-upsamples back.

    `seed` is unused (deterministic).

    Example:

    >>> import numpy as np
    >>> pixelate(np.random.default_rng(0).random((1, 32, 32, 3)), severity=5).shape
    (1, 32, 32, 3)
    """
    del seed
    images = check_images(images)
    factor = parameter(PIXELATE, severity)
    height, width = images.shape[1:3]
    small = (max(1, int(height * factor)), max(1, int(width * factor)))
    low = tf.image.resize(images, small, method="area", antialias=True)
    return finish(tf.image.resize(low, (height, width), method="area").numpy())


def saturate(images, severity=1, seed=0):
    """Scales the HSV saturation of RGB images: `s * a + b` (see the module notes).

    `seed` is unused (deterministic). Grey images have no saturation: `DataError`.

    Example:

    >>> import numpy as np
    >>> pale = np.array([[[[0.6, 0.5, 0.5]]]], "float32")
    >>> [round(float(value), 2) for value in saturate(pale, severity=1).ravel()]
    [0.6, 0.45, 0.45]
    """
    del seed
    images = check_images(images)
    if images.shape[-1] != 3:
        raise DataError(f"`saturate` needs RGB images (3 channels), got {images.shape[-1]}.")
    scale, offset = parameter(SATURATE, severity)
    hsv = to_hsv(images)
    hsv[..., 1] = np.clip(hsv[..., 1] * scale + offset, 0.0, 1.0)
    return finish(to_rgb(hsv))


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
    >>> grey = np.full((1, 8, 8, 1), 0.5, "float32")
    >>> bool(np.abs(jpeg_compression(grey, severity=5) - grey).max() < 0.01)  # flat survives
    True
    """
    del seed
    images = check_images(images)
    if images.shape[-1] not in (1, 3):
        raise DataError(f"`jpeg_compression` needs 1 or 3 channels, got {images.shape[-1]}.")
    quality = parameter(JPEG_QUALITY, severity)
    encoded = np.round(images * 255.0).astype(np.uint8)
    decoded = _jpeg_round_trip(tf.constant(encoded), quality).numpy()
    return finish(decoded.reshape(images.shape).astype(np.float32) / 255.0)
