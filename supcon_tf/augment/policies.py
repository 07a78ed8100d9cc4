"""Image augmentations for contrastive pretraining, as Keras 3 layers.

The SupCon paper (Khosla et al., 2020, Table 4 and Appendix) compares four policies:
SimAugment (SimCLR's), AutoAugment, RandAugment and Stacked RandAugment. This module
builds them from Keras' own random layers (`RandomFlip`, `RandomColorJitter`,
`RandomGrayscale`, `RandomGaussianBlur`) plus the pieces Keras does not ship:

* `RandomResizedCrop`: SimCLR's (Inception-style) crop of a random area and aspect
  ratio, resized back to the output size, with a different box for every image.
* `RandomApply`: applies a layer to each image of a batch with probability `rate`.
* `AutoAugment`: the published ImageNet and CIFAR-10 policies of Cubuk et al. (2019).
* `RandAugment`: Cubuk et al. (2020), `num_layers` operations drawn for every image.
* `ColorDistortion`: SimCLR's colour jitter (p = 0.8) then grayscale (p = 0.2).

Convention: images are float32 in `[0, 1]`, shape `[H, W, C]` or `[B, H, W, C]`,
with 1 or 3 channels.
Every layer draws its randomness from a `keras.random.SeedGenerator`, acts only when
called with `training=True` (the default outside a model, as for Keras' own
augmentation layers), and runs eagerly, inside a model, and inside `tf.data.map`.
The layers written here also compile under XLA (`jit_compile=True`).

Example:

>>> import numpy as np
>>> augmenter = build_augmenter("simaugment", seed=0, strength=0.5)
>>> images = np.random.default_rng(0).random((2, 32, 32, 3)).astype("float32")
>>> views = augmenter(images, training=True)
>>> tuple(views.shape), float(np.min(views)) >= 0.0, float(np.max(views)) <= 1.0
((2, 32, 32, 3), True, True)
"""

import math
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

AUGMENTATIONS = (
    "none",
    "simple",
    "translate",
    "simaugment",
    "randaugment",
    "autoaugment",
    "stacked_randaugment",
)

# The AutoAugment policies of Cubuk et al. (2019), as published in the paper's appendix:
# 25 sub-policies of two (operation, probability, magnitude index 0..9) each; magnitude
# None for operations without one.
AUTOAUGMENT_POLICIES = {
    "imagenet": (
        (("Posterize", 0.4, 8), ("Rotate", 0.6, 9)),
        (("Solarize", 0.6, 5), ("AutoContrast", 0.6, None)),
        (("Equalize", 0.8, None), ("Equalize", 0.6, None)),
        (("Posterize", 0.6, 7), ("Posterize", 0.6, 6)),
        (("Equalize", 0.4, None), ("Solarize", 0.2, 4)),
        (("Equalize", 0.4, None), ("Rotate", 0.8, 8)),
        (("Solarize", 0.6, 3), ("Equalize", 0.6, None)),
        (("Posterize", 0.8, 5), ("Equalize", 1.0, None)),
        (("Rotate", 0.2, 3), ("Solarize", 0.6, 8)),
        (("Equalize", 0.6, None), ("Posterize", 0.4, 6)),
        (("Rotate", 0.8, 8), ("Color", 0.4, 0)),
        (("Rotate", 0.4, 9), ("Equalize", 0.6, None)),
        (("Equalize", 0.0, None), ("Equalize", 0.8, None)),
        (("Invert", 0.6, None), ("Equalize", 1.0, None)),
        (("Color", 0.6, 4), ("Contrast", 1.0, 8)),
        (("Rotate", 0.8, 8), ("Color", 1.0, 2)),
        (("Color", 0.8, 8), ("Solarize", 0.8, 7)),
        (("Sharpness", 0.4, 7), ("Invert", 0.6, None)),
        (("ShearX", 0.6, 5), ("Equalize", 1.0, None)),
        (("Color", 0.4, 0), ("Equalize", 0.6, None)),
        (("Equalize", 0.4, None), ("Solarize", 0.2, 4)),
        (("Solarize", 0.6, 5), ("AutoContrast", 0.6, None)),
        (("Invert", 0.6, None), ("Equalize", 1.0, None)),
        (("Color", 0.6, 4), ("Contrast", 1.0, 8)),
        (("Equalize", 0.8, None), ("Equalize", 0.6, None)),
    ),
    "cifar10": (
        (("Invert", 0.1, None), ("Contrast", 0.2, 6)),
        (("Rotate", 0.7, 2), ("TranslateX", 0.3, 9)),
        (("Sharpness", 0.8, 1), ("Sharpness", 0.9, 3)),
        (("ShearY", 0.5, 8), ("TranslateY", 0.7, 9)),
        (("AutoContrast", 0.5, None), ("Equalize", 0.9, None)),
        (("ShearY", 0.2, 7), ("Posterize", 0.3, 7)),
        (("Color", 0.4, 3), ("Brightness", 0.6, 7)),
        (("Sharpness", 0.3, 9), ("Brightness", 0.7, 9)),
        (("Equalize", 0.6, None), ("Equalize", 0.5, None)),
        (("Contrast", 0.6, 7), ("Sharpness", 0.6, 5)),
        (("Color", 0.7, 7), ("TranslateX", 0.5, 8)),
        (("Equalize", 0.3, None), ("AutoContrast", 0.4, None)),
        (("TranslateY", 0.4, 3), ("Sharpness", 0.2, 6)),
        (("Brightness", 0.9, 6), ("Color", 0.2, 8)),
        (("Solarize", 0.5, 2), ("Invert", 0.0, None)),
        (("Equalize", 0.2, None), ("AutoContrast", 0.6, None)),
        (("Equalize", 0.2, None), ("Equalize", 0.6, None)),
        (("Color", 0.9, 9), ("Equalize", 0.6, None)),
        (("AutoContrast", 0.8, None), ("Solarize", 0.2, 8)),
        (("Brightness", 0.1, 3), ("Color", 0.7, 0)),
        (("Solarize", 0.4, 5), ("AutoContrast", 0.9, None)),
        (("TranslateY", 0.9, 9), ("TranslateY", 0.7, 9)),
        (("AutoContrast", 0.9, None), ("Solarize", 0.8, 3)),
        (("Equalize", 0.8, None), ("Invert", 0.1, None)),
        (("TranslateY", 0.7, 9), ("AutoContrast", 0.9, None)),
    ),
}

