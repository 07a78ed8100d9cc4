"""The crops of a stream: random resized crops for training, central crops for evaluation.

`random_resized_crop` here and `supcon_tf.augment.RandomResizedCrop` draw the same
SimCLR crop, but they must stay two: this one crops one decoded image of any size inside
`tf.data`, with a stateless seed of `(seed, epoch, position)` so that a resumed stream is
the same stream; the layer crops a batch of same-size images inside a model, from a
`keras.random.SeedGenerator`, and compiles under XLA.

`random_resized_crops` draws a training image's views straight from its encoded bytes:
a JPEG decodes only each view's window (`tf.io.decode_and_crop_jpeg`, the fused
decode-and-crop of the standard ImageNet input pipelines), other formats decode once.
Its boxes are those `random_resized_crop` draws from the same seeds.
"""

import tensorflow as tf

from supcon_tf.errors import UsageError

# Resize + central crop of this fraction of the shorter side for evaluation (224 / 256).
EVALUATION_CROP_FRACTION = 0.875
# Images below this side (CIFAR-size) get the CIFAR crops: area 0.2-1, no central crop.
SMALL_IMAGE_SIZE = 96


def check_image_size(image_size):
    """The rule for a stream's output side: a positive integer (square images), else error."""
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 1:
        raise UsageError(f"`image_size` must be a positive integer, got {image_size!r}.")
    return image_size


def _resized(image, image_size):
    resized = tf.image.resize(image, [image_size, image_size], method="bilinear")
    resized = tf.ensure_shape(resized, [image_size, image_size, 3])
    return tf.clip_by_value(resized / 255.0, 0.0, 1.0)


def random_resized_crop(image, image_size, seed, min_crop_area=0.08):
    """A random-resized crop of one uint8 image, as float32 `[image_size, image_size, 3]`.

    The crop covers a fraction of the image area uniform in `[min_crop_area, 1]` with
    an aspect ratio in `[3/4, 4/3]` (Szegedy et al., 2015; SimCLR), drawn from the
    stateless `seed` (shape `[2]`); after 10 failed draws the whole image is used.
    `min_crop_area=1.0` resizes the whole image (no crop).

    Example:

    >>> image = tf.zeros([50, 80, 3], tf.uint8)
    >>> tuple(random_resized_crop(image, 24, seed=[0, 1]).shape)
    (24, 24, 3)
    """
    check_fraction("min_crop_area", min_crop_area)
    if min_crop_area == 1.0:
        return _resized(image, image_size)
    begin, size = _crop_box(tf.shape(image), seed, min_crop_area)
    return _resized(tf.slice(image, begin, size), image_size)


def _crop_box(image_shape, seed, min_crop_area):
    """`(begin, size)` of a random crop box of an image of `image_shape` (`[H, W, C]`)."""
    begin, size, _ = tf.image.stateless_sample_distorted_bounding_box(
        image_shape,
        bounding_boxes=tf.constant([0.0, 0.0, 1.0, 1.0], shape=[1, 1, 4]),
        seed=seed,
        min_object_covered=0.0,
        aspect_ratio_range=(3 / 4, 4 / 3),
        area_range=(min_crop_area, 1.0),
        max_attempts=10,
        use_image_if_no_bounding_boxes=True,
    )
    return begin, size


