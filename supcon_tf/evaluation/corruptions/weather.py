"""Weather corruptions: snow, frost, fog and brightness (CIFAR-10-C).

Parameters are CIFAR-10-C's (Hendrycks & Dietterich 2019, `make_cifar_c.py`), in pixels,
for every image size. Differences from the reference code:

* `snow`: the snow layer is streaked by ImageMagick's motion-blur kernel applied in NumPy
  (`_common.directional_blur`), in float, not through 8-bit PNG; one angle per image,
  uniform in [-135, -45] degrees.
* `frost`: CIFAR-10-C blends the image with crops of six photographs of frost, which are
  not available here. `frost_textures` draws a procedural stand-in from the seed: the
  ridges `(1 - |2F - 1|)^4` of a plasma fractal `F` (thin bright veins along its level
  line 0.5, like ice crystals), tinted pale blue on RGB images. The blend,
  `a x + b T`, and its severities are CIFAR-10-C's; the texture's brightness (mean
  about 0.3) and structure are not the photographs', so frost errors are not
  comparable with published CIFAR-10-C frost errors.
* `fog` draws one fractal per image.
"""

import numpy as np

from supcon_tf.errors import DataError
from supcon_tf.evaluation.corruptions._common import (
    centre_zoom,
    check_images,
    directional_blur,
    finish,
    fractal_side,
    luminance,
    parameter,
    plasma_fractals,
    to_hsv,
    to_rgb,
)

# Severity 1..5.
# mean, std, zoom, threshold of the snow layer; motion-blur radius, sigma; image blend.
SNOW = (
    (0.1, 0.2, 1.0, 0.6, 8, 3.0, 0.95),
    (0.1, 0.2, 1.0, 0.5, 10, 4.0, 0.9),
    (0.15, 0.3, 1.75, 0.55, 10, 4.0, 0.9),
    (0.25, 0.3, 2.25, 0.6, 12, 6.0, 0.85),
    (0.3, 0.3, 1.25, 0.65, 14, 12.0, 0.8),
)
SNOW_ANGLES = (-135.0, -45.0)  # degrees: the flakes fall down, within 45 degrees
FROST = ((1.0, 0.2), (1.0, 0.3), (0.9, 0.4), (0.85, 0.4), (0.75, 0.45))  # image, texture
FROST_DECAY = 1.6  # roughness of the stand-in texture's fractal
FROST_TINT = (0.85, 0.93, 1.0)  # pale ice blue, RGB
FOG = ((0.2, 3.0), (0.5, 3.0), (0.75, 2.5), (1.0, 2.0), (1.5, 1.75))  # strength, decay
BRIGHTNESS = (0.05, 0.1, 0.15, 0.2, 0.3)  # added to HSV value


def _grey_or_rgb(images, name):
    if images.shape[-1] not in (1, 3):
        raise DataError(
            f"`{name}` needs 1 (grey) or 3 (RGB) channels, got {images.shape[-1]}; leave it "
            "out of the corruptions of such images."
        )


def snow_layers(shape, severity, seed):
    """The snow of `snow` before it is added: `[N, H, W, 1]` in [0, 1].

    A Gaussian field (mean, std) per pixel, zoomed into its centre, values below the
    threshold set to 0, clipped, then streaked by motion blur at one angle per image.
    Every severity uses the same normal draw and angles.
    """
    mean, std, zoom, threshold, radius, sigma, _ = parameter(SNOW, severity)
    count, height, width = shape[:3]
    rng = np.random.default_rng(seed)
    normal = rng.standard_normal((count, height, width, 1))
    angles = rng.uniform(*SNOW_ANGLES, count)
    layer = centre_zoom(mean + std * normal, zoom)
    layer = np.clip(np.where(layer < threshold, 0.0, layer), 0.0, 1.0)
    return directional_blur(layer, radius, sigma, angles)


