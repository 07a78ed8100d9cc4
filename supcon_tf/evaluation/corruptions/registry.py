"""The corruptions by name: the 15 of CIFAR-10-C, the extras, `corrupt` and the defaults.

Example:

>>> len(CIFAR10C_CORRUPTIONS), EXTRA_CORRUPTIONS
(15, ('speckle_noise', 'gaussian_blur', 'saturate'))
"""

from supcon_tf.errors import UsageError
from supcon_tf.evaluation.corruptions import blur, digital, noise, weather

# The 15 corruptions of CIFAR-10-C's mCE, in the paper's order (noise, blur, weather,
# digital), and the held-out extras, which the paper keeps for validation.
CIFAR10C_CORRUPTIONS = (
    "gaussian_noise",
    "shot_noise",
    "impulse_noise",
    "defocus_blur",
    "glass_blur",
    "motion_blur",
    "zoom_blur",
    "snow",
    "frost",
    "fog",
    "brightness",
    "contrast",
    "elastic_transform",
    "pixelate",
    "jpeg_compression",
)
EXTRA_CORRUPTIONS = ("speckle_noise", "gaussian_blur", "saturate")

CORRUPTIONS = CIFAR10C_CORRUPTIONS + EXTRA_CORRUPTIONS
# Each name's function, from the module of its family.
CORRUPTION_FUNCTIONS = {
    name: next(
        getattr(family, name) for family in (noise, blur, weather, digital) if hasattr(family, name)
    )
    for name in CORRUPTIONS
}
# Corruptions defined on colour only (saturation needs hue).
COLOR_CORRUPTIONS = ("saturate",)
# Corruptions defined on grey or RGB images only (HSV value, JPEG, grey level).
GREY_OR_RGB_CORRUPTIONS = ("brightness", "jpeg_compression", "snow")


def check_corruption(name):
    """`name` when it names a corruption, else `UsageError` listing them."""
    if not isinstance(name, str) or name not in CORRUPTION_FUNCTIONS:
        raise UsageError(f"Unknown corruption {name!r}. Expected one of {CORRUPTIONS}.")
    return name


def corrupt(images, name, severity=1, seed=0):
    """Applies the corruption called `name` (one of `CORRUPTIONS`) at `severity` (1..5).

    Args:
        images: float NHWC images in `[0, 1]`.
        name: the corruption's name.
        severity: 1 (mild) .. 5 (strong).
        seed: seed of the random corruptions (ignored by the deterministic ones).

    Returns:
        float32 images of the same shape, in `[0, 1]`.

    Example:

    >>> import numpy as np
    >>> float(corrupt(np.zeros((1, 8, 8, 3)), "contrast", severity=5).max())
    0.0
    """
    return CORRUPTION_FUNCTIONS[check_corruption(name)](images, severity=severity, seed=seed)


def default_corruptions(num_channels):
    """The CIFAR-10-C corruptions that apply to images with `num_channels` channels.

    The extras are left out, so that the mean corruption error is over CIFAR-10-C's 15
    (all of them apply to grey and RGB images).

    Example:

    >>> default_corruptions(3) == CIFAR10C_CORRUPTIONS, "snow" in default_corruptions(4)
    (True, False)
    """
    if num_channels in (1, 3):
        return CIFAR10C_CORRUPTIONS
    return tuple(name for name in CIFAR10C_CORRUPTIONS if name not in GREY_OR_RGB_CORRUPTIONS)