# The 14 operations RandAugment draws from (Cubuk et al., 2020, Section 3).
RANDAUGMENT_OPERATIONS = (
    "Identity",
    "AutoContrast",
    "Equalize",
    "Rotate",
    "Solarize",
    "Color",
    "Posterize",
    "Contrast",
    "Brightness",
    "Sharpness",
    "ShearX",
    "ShearY",
    "TranslateX",
    "TranslateY",
)

# Largest values of the geometric operations (AutoAugment paper, Table 6): shear 0.3,
# translation 150 of 331 pixels, rotation 30 degrees.
_MAX_SHEAR = 0.3
_MAX_TRANSLATE = 150.0 / 331.0
_MAX_ROTATE_DEGREES = 30.0


# ---------------------------------------------------------------------------------------
# Image operations on float [0, 1] batches [B, H, W, C] with one parameter per image [B].
# Pure TensorFlow, graph- and XLA-compatible. They follow the PIL definitions that the
# AutoAugment policies were searched with.
# ---------------------------------------------------------------------------------------


def _per_image(values):
    """Reshapes per-image values `[B]` to broadcast against images `[B, H, W, C]`."""
    return tf.reshape(values, [-1, 1, 1, 1])


def _luminance(images):
    """ITU-R 601-2 luma (PIL's `convert("L")`), `[B, H, W, 1]`; grayscale passes through."""
    if images.shape[-1] != 3:
        return images[..., :1]
    weights = tf.constant([0.299, 0.587, 0.114], images.dtype)
    return tf.reduce_sum(images * weights, axis=-1, keepdims=True)


def _blend(degenerate, images, factor):
    """PIL's `ImageEnhance`: `degenerate + factor * (images - degenerate)`, clipped."""
    return tf.clip_by_value(degenerate + _per_image(factor) * (images - degenerate), 0.0, 1.0)


def _to_levels(images):
    """8-bit integer levels of `[0, 1]` images, as int32."""
    return tf.cast(tf.round(tf.clip_by_value(images, 0.0, 1.0) * 255.0), tf.int32)


def _color(images, factor):
    return _blend(_luminance(images), images, factor)


def _contrast(images, factor):
    mean = tf.reduce_mean(_luminance(images), axis=[1, 2, 3], keepdims=True)
    return _blend(mean, images, factor)


def _brightness(images, factor):
    return _blend(tf.zeros_like(images), images, factor)


def _sharpness(images, factor):
    """PIL's Sharpness: blend with the SMOOTH-filtered image; border pixels unchanged."""
    channels = images.shape[-1]
    kernel = tf.constant([[1.0, 1.0, 1.0], [1.0, 5.0, 1.0], [1.0, 1.0, 1.0]]) / 13.0
    kernel = tf.tile(kernel[:, :, None, None], [1, 1, channels, 1])
    smooth = tf.nn.depthwise_conv2d(images, kernel, [1, 1, 1, 1], padding="SAME")
    height, width = tf.shape(images)[1], tf.shape(images)[2]
    rows = tf.range(height)[:, None]
    columns = tf.range(width)[None, :]
    interior = (rows > 0) & (rows < height - 1) & (columns > 0) & (columns < width - 1)
    degenerate = tf.where(interior[None, :, :, None], smooth, images)
    return _blend(degenerate, images, factor)


def _solarize(images, threshold):
    """Inverts the pixels whose 8-bit level is at least `threshold` (in 0..256)."""
    return tf.where(images * 255.0 >= _per_image(threshold), 1.0 - images, images)


def _posterize(images, bits):
    """Keeps the `bits` most significant bits of each 8-bit level."""
    step = tf.cast(2 ** (8 - tf.cast(bits, tf.int32)), tf.int32)
    levels = _to_levels(images)
    levels = levels - tf.math.floormod(levels, _per_image(step))
    return tf.cast(levels, images.dtype) / 255.0


def _invert(images):
    return 1.0 - images


def _autocontrast(images):
    """Stretches each channel of each image to the full `[0, 1]` range."""
    low = tf.reduce_min(images, axis=[1, 2], keepdims=True)
    high = tf.reduce_max(images, axis=[1, 2], keepdims=True)
    spread = high - low
    stretched = (images - low) / tf.where(spread > 0, spread, tf.ones_like(spread))
    return tf.where(spread > 0, stretched, images)