def random_resized_crops(encoded, image_size, seeds, min_crop_area=0.08):
    """Random-resized crops of an encoded image, one per seed: float32 `[V, S, S, 3]`.

    `seeds` is `[V, 2]` (`V` known when traced), one stateless seed per view; each crop
    is the one that `random_resized_crop` draws from that seed on the decoded image. A
    JPEG is not decoded whole: each view decodes only its box
    (`tf.io.decode_and_crop_jpeg`), so two views of 8-100 % of the area cost about one
    full decode; its pixels are those of the whole decode, except that 4:2:0 chroma is
    upsampled from the window's own blocks (edge pixels may differ by a few levels).
    Other formats (PNG, BMP, GIF) are decoded once and sliced. Greyscale and CMYK come
    out as RGB.

    Example:

    >>> encoded = tf.io.encode_jpeg(tf.zeros([50, 80, 3], tf.uint8))
    >>> tuple(random_resized_crops(encoded, 24, [[0, 1], [0, 2]]).shape)
    (2, 24, 24, 3)
    """
    check_fraction("min_crop_area", min_crop_area)
    views = tf.unstack(tf.convert_to_tensor(seeds, tf.int64))
    if min_crop_area == 1.0:
        return tf.stack([_resized(_decoded(encoded), image_size)] * len(views))

    def decoded_then_cropped():
        image = _decoded(encoded)
        return tf.stack(
            [random_resized_crop(image, image_size, seed, min_crop_area) for seed in views]
        )

    def decoded_in_boxes():
        height_width = tf.io.extract_jpeg_shape(encoded)[:2]
        shape = tf.concat([height_width, [3]], axis=0)

        def one_view(seed):
            begin, size = _crop_box(shape, seed, min_crop_area)
            window = tf.stack([begin[0], begin[1], size[0], size[1]])
            crop = tf.io.decode_and_crop_jpeg(encoded, window, channels=3)
            return _resized(crop, image_size)

        return tf.stack([one_view(seed) for seed in views])

    return tf.cond(tf.io.is_jpeg(encoded), decoded_in_boxes, decoded_then_cropped)


def _decoded(encoded):
    """Any supported image format as uint8 RGB `[H, W, 3]` (the first frame of a GIF)."""
    image = tf.io.decode_image(encoded, channels=3, expand_animations=False)
    return tf.ensure_shape(image, [None, None, 3])


def central_crop(image, image_size, fraction=EVALUATION_CROP_FRACTION):
    """The central square of `fraction` of the shorter side, resized to `image_size`.

    Example:

    >>> image = tf.reshape(tf.range(16 * 16 * 3, dtype=tf.int32) % 256, [16, 16, 3])
    >>> tuple(central_crop(tf.cast(image, tf.uint8), 8, fraction=0.5).shape)
    (8, 8, 3)
    """
    check_fraction("fraction", fraction)
    shape = tf.shape(image)
    height, width = shape[0], shape[1]
    shorter = tf.cast(tf.minimum(height, width), tf.float32)
    side = tf.maximum(tf.cast(tf.round(fraction * shorter), tf.int32), 1)
    top, left = (height - side) // 2, (width - side) // 2
    return _resized(image[top : top + side, left : left + side], image_size)


def crop_settings(image_size, min_crop_area=None, center_crop_fraction=None):
    """`(min_crop_area, center_crop_fraction)` for `image_size`, `None` meaning the default.

    The defaults follow the paper's code: ImageNet-size crops (`>= SMALL_IMAGE_SIZE`)
    train on 8-100 % of the area and evaluate on a 0.875 central crop; CIFAR-size ones
    train on 20-100 % and evaluate on the whole image.

    >>> crop_settings(224), crop_settings(32), crop_settings(32, 1.0, 0.875)
    ((0.08, 0.875), (0.2, 1.0), (1.0, 0.875))
    """
    small = image_size < SMALL_IMAGE_SIZE
    if min_crop_area is None:
        min_crop_area = 0.2 if small else 0.08
    if center_crop_fraction is None:
        center_crop_fraction = 1.0 if small else EVALUATION_CROP_FRACTION
    check_fraction("min_crop_area", min_crop_area)
    check_fraction("center_crop_fraction", center_crop_fraction)
    return min_crop_area, center_crop_fraction


def check_fraction(name, value):
    """Raises `ValueError` naming `name` unless `value` is a number in (0, 1]."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1:
        raise ValueError(f"`{name}` must be a number in (0, 1], got {value!r}.")
