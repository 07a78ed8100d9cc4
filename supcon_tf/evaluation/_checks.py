"""Argument checks shared by the evaluation modules: labels, scores, embeddings, counts.

Each check returns its argument converted (a NumPy array of the expected shape and dtype,
or a number), or raises a `ValueError` that names the argument, what was given and what
is allowed.
"""

import numpy as np


def _check_labels(labels, name="labels"):
    """Returns `labels` as an int64 vector `[N]`, or raises ValueError."""
    array = np.asarray(labels)
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 1:
        raise ValueError(
            f"`{name}` must be a vector of integer class indices [N], got shape {array.shape}."
        )
    if (
        array.size
        and not np.issubdtype(array.dtype, np.integer)
        and not np.all(np.equal(np.mod(array, 1), 0))
    ):
        raise ValueError(f"`{name}` must hold integer class indices, got dtype {array.dtype}.")
    array = array.astype(np.int64)
    if array.size and array.min() < 0:
        raise ValueError(f"`{name}` must be non-negative class indices, got {array.min()}.")
    return array


def _check_scores(labels, scores, name="probabilities"):
    """Validates `[N]` labels against `[N, C]` scores; returns both as arrays."""
    labels = _check_labels(labels)
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 2:
        raise ValueError(f"`{name}` must have shape [N, num_classes], got shape {scores.shape}.")
    if scores.shape[0] != labels.shape[0]:
        raise ValueError(
            f"`labels` has {labels.shape[0]} entries but `{name}` has {scores.shape[0]} rows; "
            "they must describe the same samples."
        )
    if labels.size == 0:
        raise ValueError("`labels` is empty: at least one sample is needed.")
    if labels.max() >= scores.shape[1]:
        raise ValueError(
            f"`labels` holds class {labels.max()} but `{name}` has only {scores.shape[1]} "
            "classes (columns)."
        )
    if not np.all(np.isfinite(scores)):
        raise ValueError(f"`{name}` contains NaN or infinite values.")
    return labels, scores


def _check_embeddings(embeddings, name="embeddings"):
    """Returns `embeddings` as a finite float64 `[N, D]` array, or raises ValueError."""
    array = np.asarray(embeddings, dtype=np.float64)
    if array.ndim != 2:
        raise ValueError(f"`{name}` must have shape [N, dim], got shape {array.shape}.")
    if array.shape[0] == 0:
        raise ValueError(f"`{name}` is empty: at least one embedding is needed.")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"`{name}` contains NaN or infinite values.")
    return array


def _check_positive_int(value, name):
    """Returns `value` as an `int` >= 1, or raises ValueError."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"`{name}` must be a positive integer, got {value!r}.")
    return int(value)


def _check_positive_number(value, name):
    """Returns `value` (unchanged) when it is an int or float > 0, or raises ValueError."""
    if not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"`{name}` must be a positive number, got {value!r}.")
    return value
