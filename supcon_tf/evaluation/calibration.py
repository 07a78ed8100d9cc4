"""Calibration of a classifier: equal-width confidence bins and the expected calibration error.

Example:

>>> import numpy as np
>>> probabilities = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
>>> round(expected_calibration_error([0, 1, 1], probabilities, num_bins=10), 4)
0.3
"""

import numpy as np

from supcon_tf.evaluation._checks import _check_positive_int, _check_scores


def calibration_bins(labels, probabilities, num_bins=15):
    """Per-bin statistics of a reliability diagram with equal-width confidence bins.

    The confidence of a sample is its largest probability; bin `b` (0-based) holds the
    confidences in `(b / num_bins, (b + 1) / num_bins]` (the first bin also holds 0),
    as in Guo et al. 2017, "On Calibration of Modern Neural Networks". The predicted class
    is the arg-max (ties towards the lower index).

    Args:
        labels: integer class indices `[N]`.
        probabilities: `[N, C]` class probabilities.
        num_bins: number of equal-width bins on `[0, 1]`.

    Returns:
        A dict of float64 arrays of length `num_bins`: `"counts"`, `"accuracy"` and
        `"confidence"` (mean accuracy and mean confidence of the bin, 0 for empty bins),
        plus `"edges"` (`num_bins + 1` bin edges).

    Example:

    >>> bins = calibration_bins([0, 1], [[0.9, 0.1], [0.7, 0.3]], num_bins=2)
    >>> bins["counts"].tolist(), bins["accuracy"].tolist()
    ([0.0, 2.0], [0.0, 0.5])
    """
    labels, probabilities = _check_scores(labels, probabilities)
    num_bins = _check_positive_int(num_bins, "num_bins")
    if probabilities.min() < -1e-6 or probabilities.max() > 1 + 1e-6:
        raise ValueError(
            "`probabilities` must lie in [0, 1]; got values in "
            f"[{probabilities.min():.4g}, {probabilities.max():.4g}]. Pass logits through "
            "`softmax` (or `from_logits=True`) first."
        )
    confidences = probabilities.max(axis=1)
    correct = (probabilities.argmax(axis=1) == labels).astype(np.float64)
    # `b / num_bins` is the double nearest to the decimal edge (e.g. 7 / 10 == 0.7), so a
    # confidence written as an edge value falls in the bin that edge closes.
    edges = np.arange(num_bins + 1) / num_bins
    indices = np.searchsorted(edges[1:-1], confidences, side="left")
    counts = np.bincount(indices, minlength=num_bins).astype(np.float64)
    accuracy_sums = np.bincount(indices, weights=correct, minlength=num_bins)
    confidence_sums = np.bincount(indices, weights=confidences, minlength=num_bins)
    nonempty = np.maximum(counts, 1)
    return {
        "counts": counts,
        "accuracy": accuracy_sums / nonempty,
        "confidence": confidence_sums / nonempty,
        "edges": edges,
    }


def expected_calibration_error(labels, probabilities, num_bins=15):
    """Expected calibration error with equal-width confidence bins.

    `ECE = sum_b (n_b / N) * |accuracy_b - confidence_b|` over the bins of
    `calibration_bins` (Naeini et al. 2015; Guo et al. 2017).

    Args:
        labels: integer class indices `[N]`.
        probabilities: `[N, C]` class probabilities (apply `softmax` to logits first).
        num_bins: number of equal-width bins (15 by default, as in Guo et al.).

    Returns:
        A float in `[0, 1]`.

    Example:

    >>> round(expected_calibration_error([0, 1], [[0.9, 0.1], [0.7, 0.3]], num_bins=2), 6)
    0.3
    """
    bins = calibration_bins(labels, probabilities, num_bins)
    weights = bins["counts"] / bins["counts"].sum()
    return float(np.sum(weights * np.abs(bins["accuracy"] - bins["confidence"])))
