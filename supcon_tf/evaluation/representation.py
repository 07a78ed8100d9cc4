"""Geometry of a representation: L2-normalised embeddings and their alignment and uniformity.

Embeddings are `[N, D]` floats, normalised here to the unit sphere, the space in which
supervised contrastive learning compares them (Wang & Isola 2020).

Example:

>>> result = alignment_uniformity([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]],
...                               [0, 0, 1, 1])
>>> 0.0 < result["alignment"] < 0.1
True
"""

import math

import numpy as np

from supcon_tf.evaluation._checks import (
    _check_embeddings,
    _check_labels,
    _check_positive_number,
)


def l2_normalize(embeddings):
    """Scales every row of `embeddings` to unit L2 norm (zero rows stay zero).

    Args:
        embeddings: `[N, D]` array.

    Returns:
        A float64 `[N, D]` array whose rows have norm 1.

    Example:

    >>> l2_normalize([[3.0, 4.0]]).tolist()
    [[0.6, 0.8]]
    """
    embeddings = _check_embeddings(embeddings)
    norms = np.linalg.norm(embeddings, axis=1, keepdims=True)
    return embeddings / np.maximum(norms, 1e-12)


def _normalized_with_labels(embeddings, labels):
    """L2-normalised embeddings and checked labels, one label per embedding row."""
    embeddings = l2_normalize(embeddings)
    labels = _check_labels(labels)
    if labels.shape[0] != embeddings.shape[0]:
        raise ValueError(
            f"`labels` has {labels.shape[0]} entries but `embeddings` has "
            f"{embeddings.shape[0]} rows."
        )
    return embeddings, labels


def alignment_uniformity(embeddings, labels, alignment_power=2.0, uniformity_scale=2.0):
    """Mean per-class alignment and the uniformity of L2-normalised embeddings.

    With `z_i` the L2-normalised embeddings (Wang & Isola 2020, "Understanding Contrastive
    Representation Learning through Alignment and Uniformity on the Hypersphere"), and the
    positive pairs of supervised contrastive learning being the pairs of distinct samples
    of the same class:

    * alignment of class `c` (with `n_c >= 2` samples):
      `A_c = 1 / (n_c (n_c - 1)) * sum_{i != j, y_i = y_j = c} ||z_i - z_j||^alpha`,
      and `alignment = mean_c A_c` over those classes (lower = tighter classes; in
      `[0, 2^alpha]`);
    * uniformity over all `N` samples regardless of class:
      `uniformity = log( 1 / (N (N - 1)) * sum_{i != j} exp(-t ||z_i - z_j||^2) )`
      (lower = more uniform on the sphere; in `[-4t, 0]`).

    `alpha = alignment_power` (2 in the paper) and `t = uniformity_scale` (2 in the paper).

    Args:
        embeddings: `[N, D]` embeddings (normalised here).
        labels: `[N]` integer labels.
        alignment_power: `alpha > 0`.
        uniformity_scale: `t > 0`.

    Returns:
        A dict with `"alignment"` (float), `"per_class_alignment"` (dict class -> float, for
        the classes with at least two samples) and `"uniformity"` (float).

    Example:

    >>> result = alignment_uniformity([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]],
    ...                               [0, 0, 1, 1])
    >>> result["alignment"], round(result["uniformity"], 4)
    (0.0, -1.0626)
    """
    embeddings, labels = _normalized_with_labels(embeddings, labels)
    if embeddings.shape[0] < 2:
        raise ValueError("At least two embeddings are needed to measure pairwise distances.")
    _check_positive_number(alignment_power, "alignment_power")
    _check_positive_number(uniformity_scale, "uniformity_scale")

    def pairwise_sum(rows, columns, function, block=1024):
        """sum over all (i, j) of function(||rows_i - columns_j||^2), in blocks."""
        total = 0.0
        for start in range(0, rows.shape[0], block):
            squared = np.maximum(2.0 - 2.0 * rows[start : start + block] @ columns.T, 0.0)
            total += float(np.sum(function(squared)))
        return total

    per_class = {}
    for label in np.unique(labels):
        members = embeddings[labels == label]
        count = members.shape[0]
        if count < 2:
            continue
        # Diagonal terms have distance 0 and add 0 to the sum (alpha > 0).
        total = pairwise_sum(members, members, lambda squared: squared ** (alignment_power / 2))
        per_class[int(label)] = total / (count * (count - 1))
    if not per_class:
        raise ValueError("No class has two samples: alignment is undefined.")
    count = embeddings.shape[0]
    # The N diagonal terms contribute exp(0) = 1 each.
    total = pairwise_sum(
        embeddings, embeddings, lambda squared: np.exp(-uniformity_scale * squared)
    )
    uniformity = math.log(max(total - count, 1e-300) / (count * (count - 1)))
    return {
        "alignment": float(np.mean(list(per_class.values()))),
        "per_class_alignment": per_class,
        "uniformity": float(uniformity),
    }
