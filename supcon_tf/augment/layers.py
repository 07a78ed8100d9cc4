"""SimCLR's colour distortion and `build_augmenter`, which assembles each named policy."""

import keras

from supcon_tf.augment.crops import RandomResizedCrop
from supcon_tf.augment.ops import _check_rate
from supcon_tf.augment.policies import AutoAugment, RandAugment, RandomApply

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
