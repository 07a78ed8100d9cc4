"""Raw images to the encoder's input, inside a TensorFlow graph (what an export serves).

`preprocess(images, spec)` takes a batch `[N, H, W, C]` of any size, uint8 (0-255) or
float (0-1), and gives the float32 `[N, height, width, channels]` images in `[0, 1]` that
the run's encoder took at evaluation:

- a run trained in RAM (`spec.center_crop_fraction is None`) took its images as they
  are: images of its size pass unchanged (uint8 divided by 255, as
  `supcon_tf.data.load_dataset` does), others are resized whole (bilinear);
- a streamed run took the central square of `center_crop_fraction` of the shorter
  side, resized (bilinear) to its image size, as `supcon_tf.data.crops.central_crop`.

A greyscale image (one channel) is repeated to RGB for a three-channel encoder, as the
streaming decoder does. Anything else fails with an `InvalidArgumentError` whose
message says what was wrong: a rank other than 4, channels the encoder does not take, float pixels outside
`[0, 1]`, an empty image.

Example:

>>> import numpy as np
>>> from supcon_tf.serving.runs import InputSpec
>>> spec = InputSpec(height=4, width=4, channels=3, center_crop_fraction=1.0)
>>> images = np.full((2, 6, 8, 1), 255, np.uint8)
>>> batch = preprocess(images, spec)
>>> tuple(batch.shape), float(batch.numpy().min())
((2, 4, 4, 3), 1.0)
"""

import tensorflow as tf

FLOAT_DTYPES = (tf.float16, tf.bfloat16, tf.float32, tf.float64)
RANK_MESSAGE = (
    "images must be a batch [N, H, W, C] (rank 4); give one image a batch axis, images[None]"
)


def _check(condition, message):
    """An assertion whose error message is `message` (on failure, at run time)."""
    return tf.debugging.Assert(condition, [tf.constant(message)])


def preprocess(images, spec):
    """The encoder input `[N, spec.height, spec.width, spec.channels]` of raw `images`.

    Args:
        images: `[N, H, W, C]` uint8 in `[0, 255]` or float in `[0, 1]`.
        spec: the run's `supcon_tf.serving.runs.InputSpec`.

    Returns:
        float32 images in `[0, 1]`.
    """
    images = tf.convert_to_tensor(images)
    if images.dtype != tf.uint8 and images.dtype not in FLOAT_DTYPES:
        raise TypeError(f"images must be uint8 or float, got {images.dtype.name}.")
    if images.shape.rank is not None and images.shape.rank != 4:
        raise ValueError(f"{RANK_MESSAGE}; got shape {images.shape}")
    with tf.control_dependencies([_check(tf.equal(tf.rank(images), 4), RANK_MESSAGE)]):
        images = tf.ensure_shape(tf.identity(images), [None, None, None, None])
    shape = tf.shape(images)
    height, width, channels = shape[1], shape[2], shape[3]
    allowed = tf.equal(channels, spec.channels)
    if spec.channels == 3:
        allowed |= tf.equal(channels, 1)
    checks = [
        _check(
            allowed,
            f"images must have {spec.channels} channel(s)"
            + (" (or 1, greyscale)" if spec.channels == 3 else "")
            + " in the last axis of [N, H, W, C]; convert them to the channels the model "
            "was trained on",
        ),
        _check(
            (height > 0) & (width > 0),
            "images must be at least 1x1 pixels; pass [N, H, W, C] images",
        ),
    ]
    if images.dtype == tf.uint8:
        pixels = tf.cast(images, tf.float32) / 255.0
    else:
        pixels = tf.cast(images, tf.float32)
        finite = tf.reduce_all(tf.math.is_finite(pixels))
        inside = (tf.size(pixels) == 0) | (
            (tf.reduce_min(pixels) >= 0.0) & (tf.reduce_max(pixels) <= 1.0)
        )
        checks.append(
            _check(
                finite & inside,
                "float images must be finite and in [0, 1]; divide 0-255 pixels by 255, "
                "or pass them as uint8",
            )
        )
    with tf.control_dependencies(checks):
        pixels = tf.identity(pixels)
    if spec.channels == 3:
        pixels = tf.cond(
            tf.equal(channels, 1), lambda: tf.tile(pixels, [1, 1, 1, 3]), lambda: pixels
        )
    target = [spec.height, spec.width]
    if spec.streamed:
        pixels = _central_square(pixels, height, width, spec.center_crop_fraction)
        pixels = tf.image.resize(pixels, target, method="bilinear")
    else:
        same_size = tf.equal(height, spec.height) & tf.equal(width, spec.width)
        pixels = tf.cond(
            same_size,
            lambda: pixels,
            lambda: tf.image.resize(pixels, target, method="bilinear"),
        )
    pixels = tf.ensure_shape(pixels, [None, spec.height, spec.width, spec.channels])
    return tf.clip_by_value(pixels, 0.0, 1.0)


def _central_square(pixels, height, width, fraction):
    """The central square of `fraction` of the shorter side (as the streamed evaluation)."""
    shorter = tf.cast(tf.minimum(height, width), tf.float32)
    side = tf.maximum(tf.cast(tf.round(fraction * shorter), tf.int32), 1)
    top, left = (height - side) // 2, (width - side) // 2
    return pixels[:, top : top + side, left : left + side, :]
