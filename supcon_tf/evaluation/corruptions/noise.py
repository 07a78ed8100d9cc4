"""Noise corruptions: Gaussian, shot (Poisson) and impulse (salt-and-pepper), and speckle.

`speckle_noise` is one of the extra corruptions (not in the 15 of CIFAR-10-C's mCE).
Parameters are CIFAR-10-C's (Hendrycks & Dietterich 2019, `make_cifar_c.py`).
"""

import numpy as np

from supcon_tf.evaluation.corruptions._common import check_images, finish, parameter

# Severity 1..5.
GAUSSIAN_NOISE = (0.04, 0.06, 0.08, 0.09, 0.10)  # standard deviation
SHOT_NOISE = (500, 250, 100, 75, 50)  # photons per unit intensity (Poisson rate)
IMPULSE_NOISE = (0.01, 0.02, 0.03, 0.05, 0.07)  # fraction of salt-and-pepper values
SPECKLE_NOISE = (0.06, 0.10, 0.12, 0.16, 0.20)  # std of the multiplicative noise


def gaussian_noise(images, severity=1, seed=0):
    """Adds `N(0, sigma^2)` noise per value, sigma = 0.04 .. 0.10 (CIFAR-10-C).

    Example:

    >>> import numpy as np
    >>> float(gaussian_noise(np.full((1, 4, 4, 1), 0.5, "float32"), severity=5).std()) > 0
    True
    """
    images = check_images(images)
    sigma = parameter(GAUSSIAN_NOISE, severity)
    noise = np.random.default_rng(seed).standard_normal(images.shape)
    return finish(images + sigma * noise)


def shot_noise(images, severity=1, seed=0):
    """Poisson (photon) noise: `Poisson(x * rate) / rate`, rate = 500 .. 50.

    Example:

    >>> import numpy as np
    >>> noisy = shot_noise(np.full((2, 4, 4, 1), 0.5, "float32"), severity=5, seed=1)
    >>> noisy.shape, bool(noisy.std() > 0), bool(abs(noisy.mean() - 0.5) < 0.1)
    ((2, 4, 4, 1), True, True)
    """
    images = check_images(images)
    rate = parameter(SHOT_NOISE, severity)
    return finish(np.random.default_rng(seed).poisson(images * rate) / rate)


def impulse_noise(images, severity=1, seed=0):
    """Salt-and-pepper noise: a fraction 0.01 .. 0.07 of the values set to 0 or 1 (equally).

    Each value (pixel and channel) is hit independently, as in scikit-image's `s&p` mode.

    Example:

    >>> import numpy as np
    >>> noisy = impulse_noise(np.full((1, 32, 32, 3), 0.5, "float32"), severity=5)
    >>> bool(np.isin(noisy[noisy != 0.5], [0.0, 1.0]).all())
    True
    """
    images = check_images(images)
    amount = parameter(IMPULSE_NOISE, severity)
    rng = np.random.default_rng(seed)
    hit = rng.random(images.shape) < amount
    salt = rng.random(images.shape) < 0.5
    return finish(np.where(hit, salt.astype(np.float32), images))


def speckle_noise(images, severity=1, seed=0):
    """Multiplicative noise: `x + x * N(0, sigma^2)`, sigma = 0.06 .. 0.20 (an extra).

    Example:

    >>> import numpy as np
    >>> float(speckle_noise(np.zeros((1, 4, 4, 1), "float32"), severity=5).max())
    0.0
    """
    images = check_images(images)
    sigma = parameter(SPECKLE_NOISE, severity)
    noise = np.random.default_rng(seed).standard_normal(images.shape)
    return finish(images + images * sigma * noise)
