"""Common image corruptions (CIFAR-10-C) and the robustness of classifiers to them.

The 15 corruptions of CIFAR-10-C (`CIFAR10C_CORRUPTIONS`, in the paper's order) and 3
extras (`EXTRA_CORRUPTIONS`: speckle noise, Gaussian blur, saturate), with the
definitions and CIFAR-10-C severity parameters of Hendrycks & Dietterich 2019,
"Benchmarking Neural Network Robustness to Common Corruptions and Perturbations" (ICLR),
re-implemented in NumPy/TensorFlow so that they can be applied to any test set on the
fly (the published corruption sets cannot be downloaded here). Every corruption has the
signature `corruption(images, severity=1, seed=0) -> images`: float32 NHWC images in
`[0, 1]` in, the same shape, dtype and range out, severities 1 (mild) to 5 (strong), and
the same seed giving the same result. The families are modules:

* `noise`: gaussian_noise, shot_noise, impulse_noise; speckle_noise (extra);
* `blur`: defocus_blur, glass_blur, motion_blur, zoom_blur; gaussian_blur (extra);
* `weather`: snow, frost, fog, brightness;
* `digital`: contrast, elastic_transform, pixelate, jpeg_compression; saturate (extra);
* `registry`: the names, `corrupt` and `default_corruptions`;
* `robustness`: `evaluate_corruptions` (accuracy, ECE, mCE and relative mCE).

Differences from the reference code, all deliberate (each module lists its own):

* images stay float (no rounding to uint8 between steps, except inside JPEG coding);
* the same seed draws the same underlying noise at every severity, so a stronger
  severity is a stronger version of the same corruption;
* the parameters are CIFAR-10-C's, in pixels, for every image size: larger images get
  relatively milder blurs, flakes and warps;
* ImageMagick's motion blur (motion blur, snow) is applied with its kernel in NumPy;
* frost blends a procedural texture, not CIFAR-10-C's frost photographs;
* glass blur copies neighbours, as the reference's code does (not the swap it intends);
* saturate's severities are reordered by strength. Spatter is not implemented.

Example:

>>> import numpy as np
>>> images = np.random.default_rng(0).random((2, 32, 32, 3)).astype("float32")
>>> noisy = corrupt(images, "gaussian_noise", severity=3, seed=0)
>>> noisy.shape, noisy.dtype.name, float(noisy.min()) >= 0.0
((2, 32, 32, 3), 'float32', True)
"""

from supcon_tf.evaluation.corruptions._common import SEVERITIES
from supcon_tf.evaluation.corruptions.blur import (
    defocus_blur,
    gaussian_blur,
    glass_blur,
    motion_blur,
    zoom_blur,
)
from supcon_tf.evaluation.corruptions.digital import (
    contrast,
    elastic_transform,
    jpeg_compression,
    pixelate,
    saturate,
)
from supcon_tf.evaluation.corruptions.noise import (
    gaussian_noise,
    impulse_noise,
    shot_noise,
    speckle_noise,
)
from supcon_tf.evaluation.corruptions.registry import (
    CIFAR10C_CORRUPTIONS,
    COLOR_CORRUPTIONS,
    CORRUPTION_FUNCTIONS,
    CORRUPTIONS,
    EXTRA_CORRUPTIONS,
    GREY_OR_RGB_CORRUPTIONS,
    corrupt,
    default_corruptions,
)
from supcon_tf.evaluation.corruptions.robustness import evaluate_corruptions
from supcon_tf.evaluation.corruptions.weather import brightness, fog, frost, snow

__all__ = [
    "CIFAR10C_CORRUPTIONS",
    "COLOR_CORRUPTIONS",
    "CORRUPTIONS",
    "CORRUPTION_FUNCTIONS",
    "EXTRA_CORRUPTIONS",
    "GREY_OR_RGB_CORRUPTIONS",
    "SEVERITIES",
    "brightness",
    "contrast",
    "corrupt",
    "default_corruptions",
    "defocus_blur",
    "elastic_transform",
    "evaluate_corruptions",
    "fog",
    "frost",
    "gaussian_blur",
    "gaussian_noise",
    "glass_blur",
    "impulse_noise",
    "jpeg_compression",
    "motion_blur",
    "pixelate",
    "saturate",
    "shot_noise",
    "snow",
    "speckle_noise",
    "zoom_blur",
]