def _equalize(images):
    """PIL's `ImageOps.equalize`: per image and channel, on 8-bit levels."""
    shape = tf.shape(images)
    batch, channels = shape[0], shape[3]
    levels = _to_levels(images)
    # One histogram of 256 bins per (image, channel), from a single segment sum.
    histogram_ids = (
        tf.range(batch)[:, None, None, None] * channels + tf.range(channels)[None, None, None]
    ) * 256 + levels
    histograms = tf.math.unsorted_segment_sum(
        tf.ones([tf.size(levels)], tf.int32),
        tf.reshape(histogram_ids, [-1]),
        batch * channels * 256,
    )
    histograms = tf.reshape(histograms, [batch * channels, 256])
    top_level = tf.reduce_max(
        tf.reshape(tf.transpose(levels, [0, 3, 1, 2]), [batch * channels, -1]), 1
    )
    top_count = tf.gather(histograms, top_level, batch_dims=1)
    step = (tf.reduce_sum(histograms, axis=1) - top_count) // 255
    safe_step = tf.maximum(step, 1)[:, None]
    below = tf.cumsum(histograms, axis=1, exclusive=True)
    table = tf.minimum((below + safe_step // 2) // safe_step, 255)
    equalized = tf.gather(tf.reshape(table, [-1]), histogram_ids)
    equalized = tf.cast(equalized, images.dtype) / 255.0
    identity = tf.reshape(step == 0, [batch, 1, 1, channels])
    return tf.where(identity, images, equalized)


def _bilinear_sample(images, rows, columns, fill_value=None):
    """Samples `images` at fractional pixel coordinates with bilinear interpolation.

    Args:
        images: `[B, H, W, C]`.
        rows, columns: `[B, H', W']` source coordinates (pixel centres are integers).
        fill_value: value of samples outside the image; None clamps to the edge.

    Returns:
        `[B, H', W', C]`.
    """
    shape = tf.shape(images)
    batch, height, width = shape[0], shape[1], shape[2]
    if fill_value is None:
        rows = tf.clip_by_value(rows, 0.0, tf.cast(height - 1, rows.dtype))
        columns = tf.clip_by_value(columns, 0.0, tf.cast(width - 1, columns.dtype))
    flat = tf.reshape(images, [-1, shape[3]])
    offsets = tf.reshape(tf.range(batch) * height * width, [-1, 1, 1])
    top, left = tf.floor(rows), tf.floor(columns)
    row_weight = (rows - top)[..., None]
    column_weight = (columns - left)[..., None]
    top, left = tf.cast(top, tf.int32), tf.cast(left, tf.int32)

    def corner(row, column):
        inside = (row >= 0) & (row < height) & (column >= 0) & (column < width)
        index = offsets + tf.clip_by_value(row, 0, height - 1) * width
        index += tf.clip_by_value(column, 0, width - 1)
        values = tf.gather(flat, index)
        if fill_value is None:
            return values
        return tf.where(inside[..., None], values, tf.cast(fill_value, images.dtype))

    upper = (1.0 - column_weight) * corner(top, left) + column_weight * corner(top, left + 1)
    lower = (1.0 - column_weight) * corner(top + 1, left)
    lower += column_weight * corner(top + 1, left + 1)
    return (1.0 - row_weight) * upper + row_weight * lower


def _affine(images, matrix, fill_value):
    """Warps each image about its centre: source = matrix @ (x, y, 1), per image.

    `matrix` is `[B, 2, 3]` mapping centred output coordinates (x right, y down) to
    centred source coordinates, as PIL's `Image.transform(AFFINE)` does.
    """
    shape = tf.shape(images)
    height, width = tf.cast(shape[1], images.dtype), tf.cast(shape[2], images.dtype)
    rows = tf.range(height, dtype=images.dtype) - (height - 1.0) / 2.0
    columns = tf.range(width, dtype=images.dtype) - (width - 1.0) / 2.0
    grid_rows, grid_columns = tf.meshgrid(rows, columns, indexing="ij")
    coefficient = [tf.reshape(matrix[:, i // 3, i % 3], [-1, 1, 1]) for i in range(6)]
    source_columns = coefficient[0] * grid_columns + coefficient[1] * grid_rows + coefficient[2]
    source_rows = coefficient[3] * grid_columns + coefficient[4] * grid_rows + coefficient[5]
    return _bilinear_sample(
        images, source_rows + (height - 1.0) / 2.0, source_columns + (width - 1.0) / 2.0, fill_value
    )


def _affine_matrix(a, b, c, d, e, f):
    """Stacks per-image coefficients `[B]` into `[B, 2, 3]` matrices."""
    return tf.stack([tf.stack([a, b, c], axis=-1), tf.stack([d, e, f], axis=-1)], axis=1)


def _shear_x_matrix(shear, height, width):
    one, zero = tf.ones_like(shear), tf.zeros_like(shear)
    return _affine_matrix(one, shear, zero, zero, one, zero)


def _shear_y_matrix(shear, height, width):
    one, zero = tf.ones_like(shear), tf.zeros_like(shear)
    return _affine_matrix(one, zero, zero, shear, one, zero)


def _translate_x_matrix(fraction, height, width):
    one, zero = tf.ones_like(fraction), tf.zeros_like(fraction)
    return _affine_matrix(one, zero, -fraction * width, zero, one, zero)


def _translate_y_matrix(fraction, height, width):
    one, zero = tf.ones_like(fraction), tf.zeros_like(fraction)
    return _affine_matrix(one, zero, zero, zero, one, -fraction * height)


def _rotate_matrix(degrees, height, width):
    """Counter-clockwise rotation by `degrees` about the image centre."""
    radians = degrees * (math.pi / 180.0)
    cosine, sine = tf.cos(radians), tf.sin(radians)
    zero = tf.zeros_like(degrees)
    return _affine_matrix(cosine, -sine, zero, sine, cosine, zero)


def _warp_with(matrix_function):
    """Turns a per-image matrix function into an image operation `(images, value, fill)`."""

    def operation(images, value, fill_value):
        height = tf.cast(tf.shape(images)[1], images.dtype)
        width = tf.cast(tf.shape(images)[2], images.dtype)
        return _affine(images, matrix_function(value, height, width), fill_value)

    return operation


_shear_x = _warp_with(_shear_x_matrix)
_shear_y = _warp_with(_shear_y_matrix)
_translate_x = _warp_with(_translate_x_matrix)
_translate_y = _warp_with(_translate_y_matrix)
_rotate = _warp_with(_rotate_matrix)


def _enhance_factor(level):
    return 0.1 + 1.8 * level


# Pixel operations: (images, level in [0, 1]) -> images. The level is the magnitude as a
# fraction of the largest one. Every operation grows stronger with the level except the
# enhancement ones, whose published factor 0.1 + 1.8 * level is the identity at 0.5.
_OPERATIONS = {
    "Identity": lambda images, level: images,
    "AutoContrast": lambda images, level: _autocontrast(images),
    "Equalize": lambda images, level: _equalize(images),
    "Invert": lambda images, level: _invert(images),
    "Solarize": lambda images, level: _solarize(images, 256.0 * (1.0 - level)),
    "Posterize": lambda images, level: _posterize(images, 8.0 - tf.round(4.0 * level)),
    "Color": lambda images, level: _color(images, _enhance_factor(level)),
    "Contrast": lambda images, level: _contrast(images, _enhance_factor(level)),
    "Brightness": lambda images, level: _brightness(images, _enhance_factor(level)),
    "Sharpness": lambda images, level: _sharpness(images, _enhance_factor(level)),
}

# Geometric operations: (level, sign +-1, height, width) -> [B, 2, 3] affine matrices.
# All geometric operations of one stage share a single warp.
_GEOMETRIC_OPERATIONS = {
    "ShearX": lambda level, sign, h, w: _shear_x_matrix(sign * _MAX_SHEAR * level, h, w),
    "ShearY": lambda level, sign, h, w: _shear_y_matrix(sign * _MAX_SHEAR * level, h, w),
    "TranslateX": lambda level, sign, h, w: _translate_x_matrix(
        sign * _MAX_TRANSLATE * level, h, w
    ),
    "TranslateY": lambda level, sign, h, w: _translate_y_matrix(
        sign * _MAX_TRANSLATE * level, h, w
    ),
    "Rotate": lambda level, sign, h, w: _rotate_matrix(sign * _MAX_ROTATE_DEGREES * level, h, w),
}


def _apply_operations(images, names, transformation, fill_value):
    """Applies per-image operations, stage after stage.

    Args:
        images: `[B, H, W, C]`.
        names: the operation names that `transformation["operations"]` indexes.
        transformation: dict of `[B, S]` tensors: `operations` (int32 indices into
            `names`), `levels` (float in [0, 1]), `signs` (+-1) and `apply` (bool).
        fill_value: value for pixels that geometric operations bring in.

    Each pixel operation is computed only when some image of the batch needs it; the
    geometric operations of a stage share one warp with a per-image matrix.
    """
    num_stages = transformation["operations"].shape[1]
    height = tf.cast(tf.shape(images)[1], images.dtype)
    width = tf.cast(tf.shape(images)[2], images.dtype)
    for stage in range(num_stages):
        levels = transformation["levels"][:, stage]
        signs = transformation["signs"][:, stage]
        operations = transformation["operations"][:, stage]
        applied = transformation["apply"][:, stage]
        matrix = _shear_x_matrix(tf.zeros_like(levels), height, width)
        warped = tf.zeros_like(applied)
        for index, name in enumerate(names):
            chosen = applied & tf.equal(operations, index)
            if name in _GEOMETRIC_OPERATIONS:
                candidate = _GEOMETRIC_OPERATIONS[name](levels, signs, height, width)
                matrix = tf.where(chosen[:, None, None], candidate, matrix)
                warped |= chosen
            elif name != "Identity":
                images = _update_subset(images, chosen, _OPERATIONS[name], levels)
        if any(name in _GEOMETRIC_OPERATIONS for name in names):
            images = _update_subset(
                images, warped, lambda subset, matrix: _affine(subset, matrix, fill_value), matrix
            )
    return images


def _update_subset(images, chosen, operation, parameters):
    """Applies `operation(images[chosen], parameters[chosen])` to the chosen images only.

    Only the chosen images are computed (the batch is gathered and scattered back), so
    a policy costs about `num_stages` operations per image rather than one per distinct
    operation; the subset has a dynamic size, which XLA handles as a bounded shape.
    """
    indices = tf.where(chosen)
    changed = operation(tf.gather_nd(images, indices), tf.gather_nd(parameters, indices))
    return tf.tensor_scatter_nd_update(images, indices, changed)


def _as_batch(images):
    """Returns `(images as float32 [B, H, W, C], whether the input was a single image)`."""
    images = tf.convert_to_tensor(images)
    if not images.dtype.is_floating:
        raise ValueError(
            f"Images must be floating point in [0, 1], got dtype {images.dtype.name}; "
            "divide uint8 images by 255 first."
        )
    images = tf.cast(images, tf.float32)
    rank = images.shape.rank
    if rank not in (3, 4):
        raise ValueError(
            f"Images must have shape [H, W, C] or [B, H, W, C], got shape {images.shape}."
        )
    if rank == 3:
        return images[None], True
    return images, False


def _check_rate(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise ValueError(f"`{name}` must be a probability in [0, 1], got {value!r}.")
    return float(value)


def _check_range(name, value, low, high):
    if (
        not isinstance(value, (tuple, list))
        or len(value) != 2
        or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
        or not low < value[0] <= value[1] <= high
    ):
        raise ValueError(
            f"`{name}` must be a pair (minimum, maximum) with {low} < minimum <= maximum "
            f"<= {high}, got {value!r}."
        )
    return (float(value[0]), float(value[1]))


def _check_fill_value(fill_value):
    if isinstance(fill_value, bool) or not isinstance(fill_value, (int, float)):
        raise ValueError(f"`fill_value` must be a number in [0, 1], got {fill_value!r}.")
    if not 0 <= fill_value <= 1:
        raise ValueError(f"`fill_value` must be a number in [0, 1], got {fill_value}.")
    return float(fill_value)


# ---------------------------------------------------------------------------------------
# Layers.
# ---------------------------------------------------------------------------------------


@keras.saving.register_keras_serializable(package="supcon_tf")
class RandomResizedCrop(keras.layers.Layer):
    """Crops a random area and aspect ratio of each image, resized to the output size.

    SimCLR's crop (Chen et al., 2020; Szegedy et al., 2015): for every image a box of
    `area` (fraction of the image, uniform in `area_range`) and aspect ratio
    `width / height` (log-uniform in `aspect_ratio_range`) is placed uniformly at
    random inside the image and resized bilinearly to `(height, width)`. A box that does
    not fit is drawn again, up to 10 times, then the whole image is used. When not
    training, the whole image is resized to the output size.

    Args:
        height: output height; None keeps the input height.
        width: output width; None keeps the input width.
        area_range: `(minimum, maximum)` fraction of the image area: `(0.08, 1.0)` for
            ImageNet (SimCLR), `(0.2, 1.0)` for CIFAR-10 (SupCon's code).
        aspect_ratio_range: `(minimum, maximum)` of `width / height`.
        seed: integer seed for reproducible draws.

    Call arguments:
        images: `[B, H, W, C]` or `[H, W, C]` float images in `[0, 1]`.
        training: crop when True (the default); resize only when False.

    Example:

    >>> import numpy as np
    >>> layer = RandomResizedCrop(16, 16, area_range=(0.2, 1.0), seed=0)
    >>> tuple(layer(np.ones((4, 32, 32, 3), "float32")).shape)
    (4, 16, 16, 3)
    """

    _ATTEMPTS = 10

    def __init__(
        self,
        height=None,
        width=None,
        area_range=(0.08, 1.0),
        aspect_ratio_range=(3 / 4, 4 / 3),
        seed=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        for name, size in (("height", height), ("width", width)):
            if size is not None and (
                isinstance(size, bool) or not isinstance(size, int) or size < 1
            ):
                raise ValueError(f"`{name}` must be a positive integer or None, got {size!r}.")
        self.height = height
        self.width = width
        self.area_range = _check_range("area_range", area_range, 0.0, 1.0)
        self.aspect_ratio_range = _check_range(
            "aspect_ratio_range", aspect_ratio_range, 0.0, float("inf")
        )
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def _output_size(self, input_shape):
        height = self.height if self.height is not None else input_shape[-3]
        width = self.width if self.width is not None else input_shape[-2]
        if height is None or width is None:
            raise ValueError(
                "RandomResizedCrop needs a static input height and width when `height` or "
                f"`width` is None; got input shape {input_shape}. Pass `height` and `width`."
            )
        return height, width

    def build(self, input_shape):
        # Nothing to create; defining build stops Keras from tracing `call` to build.
        pass

    def get_random_transformation(self, batch_size, image_height, image_width):
        """Draws one box per image: `[B]` tensors `top`, `left`, `height`, `width` in pixels."""
        image_height = tf.cast(image_height, tf.float32)
        image_width = tf.cast(image_width, tf.float32)
        shape = (batch_size, self._ATTEMPTS)
        area = keras.random.uniform(shape, *self.area_range, seed=self.seed_generator) * (
            image_height * image_width
        )
        log_ratio = keras.random.uniform(
            shape,
            math.log(self.aspect_ratio_range[0]),
            math.log(self.aspect_ratio_range[1]),
            seed=self.seed_generator,
        )
        ratio = tf.exp(log_ratio)
        box_width = tf.sqrt(area * ratio)
        box_height = tf.sqrt(area / ratio)
        fits = (box_width <= image_width) & (box_height <= image_height)
        first_fit = tf.argmax(tf.cast(fits, tf.int32), axis=1, output_type=tf.int32)
        any_fit = tf.reduce_any(fits, axis=1)
        box_width = tf.where(any_fit, tf.gather(box_width, first_fit, batch_dims=1), image_width)
        box_height = tf.where(any_fit, tf.gather(box_height, first_fit, batch_dims=1), image_height)
        position = keras.random.uniform((batch_size, 2), seed=self.seed_generator)
        return {
            "top": position[:, 0] * (image_height - box_height),
            "left": position[:, 1] * (image_width - box_width),
            "height": box_height,
            "width": box_width,
        }

    def transform_images(self, images, transformation, output_height, output_width):
        """Crops the boxes of `transformation` and resizes them (pixel-centre aligned)."""

        def coordinates(start, extent, size):
            steps = (tf.range(size, dtype=tf.float32) + 0.5) / size
            return start[:, None] + steps[None, :] * extent[:, None] - 0.5

        rows = coordinates(transformation["top"], transformation["height"], output_height)
        columns = coordinates(transformation["left"], transformation["width"], output_width)
        rows = tf.tile(rows[:, :, None], [1, 1, output_width])
        columns = tf.tile(columns[:, None, :], [1, output_height, 1])
        return _bilinear_sample(images, rows, columns)

    def call(self, images, training=True):
        images, single = _as_batch(images)
        output_height, output_width = self._output_size(images.shape)
        shape = tf.shape(images)
        if training:
            transformation = self.get_random_transformation(shape[0], shape[1], shape[2])
        else:
            transformation = {
                "top": tf.zeros([shape[0]]),
                "left": tf.zeros([shape[0]]),
                "height": tf.fill([shape[0]], tf.cast(shape[1], tf.float32)),
                "width": tf.fill([shape[0]], tf.cast(shape[2], tf.float32)),
            }
        if not training and (output_height, output_width) == tuple(images.shape[1:3]):
            outputs = images
        else:
            outputs = self.transform_images(images, transformation, output_height, output_width)
        return outputs[0] if single else outputs

    def compute_output_shape(self, input_shape):
        height, width = self._output_size(input_shape)
        return (*input_shape[:-3], height, width, input_shape[-1])

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "height": self.height,
                "width": self.width,
                "area_range": self.area_range,
                "aspect_ratio_range": self.aspect_ratio_range,
                "seed": self.seed,
            }
        )
        return config


@keras.saving.register_keras_serializable(package="supcon_tf")
class RandomApply(keras.layers.Layer):
    """Applies a layer to each image of a batch independently with probability `rate`.

    The wrapped layer runs on the whole batch; each image keeps its result with
    probability `rate` and its input otherwise (SimCLR's `random_apply`, per image).

    Args:
        layer: a Keras layer mapping images to images of the same shape.
        rate: probability of applying `layer` to an image.
        seed: integer seed for reproducible draws.

    Call arguments:
        images: `[B, H, W, C]` or `[H, W, C]` float images.
        training: apply when True (the default); identity when False.

    Example:

    >>> import keras, numpy as np
    >>> layer = RandomApply(keras.layers.RandomGrayscale(factor=1.0), rate=0.5, seed=1)
    >>> tuple(layer(np.random.default_rng(0).random((8, 4, 4, 3))).shape)
    (8, 4, 4, 3)
    """

    def __init__(self, layer, rate=0.5, seed=None, **kwargs):
        super().__init__(**kwargs)
        if isinstance(layer, dict):
            layer = keras.saving.deserialize_keras_object(layer)
        if not isinstance(layer, keras.layers.Layer):
            raise ValueError(
                f"`layer` must be a keras.layers.Layer, got {layer!r} of type "
                f"{type(layer).__name__}."
            )
        self.layer = layer
        self.rate = _check_rate("rate", rate)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def build(self, input_shape):
        if not self.layer.built:
            self.layer.build(input_shape)

    def get_random_transformation(self, batch_size):
        """Draws whether each image gets the layer: bool `[B]`."""
        return keras.random.uniform((batch_size,), seed=self.seed_generator) < self.rate

    def call(self, images, training=True):
        if not training:
            return images
        images, single = _as_batch(images)
        apply = self.get_random_transformation(tf.shape(images)[0])
        outputs = tf.cast(self.layer(images, training=training), images.dtype)
        outputs = tf.where(_per_image(apply), outputs, images)
        return outputs[0] if single else outputs

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "layer": keras.saving.serialize_keras_object(self.layer),
                "rate": self.rate,
                "seed": self.seed,
            }
        )
        return config


class _OperationPolicy(keras.layers.Layer):
    """Shared call path of AutoAugment and RandAugment: draw, then apply per image."""

    def __init__(self, fill_value=0.5, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.fill_value = _check_fill_value(fill_value)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def build(self, input_shape):
        # Nothing to create; defining build stops Keras from tracing `call` to build.
        pass

    def _names(self):
        raise NotImplementedError

    def call(self, images, training=True):
        if not training:
            return images
        images, single = _as_batch(images)
        transformation = self.get_random_transformation(tf.shape(images)[0])
        outputs = _apply_operations(images, self._names(), transformation, self.fill_value)
        return outputs[0] if single else outputs

    def compute_output_shape(self, input_shape):
        return input_shape


@keras.saving.register_keras_serializable(package="supcon_tf")
class AutoAugment(_OperationPolicy):
    """AutoAugment (Cubuk et al., CVPR 2019) with the published ImageNet or CIFAR-10 policy.

    Each image gets one of the policy's 25 sub-policies, drawn uniformly; each of the
    sub-policy's two operations is applied with its probability and magnitude. Magnitude
    indices 0..9 span the paper's ranges linearly: shear up to 0.3, translation up to
    150/331 of the image, rotation up to 30 degrees (the geometric ones with a random
    sign), Color/Contrast/Brightness/Sharpness factor 0.1..1.9, Posterize 8..4 bits,
    Solarize threshold 256..0. (Implementations disagree on the direction of Posterize
    and Solarize; here every operation but the enhancement factors grows stronger with
    the magnitude, as in torchvision.) Geometric operations bring in `fill_value`.

    Args:
        policy: `"imagenet"` or `"cifar10"` (keys of `AUTOAUGMENT_POLICIES`).
        fill_value: value of pixels that shears, translations and rotations bring in.
        seed: integer seed for reproducible draws.

    Call arguments:
        images: `[B, H, W, C]` or `[H, W, C]` float images in `[0, 1]`.
        training: augment when True (the default); identity when False.

    Example:

    >>> import numpy as np
    >>> layer = AutoAugment("cifar10", seed=0)
    >>> tuple(layer(np.random.default_rng(0).random((2, 8, 8, 3))).shape)
    (2, 8, 8, 3)
    """

    def __init__(self, policy="imagenet", fill_value=0.5, seed=None, **kwargs):
        if policy not in AUTOAUGMENT_POLICIES:
            raise ValueError(
                f"Unknown AutoAugment `policy`={policy!r}. Expected one of "
                f"{tuple(AUTOAUGMENT_POLICIES)}."
            )
        super().__init__(fill_value=fill_value, seed=seed, **kwargs)
        self.policy = policy
        table = AUTOAUGMENT_POLICIES[policy]
        self._operation_names = tuple(
            sorted({name for sub_policy in table for name, _, _ in sub_policy})
        )
        self._table_operations = np.array(
            [[self._operation_names.index(name) for name, _, _ in row] for row in table],
            np.int32,
        )
        self._table_probabilities = np.array(
            [[probability for _, probability, _ in row] for row in table], np.float32
        )
        self._table_levels = np.array(
            [[(magnitude or 0) / 9.0 for _, _, magnitude in row] for row in table], np.float32
        )

    def _names(self):
        return self._operation_names

    def get_random_transformation(self, batch_size):
        """Draws each image's sub-policy and which of its two operations apply.

        Returns:
            dict of `[B, 2]` tensors: `operations`, `levels`, `signs`, `apply`, and
            `sub_policy` (`[B]` int32).
        """
        sub_policy = keras.random.randint(
            (batch_size,), 0, len(self._table_operations), seed=self.seed_generator
        )
        draws = keras.random.uniform((batch_size, 2), seed=self.seed_generator)
        signs = keras.random.randint((batch_size, 2), 0, 2, seed=self.seed_generator)
        sub_policy = tf.cast(sub_policy, tf.int32)
        return {
            "sub_policy": sub_policy,
            "operations": tf.gather(tf.constant(self._table_operations), sub_policy),
            "levels": tf.gather(tf.constant(self._table_levels), sub_policy),
            "signs": tf.cast(2 * signs - 1, tf.float32),
            "apply": draws < tf.gather(tf.constant(self._table_probabilities), sub_policy),
        }

    def get_config(self):
        config = super().get_config()
        config.update({"policy": self.policy, "fill_value": self.fill_value, "seed": self.seed})
        return config


@keras.saving.register_keras_serializable(package="supcon_tf")
class RandAugment(_OperationPolicy):
    """RandAugment (Cubuk et al., 2020): `num_layers` random operations per image.

    For every image, `num_layers` operations are drawn uniformly (with replacement) from
    `RANDAUGMENT_OPERATIONS` and applied at the shared `magnitude` (0..10, a fraction
    `magnitude / 10` of each operation's range as in `AutoAugment`), geometric ones with
    a random sign.

    Unlike `keras.layers.RandAugment`, which draws the operations once per call (every
    image of a batch gets the same operations) and a random strength up to `factor`,
    this layer draws the operations per image and uses the paper's fixed magnitude on
    the AutoAugment ranges, so that two views in one batch differ as the paper intends.

    Args:
        num_layers: number of operations per image (the paper's N).
        magnitude: strength of every operation, in [0, 10] (the paper's M).
        fill_value: value of pixels that shears, translations and rotations bring in.
        seed: integer seed for reproducible draws.

    Call arguments:
        images: `[B, H, W, C]` or `[H, W, C]` float images in `[0, 1]`.
        training: augment when True (the default); identity when False.

    Example:

    >>> import numpy as np
    >>> layer = RandAugment(num_layers=2, magnitude=9, seed=0)
    >>> tuple(layer(np.random.default_rng(0).random((2, 8, 8, 3))).shape)
    (2, 8, 8, 3)
    """

    def __init__(self, num_layers=2, magnitude=9.0, fill_value=0.5, seed=None, **kwargs):
        if isinstance(num_layers, bool) or not isinstance(num_layers, int) or num_layers < 1:
            raise ValueError(f"`num_layers` must be a positive integer, got {num_layers!r}.")
        if (
            isinstance(magnitude, bool)
            or not isinstance(magnitude, (int, float))
            or not 0 <= magnitude <= 10
        ):
            raise ValueError(f"`magnitude` must be a number in [0, 10], got {magnitude!r}.")
        super().__init__(fill_value=fill_value, seed=seed, **kwargs)
        self.num_layers = num_layers
        self.magnitude = float(magnitude)

    def _names(self):
        return RANDAUGMENT_OPERATIONS

    def get_random_transformation(self, batch_size):
        """Draws each image's operations: dict of `[B, num_layers]` tensors."""
        shape = (batch_size, self.num_layers)
        operations = keras.random.randint(
            shape, 0, len(RANDAUGMENT_OPERATIONS), seed=self.seed_generator
        )
        signs = keras.random.randint(shape, 0, 2, seed=self.seed_generator)
        return {
            "operations": tf.cast(operations, tf.int32),
            "levels": tf.fill(tf.shape(operations), self.magnitude / 10.0),
            "signs": tf.cast(2 * signs - 1, tf.float32),
            "apply": tf.ones(tf.shape(operations), tf.bool),
        }

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_layers": self.num_layers,
                "magnitude": self.magnitude,
                "fill_value": self.fill_value,
                "seed": self.seed,
            }
        )
        return config


# ---------------------------------------------------------------------------------------
# Policies.
# ---------------------------------------------------------------------------------------


def _seeds(seed):
    """Distinct seeds for the layers of one policy (equal seeds would draw equal numbers)."""
    index = 0
    while True:
        yield None if seed is None else seed + index
        index += 1


def color_jitter(strength=1.0, seed=None):
    """SimCLR's colour distortion of strength `s`, as a Keras `RandomColorJitter`.

    Brightness shifts by up to `0.8 s` (additive, as SimCLR's TensorFlow code), contrast
    and saturation factors span `[1 - 0.8 s, 1 + 0.8 s]`, hue shifts by up to `0.2 s`
    of a turn. (Keras draws the saturation factor `f` uniformly in its own parameter
    `f / (1 + f)`, and applies the four changes in a fixed order; SimCLR shuffles them.)

    Args:
        strength: the colour-jitter strength `s` (SimCLR: 1.0 on ImageNet, 0.5 on CIFAR).
        seed: integer seed.

    Example:

    >>> color_jitter(0.5).contrast_factor
    0.4
    """
    if isinstance(strength, bool) or not isinstance(strength, (int, float)) or strength <= 0:
        raise ValueError(f"`strength` must be a positive number, got {strength!r}.")
    change = 0.8 * strength
    low, high = max(1.0 - change, 0.0), 1.0 + change
    return keras.layers.RandomColorJitter(
        value_range=(0, 1),
        brightness_factor=min(change, 1.0),
        contrast_factor=min(change, 1.0),
        saturation_factor=(low / (1.0 + low), high / (1.0 + high)),
        hue_factor=min(0.4 * strength, 1.0),
        seed=seed,
    )


@keras.saving.register_keras_serializable(package="supcon_tf")
class ColorDistortion(keras.layers.Layer):
    """SimCLR's colour distortion: colour jitter (probability 0.8), then grayscale (0.2).

    Both are drawn per image. On single-channel images only brightness and contrast are
    jittered (saturation, hue and grayscale have no meaning there).

    Args:
        strength: the colour-jitter strength `s` (see `color_jitter`).
        jitter_rate: probability of the colour jitter.
        grayscale_rate: probability of converting to grayscale.
        seed: integer seed for reproducible draws.

    Call arguments:
        images: `[B, H, W, C]` or `[H, W, C]` float images in `[0, 1]`, C = 1 or 3.
        training: distort when True (the default); identity when False.

    Example:

    >>> import numpy as np
    >>> layer = ColorDistortion(strength=0.5, seed=0)
    >>> tuple(layer(np.random.default_rng(0).random((2, 8, 8, 1))).shape)
    (2, 8, 8, 1)
    """

    def __init__(self, strength=1.0, jitter_rate=0.8, grayscale_rate=0.2, seed=None, **kwargs):
        super().__init__(**kwargs)
        color_jitter(strength)  # validates `strength`
        self.strength = float(strength)
        self.jitter_rate = _check_rate("jitter_rate", jitter_rate)
        self.grayscale_rate = _check_rate("grayscale_rate", grayscale_rate)
        self.seed = seed
        self.jitter = None
        self.grayscale = None

    def build(self, input_shape):
        channels = input_shape[-1]
        if channels not in (1, 3):
            raise ValueError(
                f"ColorDistortion needs 1 or 3 channels, got input shape {input_shape}."
            )
        seeds = _seeds(self.seed)
        if channels == 3:
            jitter = color_jitter(self.strength, seed=next(seeds))
        else:
            change = min(0.8 * self.strength, 1.0)
            jitter = keras.layers.RandomColorJitter(
                value_range=(0, 1),
                brightness_factor=change,
                contrast_factor=change,
                seed=next(seeds),
            )
        self.jitter = RandomApply(jitter, self.jitter_rate, seed=next(seeds))
        if channels == 3:
            # RandomApply carries the seed: Keras' RandomGrayscale leaves it out of its config.
            grayscale = keras.layers.RandomGrayscale(factor=1.0, data_format="channels_last")
            self.grayscale = RandomApply(grayscale, self.grayscale_rate, seed=next(seeds))

    def call(self, images, training=True):
        if not training:
            return images
        images = self.jitter(images, training=training)
        if self.grayscale is not None:
            images = self.grayscale(images, training=training)
        return images

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "strength": self.strength,
                "jitter_rate": self.jitter_rate,
                "grayscale_rate": self.grayscale_rate,
                "seed": self.seed,
            }
        )
        return config


