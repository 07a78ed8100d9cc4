"""The searched augmentation policies: AutoAugment, RandAugment, and `RandomApply`."""

import keras
import numpy as np
import tensorflow as tf

from supcon_tf.augment.ops import (
    _apply_operations,
    _as_batch,
    _check_fill_value,
    _check_rate,
    _per_image,
)

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