def snow(images, severity=1, seed=0):
    """Snow: whitens the image towards its grey level and adds streaked flakes.

    `clip(b x + (1 - b) max(x, 1.5 grey(x) + 0.5) + S + rot180(S))` with `S` from
    `snow_layers` and `b` = 0.95 .. 0.8 (grey = Rec. 601 luminance). Grey or RGB images.

    Example:

    >>> import numpy as np
    >>> snowy = snow(np.zeros((2, 32, 32, 3), "float32"), severity=5, seed=0)
    >>> float(snowy.mean()) > 0.1
    True
    """
    images = check_images(images)
    _grey_or_rgb(images, "snow")
    blend = parameter(SNOW, severity)[-1]
    layer = snow_layers(images.shape, severity, seed)
    whitened = np.maximum(images, luminance(images) * 1.5 + 0.5)
    mixed = blend * images + (1 - blend) * whitened
    return finish(mixed + layer + layer[:, ::-1, ::-1])


def frost_textures(shape, seed):
    """The stand-in frost of `frost`: `[N, H, W, C]` in [0, 1] (see the module notes).

    One plasma fractal `F` (decay 1.6) per image, cropped to the image; the texture is
    `(1 - |2F - 1|)^4`, times `FROST_TINT` per channel for RGB images.
    """
    count, height, width, channels = shape
    side = fractal_side(height, width)
    fractals = plasma_fractals(count, side, FROST_DECAY, np.random.default_rng(seed))
    texture = (1.0 - np.abs(2.0 * fractals[:, :height, :width, None] - 1.0)) ** 4
    if channels == 3:
        return texture * np.array(FROST_TINT)
    return np.repeat(texture, channels, axis=-1)


def frost(images, severity=1, seed=0):
    """Frost: `clip(a x + b T)` with a frost texture `T`, (a, b) = (1, 0.2) .. (0.75, 0.45).

    `T` is a procedural stand-in for CIFAR-10-C's frost photographs (`frost_textures`).

    Example:

    >>> import numpy as np
    >>> float(frost(np.zeros((1, 8, 8, 1), "float32"), severity=3).max()) <= 0.4
    True
    """
    images = check_images(images)
    image_weight, texture_weight = parameter(FROST, severity)
    texture = frost_textures(images.shape, seed)
    return finish(image_weight * images + texture_weight * texture)


def fog(images, severity=1, seed=0):
    """Fog: adds a plasma fractal `c * F` and rescales, `(x + c F) * m / (m + c)`.

    `m` is the image's maximum, (c, fractal decay) = (0.2, 3) .. (1.5, 1.75); the
    fractal (`_common.plasma_fractals`) is drawn per image from `seed`.

    Example:

    >>> import numpy as np
    >>> foggy = fog(np.random.default_rng(0).random((2, 32, 32, 3)), severity=5, seed=1)
    >>> foggy.shape, float(foggy.max()) <= 1.0
    ((2, 32, 32, 3), True)
    """
    images = check_images(images)
    strength, decay = parameter(FOG, severity)
    height, width = images.shape[1:3]
    size = fractal_side(height, width)
    fractals = plasma_fractals(images.shape[0], size, decay, np.random.default_rng(seed))
    maximum = images.max(axis=(1, 2, 3), keepdims=True)
    foggy = images + strength * fractals[:, :height, :width, None]
    return finish(foggy * maximum / (maximum + strength))


def brightness(images, severity=1, seed=0):
    """Adds 0.05 .. 0.3 to the HSV value of RGB images (to the intensity of grey images).

    `seed` is unused (deterministic).

    Example:

    >>> import numpy as np
    >>> round(float(brightness(np.full((1, 2, 2, 1), 0.5, "float32"), severity=5).max()), 6)
    0.8
    """
    del seed
    images = check_images(images)
    shift = parameter(BRIGHTNESS, severity)
    _grey_or_rgb(images, "brightness")
    if images.shape[-1] == 1:
        return finish(images + np.float32(shift))
    hsv = to_hsv(images)
    hsv[..., 2] = np.clip(hsv[..., 2] + shift, 0.0, 1.0)
    return finish(to_rgb(hsv))