def build_augmenter(
    name="simple",
    seed=None,
    image_size=None,
    magnitude=9.0,
    strength=1.0,
    num_layers=2,
    min_crop_area=0.08,
    blur=False,
    autoaugment_policy="imagenet",
    crop=True,
):
    """Returns the named augmentation policy as a Keras layer.

    Policies (Khosla et al., 2020, Table 4):

    * `"none"`: identity.
    * `"simple"`: horizontal flip and a small rotation (the Keras SupCon example).
    * `"translate"`: shifts of up to 10 % of the size and small rotations, no flips
      (for digits and characters, where a mirror image changes the class).
    * `"simaugment"`: SimCLR's: random resized crop, horizontal flip, colour jitter of
      `strength` with probability 0.8, grayscale with probability 0.2, and (`blur=True`)
      Gaussian blur with probability 0.5.
    * `"autoaugment"`: random resized crop, flip, then `AutoAugment(autoaugment_policy)`.
    * `"randaugment"`: random resized crop, flip, then `RandAugment(num_layers, magnitude)`.
    * `"stacked_randaugment"`: random resized crop, flip, RandAugment, then SimAugment's
      colour jitter (probability 0.8) and grayscale (probability 0.2).

    Args:
        name: one of `AUGMENTATIONS`.
        seed: integer seed for reproducible draws.
        image_size: output side (int) or `(height, width)`; None keeps the input size.
        magnitude: RandAugment magnitude in [0, 10].
        strength: colour-jitter strength `s` of SimAugment and Stacked RandAugment.
        num_layers: RandAugment operations per image.
        min_crop_area: smallest crop area fraction (0.08 ImageNet, 0.2 CIFAR-10).
        blur: add SimCLR's Gaussian blur to SimAugment (ImageNet-sized images).
        autoaugment_policy: `"imagenet"` or `"cifar10"`.
        crop: start the cropping policies with `RandomResizedCrop`; `False` when the
            input pipeline already drew the crops (`supcon_tf.data.make_training_stream`).

    Returns:
        A `keras.layers.Layer` that acts only when called with `training=True`.

    Example:

    >>> build_augmenter("stacked_randaugment", seed=0, image_size=32).name
    'augment_stacked_randaugment'
    """
    if name not in AUGMENTATIONS:
        raise ValueError(f"Unknown augmentation {name!r}. Expected one of {AUGMENTATIONS}.")
    seeds = _seeds(seed)
    if name == "none":
        return keras.layers.Identity(name="augment_none")
    if name == "simple":
        return keras.layers.Pipeline(
            [
                keras.layers.RandomFlip("horizontal", seed=next(seeds)),
                keras.layers.RandomRotation(0.02, fill_mode="reflect", seed=next(seeds)),
            ],
            name="augment_simple",
        )
    if name == "translate":
        return keras.layers.Pipeline(
            [
                keras.layers.RandomTranslation(0.1, 0.1, fill_mode="constant", seed=next(seeds)),
                keras.layers.RandomRotation(0.03, fill_mode="constant", seed=next(seeds)),
            ],
            name="augment_translate",
        )
    if image_size is None:
        height = width = None
    elif isinstance(image_size, int) and not isinstance(image_size, bool) and image_size > 0:
        height = width = image_size
    elif (
        isinstance(image_size, (tuple, list))
        and len(image_size) == 2
        and all(isinstance(size, int) and size > 0 for size in image_size)
    ):
        height, width = image_size
    else:
        raise ValueError(
            f"`image_size` must be None, a positive int or (height, width), got {image_size!r}."
        )
    crop_seed = next(seeds)  # drawn either way: the other layers keep their seeds
    layers = [keras.layers.RandomFlip("horizontal", seed=next(seeds))]
    if crop:
        crop_layer = RandomResizedCrop(
            height, width, area_range=(min_crop_area, 1.0), seed=crop_seed
        )
        layers.insert(0, crop_layer)
    if name == "autoaugment":
        layers.append(AutoAugment(autoaugment_policy, seed=next(seeds)))
    if name in ("randaugment", "stacked_randaugment"):
        layers.append(RandAugment(num_layers, magnitude, seed=next(seeds)))
    if name in ("simaugment", "stacked_randaugment"):
        color_seed = next(seeds)
        next(seeds), next(seeds)  # ColorDistortion uses color_seed + 0, 1, 2
        layers.append(ColorDistortion(strength, seed=color_seed))
    if name == "simaugment" and blur:
        shorter_side = min(height or 224, width or 224)
        kernel_size = max(3, (shorter_side // 10) | 1)
        layers.append(
            keras.layers.RandomGaussianBlur(
                factor=(0.5, 0.5),
                kernel_size=kernel_size,
                sigma=(0.1, 2.0),
                value_range=(0, 1),
                seed=next(seeds),
            )
        )
    return keras.layers.Pipeline(layers, name=f"augment_{name}")


def augmentation_grid(images, augmenter, num_views=2, min_side=64):
    """Returns an image grid: one row per image, the original then `num_views` views.

    Args:
        images: `[N, H, W, C]` float images in `[0, 1]` (C = 1 or 3).
        augmenter: a layer from `build_augmenter` (or any image-to-image layer).
        num_views: augmented views per image.
        min_side: cells are enlarged (nearest neighbour) to at least this many pixels.

    Returns:
        uint8 array `[rows, columns, 3]` with 2-pixel white gutters.

    Example:

    >>> import numpy as np
    >>> grid = augmentation_grid(np.zeros((2, 8, 8, 3)), build_augmenter("none"), 3, 8)
    >>> grid.shape
    (22, 42, 3)
    """
    images = np.asarray(images, np.float32)
    if images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise ValueError(f"`images` must have shape [N, H, W, 1 or 3], got shape {images.shape}.")
    if isinstance(num_views, bool) or not isinstance(num_views, int) or num_views < 1:
        raise ValueError(f"`num_views` must be a positive integer, got {num_views!r}.")
    columns = [images] + [
        np.asarray(augmenter(images, training=True), np.float32) for _ in range(num_views)
    ]
    height = max(column.shape[1] for column in columns)
    width = max(column.shape[2] for column in columns)
    scale = max(1, math.ceil(min_side / min(height, width)))
    gutter = 2
    cell_height, cell_width = height * scale, width * scale
    grid = np.full(
        (
            len(images) * (cell_height + gutter) + gutter,
            len(columns) * (cell_width + gutter) + gutter,
            3,
        ),
        255,
        np.uint8,
    )
    for column_index, column in enumerate(columns):
        cells = np.clip(column, 0.0, 1.0)
        cells = np.repeat(np.repeat(cells, scale, axis=1), scale, axis=2)
        cells = np.broadcast_to(cells, (*cells.shape[:3], 3)) if cells.shape[-1] == 1 else cells
        cells = np.round(cells * 255).astype(np.uint8)
        for row_index, cell in enumerate(cells):
            top = gutter + row_index * (cell_height + gutter)
            left = gutter + column_index * (cell_width + gutter)
            grid[top : top + cell.shape[0], left : left + cell.shape[1]] = cell
    return grid


def save_augmentation_grid(images, augmenter, num_views, path, min_side=64):
    """Writes `augmentation_grid(images, augmenter, num_views)` as a PNG file.

    Args:
        images: `[N, H, W, C]` float images in `[0, 1]`.
        augmenter: a layer from `build_augmenter`.
        num_views: augmented views per image.
        path: output `.png` path; parent folders are created.
        min_side: cells are enlarged to at least this many pixels.

    Returns:
        The path written, as a `pathlib.Path`.

    Example:

    >>> import os, tempfile, numpy as np
    >>> path = os.path.join(tempfile.mkdtemp(), "views.png")
    >>> images = np.random.default_rng(0).random((2, 16, 16, 3)).astype("float32")
    >>> written = save_augmentation_grid(images, build_augmenter("simple", seed=0), 2, path)
    >>> os.path.getsize(path) > 0
    True
    """
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ValueError(f"`path` must end in .png, got {str(path)!r}.")
    grid = augmentation_grid(images, augmenter, num_views, min_side)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(tf.io.encode_png(grid).numpy())
    return path
