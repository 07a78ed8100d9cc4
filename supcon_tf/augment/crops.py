"""SimCLR's random resized crop as a Keras layer: a random area and aspect ratio per image."""

import math

import keras
import tensorflow as tf

from supcon_tf.augment.ops import _as_batch, _bilinear_sample, _check_range


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
