"""Image augmentations for contrastive pretraining, as Keras 3 layers.

The SupCon paper (Khosla et al., 2020, Table 4 and Appendix) compares four policies:
SimAugment (SimCLR's), AutoAugment, RandAugment and Stacked RandAugment. This package
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

The package by job: `ops` (the image operations), `crops` (`RandomResizedCrop`),
`policies` (`RandomApply`, `AutoAugment`, `RandAugment`), `layers` (`ColorDistortion`,
`color_jitter`, `build_augmenter`), `preview` (`augmentation_grid`).

Example:

>>> import numpy as np
>>> augmenter = build_augmenter("simaugment", seed=0, strength=0.5)
>>> images = np.random.default_rng(0).random((2, 32, 32, 3)).astype("float32")
>>> views = augmenter(images, training=True)
>>> tuple(views.shape), float(np.min(views)) >= 0.0, float(np.max(views)) <= 1.0
((2, 32, 32, 3), True, True)
"""

from supcon_tf.augment.crops import RandomResizedCrop
from supcon_tf.augment.layers import AUGMENTATIONS, ColorDistortion, build_augmenter, color_jitter
from supcon_tf.augment.policies import (
    AUTOAUGMENT_POLICIES,
    RANDAUGMENT_OPERATIONS,
    AutoAugment,
    RandAugment,
    RandomApply,
)
from supcon_tf.augment.preview import augmentation_grid, save_augmentation_grid

__all__ = [
    "AUGMENTATIONS",
    "AUTOAUGMENT_POLICIES",
    "AutoAugment",
    "ColorDistortion",
    "RANDAUGMENT_OPERATIONS",
    "RandAugment",
    "RandomApply",
    "RandomResizedCrop",
    "augmentation_grid",
    "build_augmenter",
    "color_jitter",
    "save_augmentation_grid",
]
