"""The image operations of AutoAugment and RandAugment, and the augmentation argument checks.

Pure TensorFlow on float `[0, 1]` batches `[B, H, W, C]`, one parameter per image `[B]`,
graph- and XLA-compatible; they follow the PIL definitions that the AutoAugment policies
were searched with.
"""

import math

import tensorflow as tf

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
