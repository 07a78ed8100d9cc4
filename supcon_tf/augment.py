"""Image augmentations for contrastive pretraining, as Keras 3 layers.

Convention: images are float32 in `[0, 1]`, shape `[H, W, C]` or `[B, H, W, C]`.
Any Keras layer (or `keras.layers.Pipeline` / `keras.Sequential` of layers) can be
used as an augmenter; `build_augmenter` returns the named policies.

Example:

>>> import numpy as np
>>> augmenter = build_augmenter("simple", seed=0)
>>> views = augmenter(np.random.default_rng(0).random((2, 32, 32, 3)), training=True)
>>> tuple(views.shape)
(2, 32, 32, 3)
"""

import keras

AUGMENTATIONS = ("none", "simple", "translate")


def build_augmenter(name="simple", seed=None):
    """Returns the named augmentation policy as a Keras layer.

    Args:
        name: `"none"` (identity), `"simple"` (the original Keras SupCon example's
            horizontal flip and small rotation) or `"translate"` (shifts of up to 10 %
            of the size and small rotations, no flips: for digits and characters).
        seed: integer seed for reproducible draws.

    Returns:
        A `keras.layers.Layer` that acts only when called with `training=True`.
    """
    if name == "none":
        return keras.layers.Identity(name="augment_none")
    if name == "simple":
        return keras.layers.Pipeline(
            [
                keras.layers.RandomFlip("horizontal", seed=seed),
                keras.layers.RandomRotation(0.02, fill_mode="reflect", seed=seed),
            ],
            name="augment_simple",
        )
    if name == "translate":
        return keras.layers.Pipeline(
            [
                keras.layers.RandomTranslation(0.1, 0.1, fill_mode="constant", seed=seed),
                keras.layers.RandomRotation(0.03, fill_mode="constant", seed=seed),
            ],
            name="augment_translate",
        )
    raise ValueError(f"Unknown augmentation {name!r}. Expected one of {AUGMENTATIONS}.")
