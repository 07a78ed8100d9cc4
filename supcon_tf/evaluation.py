"""Evaluation of classifiers and representations: accuracy, calibration, kNN, embedding plots.

Everything the SupCon paper reports about a trained model, and a little more, as plain
functions on NumPy arrays (no flags, no global state):

* classifier quality: `top_k_accuracy`, `expected_calibration_error` (equal-width
  confidence bins) with `plot_reliability_diagram`, `per_class_accuracy` and
  `plot_confusion_matrix`;
* representation quality without training a classifier: `knn_accuracy` (weighted kNN on
  L2-normalised embeddings, Wu et al. 2018), `alignment_uniformity` (Wang & Isola 2020),
  `plot_tsne`, and the `KNNMonitor` callback that logs kNN accuracy during pretraining;
* whole runs: `evaluate_classifier`, `evaluate_encoder`, `evaluate_run` (writes
  `report.json` and `report.md` into a run folder) and `write_report_md`.

Corruption robustness lives in `supcon_tf.corruptions`.

Conventions: labels are integer class indices `[N]`; classifier outputs are `[N, C]`
logits (`from_logits=True`) or probabilities; embeddings are `[N, D]` floats.

Example:

>>> import numpy as np
>>> probabilities = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
>>> top_k_accuracy([0, 1, 1], probabilities, k=1)
0.6666666666666666
>>> round(expected_calibration_error([0, 1, 1], probabilities, num_bins=10), 4)
0.3
"""

import json
import math
import os
import time
from pathlib import Path

import keras
import numpy as np

WEIGHTINGS = ("exponential", "inverse_distance", "uniform")
PLOTS_FOLDER = "plots"
REPORT_JSON = "report.json"
REPORT_MD = "report.md"

# Added to distances before inverting them (weighting="inverse_distance"), so that a
# neighbour identical to the query gets a large but finite weight.
_DISTANCE_EPSILON = 1e-6


# ----------------------------------------------------------------------------- validation


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
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"`{name}` must be a positive integer, got {value!r}.")
    return int(value)


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


def softmax(logits):
    """Numerically stable softmax over the last axis of a `[N, C]` array (float64).

    Example:

    >>> softmax([[0.0, 0.0]]).tolist()
    [[0.5, 0.5]]
    """
    logits = np.asarray(logits, dtype=np.float64)
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exponentials = np.exp(shifted)
    return exponentials / exponentials.sum(axis=-1, keepdims=True)


# ----------------------------------------------------------------------------- predictions


def predict(model, images, batch_size=256):
    """Runs `model` on `images` in batches, in inference mode, and returns a NumPy array.

    Args:
        model: a `keras.Model` (uses `model.predict`) or any callable `images -> outputs`.
        images: `[N, ...]` array.
        batch_size: images per forward pass.

    Example:

    >>> import keras, numpy as np
    >>> model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    >>> predict(model, np.zeros((5, 3), "float32")).shape
    (5, 2)
    """
    batch_size = _check_positive_int(batch_size, "batch_size")
    if isinstance(model, keras.Model):
        return np.asarray(model.predict(images, batch_size=batch_size, verbose=0))
    if not callable(model):
        raise ValueError(
            f"`model` must be a keras.Model or a callable, got {type(model).__name__}."
        )
    outputs = [
        keras.ops.convert_to_numpy(model(images[start : start + batch_size]))
        for start in range(0, len(images), batch_size)
    ]
    return np.concatenate(outputs, axis=0)


def predict_probabilities(model, images, batch_size=256, from_logits=True):
    """Class probabilities `[N, C]` (float64) of a classifier on `images`.

    Args:
        model: a `keras.Model` or callable mapping images to `[N, C]` scores.
        images: `[N, ...]` array.
        batch_size: images per forward pass.
        from_logits: whether the model outputs logits (softmax is applied) rather than
            probabilities (used as they are). The classifiers of `supcon-train` output logits.

    Example:

    >>> import keras, numpy as np
    >>> model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4)])
    >>> probabilities = predict_probabilities(model, np.ones((2, 3), "float32"))
    >>> np.allclose(probabilities.sum(axis=1), 1.0)
    True
    """
    outputs = np.asarray(predict(model, images, batch_size), dtype=np.float64)
    if outputs.ndim != 2:
        raise ValueError(
            f"A classifier must output [N, num_classes] scores, got shape {outputs.shape}."
        )
    return softmax(outputs) if from_logits else outputs


# ----------------------------------------------------------------------------- accuracy


def top_k_accuracy(labels, scores, k=1):
    """Fraction of samples whose true class is among the `k` highest scores.

    Ties are broken towards the lower class index (a stable sort of `-scores`).

    Args:
        labels: integer class indices `[N]`.
        scores: `[N, C]` logits or probabilities (any monotone score works).
        k: how many top classes count as a hit; `1 <= k <= C`.

    Returns:
        A float in `[0, 1]`.

    Example:

    >>> top_k_accuracy([2, 0], [[0.1, 0.3, 0.6], [0.2, 0.5, 0.3]], k=2)
    0.5
    """
    labels, scores = _check_scores(labels, scores, name="scores")
    k = _check_positive_int(k, "k")
    if k > scores.shape[1]:
        raise ValueError(f"`k`={k} exceeds the number of classes ({scores.shape[1]}).")
    top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return float(np.mean(np.any(top == labels[:, None], axis=1)))


def confusion_matrix(labels, predictions, num_classes):
    """Counts `[num_classes, num_classes]`: row = true class, column = predicted class.

    Example:

    >>> confusion_matrix([0, 1, 1], [0, 0, 1], num_classes=2).tolist()
    [[1, 0], [1, 1]]
    """
    labels = _check_labels(labels)
    predictions = _check_labels(predictions, name="predictions")
    num_classes = _check_positive_int(num_classes, "num_classes")
    if labels.shape != predictions.shape:
        raise ValueError(
            f"`labels` {labels.shape} and `predictions` {predictions.shape} must have the same "
            "shape."
        )
    if labels.size and max(labels.max(), predictions.max()) >= num_classes:
        raise ValueError(
            f"A class index ({max(labels.max(), predictions.max())}) is >= `num_classes`="
            f"{num_classes}."
        )
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (labels, predictions), 1)
    return matrix


def per_class_accuracy(labels, predictions, num_classes):
    """Accuracy (recall) of every class: correct / true count; NaN for absent classes.

    Example:

    >>> per_class_accuracy([0, 0, 1], [0, 1, 1], num_classes=3).tolist()
    [0.5, 1.0, nan]
    """
    matrix = confusion_matrix(labels, predictions, num_classes)
    counts = matrix.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, np.diag(matrix) / np.maximum(counts, 1), np.nan)


# ----------------------------------------------------------------------------- calibration


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


# ----------------------------------------------------------------------------- kNN


def knn_scores(
    train_embeddings,
    train_labels,
    query_embeddings,
    k=200,
    temperature=0.1,
    weighting="exponential",
    num_classes=None,
    batch_size=1024,
):
    """Weighted kNN class votes `[Q, C]` of queries against a bank of labelled embeddings.

    Both sets are L2-normalised, so the similarity is the cosine `s = z_q . z_i`. Each
    query takes its `k` most similar bank entries and every neighbour votes for its class
    with weight

    * `"exponential"` (default): `exp(s / temperature)`, the weighted kNN of Wu et al.
      2018 ("Unsupervised Feature Learning via Non-Parametric Instance Discrimination",
      Sec. 3.4; `temperature=0.1`, `k=200` in that paper, as in InstDisc, MoCo and
      SimCLR-style evaluations);
    * `"inverse_distance"`: `1 / (||z_q - z_i|| + 1e-6)` with the Euclidean distance of
      the unit vectors, `sqrt(2 - 2 s)`;
    * `"uniform"`: 1 (a majority vote).

    `k` is capped at the size of the bank. Neighbours tied at the `k`-th similarity are
    chosen arbitrarily.

    Args:
        train_embeddings: `[N, D]` bank embeddings.
        train_labels: `[N]` integer labels of the bank.
        query_embeddings: `[Q, D]` embeddings to classify.
        k: number of neighbours.
        temperature: temperature of the `"exponential"` weighting.
        weighting: one of `WEIGHTINGS`.
        num_classes: number of classes (default: `max(train_labels) + 1`).
        batch_size: queries per similarity block (bounds memory at `batch_size * N`).

    Returns:
        A float64 `[Q, num_classes]` array of summed neighbour weights.

    Example:

    >>> bank = [[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]]
    >>> knn_scores(bank, [0, 0, 1], [[1.0, 0.05]], k=2, weighting="uniform").tolist()
    [[2.0, 0.0]]
    """
    bank = l2_normalize(_check_embeddings(train_embeddings, "train_embeddings"))
    queries = l2_normalize(_check_embeddings(query_embeddings, "query_embeddings"))
    bank_labels = _check_labels(train_labels, "train_labels")
    if bank_labels.shape[0] != bank.shape[0]:
        raise ValueError(
            f"`train_labels` has {bank_labels.shape[0]} entries but `train_embeddings` has "
            f"{bank.shape[0]} rows."
        )
    if queries.shape[1] != bank.shape[1]:
        raise ValueError(
            f"`query_embeddings` have dimension {queries.shape[1]} but `train_embeddings` "
            f"have {bank.shape[1]}."
        )
    if weighting not in WEIGHTINGS:
        raise ValueError(f"Unknown `weighting`={weighting!r}. Expected one of {WEIGHTINGS}.")
    if not isinstance(temperature, (int, float)) or not temperature > 0:
        raise ValueError(f"`temperature` must be a positive number, got {temperature!r}.")
    k = min(_check_positive_int(k, "k"), bank.shape[0])
    batch_size = _check_positive_int(batch_size, "batch_size")
    if num_classes is None:
        num_classes = int(bank_labels.max()) + 1
    num_classes = _check_positive_int(num_classes, "num_classes")
    if bank_labels.max() >= num_classes:
        raise ValueError(
            f"`train_labels` holds class {bank_labels.max()} but `num_classes`={num_classes}."
        )
    scores = np.zeros((queries.shape[0], num_classes))
    for start in range(0, queries.shape[0], batch_size):
        similarities = queries[start : start + batch_size] @ bank.T
        if k < bank.shape[0]:
            neighbours = np.argpartition(-similarities, k - 1, axis=1)[:, :k]
        else:
            neighbours = np.broadcast_to(np.arange(k), similarities.shape)
        neighbour_similarities = np.take_along_axis(similarities, neighbours, axis=1)
        if weighting == "exponential":
            # Shifting by the row maximum rescales a row's weights by a constant, which
            # leaves the arg-max unchanged and keeps exp() from overflowing.
            shift = neighbour_similarities.max(axis=1, keepdims=True)
            weights = np.exp((neighbour_similarities - shift) / temperature)
        elif weighting == "inverse_distance":
            distances = np.sqrt(np.maximum(2.0 - 2.0 * neighbour_similarities, 0.0))
            weights = 1.0 / (distances + _DISTANCE_EPSILON)
        else:
            weights = np.ones_like(neighbour_similarities)
        block = scores[start : start + batch_size]
        rows = np.repeat(np.arange(block.shape[0]), k)
        np.add.at(block, (rows, bank_labels[neighbours].ravel()), weights.ravel())
    return scores


def knn_accuracy(
    train_embeddings,
    train_labels,
    test_embeddings,
    test_labels,
    k=200,
    temperature=0.1,
    weighting="exponential",
):
    """Accuracy of the weighted kNN classifier of `knn_scores` (cosine similarity).

    The predicted class is the arg-max of the votes (ties towards the lower index).

    Args:
        train_embeddings: `[N, D]` embeddings of the labelled bank (e.g. the training set).
        train_labels: `[N]` integer labels of the bank.
        test_embeddings: `[Q, D]` embeddings to classify.
        test_labels: `[Q]` integer labels of the queries.
        k: number of neighbours (capped at N).
        temperature: temperature of the `"exponential"` weighting `exp(s / temperature)`.
        weighting: `"exponential"` (Wu et al. 2018, default), `"inverse_distance"` or
            `"uniform"`.

    Returns:
        A float in `[0, 1]`.

    Example:

    >>> bank = [[1.0, 0.0], [0.0, 1.0]]
    >>> knn_accuracy(bank, [0, 1], [[0.9, 0.2], [0.1, 0.8]], [0, 1], k=1)
    1.0
    """
    test_labels = _check_labels(test_labels, "test_labels")
    train_labels = _check_labels(train_labels, "train_labels")
    num_classes = int(max(train_labels.max(initial=0), test_labels.max(initial=0))) + 1
    scores = knn_scores(
        train_embeddings,
        train_labels,
        test_embeddings,
        k=k,
        temperature=temperature,
        weighting=weighting,
        num_classes=num_classes,
    )
    if scores.shape[0] != test_labels.shape[0]:
        raise ValueError(
            f"`test_labels` has {test_labels.shape[0]} entries but `test_embeddings` has "
            f"{scores.shape[0]} rows."
        )
    return float(np.mean(scores.argmax(axis=1) == test_labels))


class KNNMonitor(keras.callbacks.Callback):
    """Logs the weighted kNN accuracy of an encoder every few epochs (online monitoring).

    At the end of every `every_n_epochs`-th epoch the callback embeds `train_data` (the
    labelled bank) and `validation_data` with `encoder` in inference mode and adds
    `val_knn_accuracy` (see `knn_accuracy`) to the epoch logs. Later callbacks see it:
    `History` (`history.history["val_knn_accuracy"]`), the progress bar and a
    `keras.callbacks.TensorBoard` placed *after* this callback in the list (it appears as
    `epoch_knn_accuracy` in the validation run). `keras.callbacks.CSVLogger` fixes its
    columns at the first epoch, so it records the value only with `every_n_epochs=1`.
    The labels are used only for the kNN vote, never for training, so this also measures
    a SimCLR representation during pretraining.

    Args:
        encoder: the model (or callable) mapping images to embeddings `[N, D]`; usually the
            encoder being pretrained (its weights are shared, so the numbers follow training).
        train_data: `(images, labels)` of the kNN bank.
        validation_data: `(images, labels)` to classify.
        k: number of neighbours.
        temperature: temperature of the `exp(s / temperature)` weights (Wu et al. 2018).
        every_n_epochs: evaluate after epochs `every_n_epochs`, `2 * every_n_epochs`, ...
        batch_size: images per encoder forward pass.

    Example:

    >>> import keras, numpy as np
    >>> images = np.random.default_rng(0).random((8, 4)).astype("float32")
    >>> labels = np.array([0, 1] * 4)
    >>> encoder = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    >>> monitor = KNNMonitor(encoder, (images, labels), (images, labels), k=3)
    >>> logs = {}
    >>> monitor.on_epoch_end(0, logs)
    >>> 0.0 <= logs["val_knn_accuracy"] <= 1.0
    True
    """

    def __init__(
        self,
        encoder,
        train_data,
        validation_data,
        k=200,
        temperature=0.1,
        every_n_epochs=1,
        batch_size=256,
    ):
        super().__init__()
        for name, data in (("train_data", train_data), ("validation_data", validation_data)):
            if not isinstance(data, (tuple, list)) or len(data) != 2:
                raise ValueError(f"`{name}` must be an (images, labels) pair, got {type(data)}.")
            if len(data[0]) != len(data[1]):
                raise ValueError(f"`{name}` has {len(data[0])} images but {len(data[1])} labels.")
        self.encoder = encoder
        self.train_data = train_data
        self.validation_data = validation_data
        self.k = _check_positive_int(k, "k")
        if not isinstance(temperature, (int, float)) or not temperature > 0:
            raise ValueError(f"`temperature` must be a positive number, got {temperature!r}.")
        self.temperature = temperature
        self.every_n_epochs = _check_positive_int(every_n_epochs, "every_n_epochs")
        self.batch_size = _check_positive_int(batch_size, "batch_size")

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every_n_epochs:
            return
        accuracy = knn_accuracy(
            predict(self.encoder, self.train_data[0], self.batch_size),
            self.train_data[1],
            predict(self.encoder, self.validation_data[0], self.batch_size),
            self.validation_data[1],
            k=self.k,
            temperature=self.temperature,
        )
        if logs is not None:
            logs["val_knn_accuracy"] = accuracy


# ----------------------------------------------------------------------------- geometry


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
    for name, value in (
        ("alignment_power", alignment_power),
        ("uniformity_scale", uniformity_scale),
    ):
        if not isinstance(value, (int, float)) or not value > 0:
            raise ValueError(f"`{name}` must be a positive number, got {value!r}.")

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


# ----------------------------------------------------------------------------- plots


def _new_figure(width=5.0, height=4.5):
    """A matplotlib Figure not attached to pyplot (no global state, no display needed)."""
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def _save_figure(figure, path):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png")
    return path


def plot_reliability_diagram(labels, probabilities, path, num_bins=15, title=None):
    """Writes a reliability diagram (accuracy vs confidence per bin) as a PNG.

    Bars show the accuracy of each equal-width confidence bin of `calibration_bins`, the
    diagonal is perfect calibration, and a hatched red bar spans the gap from the bin's
    accuracy to its mean confidence; the title carries the ECE.

    Args:
        labels: integer class indices `[N]`.
        probabilities: `[N, C]` class probabilities.
        path: the PNG file to write (folders are created).
        num_bins: number of equal-width bins.
        title: optional title prefix (e.g. the model name).

    Returns:
        The `pathlib.Path` written.

    Example:

    >>> import tempfile, numpy as np
    >>> folder = tempfile.mkdtemp()
    >>> path = plot_reliability_diagram([0, 1], [[0.8, 0.2], [0.4, 0.6]], f"{folder}/r.png")
    >>> path.read_bytes()[:4] == b"\\x89PNG"
    True
    """
    bins = calibration_bins(labels, probabilities, num_bins)
    ece = expected_calibration_error(labels, probabilities, num_bins)
    edges = bins["edges"]
    centers = (edges[:-1] + edges[1:]) / 2
    width = edges[1] - edges[0]
    figure = _new_figure()
    axes = figure.subplots()
    nonempty = bins["counts"] > 0
    axes.bar(
        centers[nonempty],
        bins["accuracy"][nonempty],
        width=width,
        edgecolor="black",
        color="tab:blue",
        label="accuracy",
    )
    gaps = bins["confidence"] - bins["accuracy"]
    axes.bar(
        centers[nonempty],
        gaps[nonempty],
        bottom=bins["accuracy"][nonempty],
        width=width,
        edgecolor="tab:red",
        facecolor="none",
        hatch="//",
        label="gap: accuracy to mean confidence",
    )
    axes.plot([0, 1], [0, 1], "--", color="gray", label="perfect calibration")
    axes.set_xlim(0, 1)
    axes.set_ylim(0, 1)
    axes.set_xlabel("confidence")
    axes.set_ylabel("accuracy")
    prefix = f"{title}: " if title else ""
    axes.set_title(f"{prefix}ECE = {ece:.4f} ({num_bins} bins)")
    axes.legend(loc="upper left")
    return _save_figure(figure, path)


def plot_confusion_matrix(labels, predictions, path, class_names=None, title=None):
    """Writes the row-normalised confusion matrix (true class x predicted class) as a PNG.

    Args:
        labels: integer class indices `[N]`.
        predictions: predicted class indices `[N]`.
        path: the PNG file to write.
        class_names: names of the classes (default: their indices); their number sets the
            matrix size (default: the largest index + 1).
        title: optional title.

    Returns:
        The `pathlib.Path` written.

    Example:

    >>> import tempfile
    >>> path = plot_confusion_matrix([0, 1, 1], [0, 0, 1], f"{tempfile.mkdtemp()}/c.png")
    >>> path.stat().st_size > 1000
    True
    """
    labels = _check_labels(labels)
    predictions = _check_labels(predictions, name="predictions")
    if class_names is None:
        num_classes = int(max(labels.max(initial=0), predictions.max(initial=0))) + 1
        class_names = [str(index) for index in range(num_classes)]
    class_names = [str(name) for name in class_names]
    matrix = confusion_matrix(labels, predictions, len(class_names)).astype(np.float64)
    normalised = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    size = min(4.0 + 0.35 * len(class_names), 16.0)
    figure = _new_figure(size + 1.0, size)
    axes = figure.subplots()
    image = axes.imshow(normalised, cmap="Blues", vmin=0.0, vmax=1.0)
    figure.colorbar(image, ax=axes, label="fraction of the true class")
    ticks = np.arange(len(class_names))
    if len(class_names) <= 30:
        axes.set_xticks(ticks, class_names, rotation=90)
        axes.set_yticks(ticks, class_names)
    if len(class_names) <= 15:
        for row in range(len(class_names)):
            for column in range(len(class_names)):
                value = normalised[row, column]
                axes.text(
                    column,
                    row,
                    f"{value:.2f}",
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if value > 0.5 else "black",
                )
    axes.set_xlabel("predicted class")
    axes.set_ylabel("true class")
    axes.set_title(title or "confusion matrix")
    return _save_figure(figure, path)


def plot_tsne(
    embeddings, labels, path, class_names=None, perplexity=30.0, max_samples=1000, seed=0
):
    """Writes a 2-D t-SNE map (scikit-learn) of L2-normalised embeddings coloured by class.

    Args:
        embeddings: `[N, D]` embeddings (normalised here, so the map reflects cosine
            geometry).
        labels: `[N]` integer labels (the colours).
        path: the PNG file to write.
        class_names: legend names of the classes (default: their indices).
        perplexity: t-SNE perplexity; lowered to `(n - 1) / 3` for small `n`.
        max_samples: a seeded random subset of at most this many points is mapped
            (t-SNE is quadratic in time).
        seed: seed of the subset and of t-SNE.

    Returns:
        The `pathlib.Path` written.

    Example:

    >>> import tempfile, numpy as np
    >>> points = np.random.default_rng(0).normal(size=(20, 5))
    >>> path = plot_tsne(points, [0, 1] * 10, f"{tempfile.mkdtemp()}/t.png", perplexity=5)
    >>> path.stat().st_size > 1000
    True
    """
    from sklearn.manifold import TSNE
    from threadpoolctl import threadpool_limits

    embeddings, labels = _normalized_with_labels(embeddings, labels)
    if embeddings.shape[0] < 4:
        raise ValueError(f"t-SNE needs at least 4 embeddings, got {embeddings.shape[0]}.")
    max_samples = _check_positive_int(max_samples, "max_samples")
    if not isinstance(perplexity, (int, float)) or not perplexity > 0:
        raise ValueError(f"`perplexity` must be a positive number, got {perplexity!r}.")
    rng = np.random.default_rng(seed)
    if embeddings.shape[0] > max_samples:
        chosen = np.sort(rng.choice(embeddings.shape[0], max_samples, replace=False))
        embeddings, labels = embeddings[chosen], labels[chosen]
    perplexity = min(float(perplexity), (embeddings.shape[0] - 1) / 3)
    # One OpenMP thread: scikit-learn's t-SNE threads spin-wait badly on a busy machine
    # (measured 12x slower with 2 threads than with 1 on the shared 2-core box).
    with threadpool_limits(limits=1, user_api="openmp"):
        points = TSNE(
            n_components=2, perplexity=perplexity, init="pca", random_state=seed
        ).fit_transform(embeddings)
    num_classes = int(labels.max()) + 1
    if class_names is None:
        class_names = [str(index) for index in range(num_classes)]
    figure = _new_figure(6.5, 5.5)
    axes = figure.subplots()
    colormap = "tab10" if num_classes <= 10 else "tab20" if num_classes <= 20 else "turbo"
    scatter = axes.scatter(
        points[:, 0], points[:, 1], c=labels, cmap=colormap, s=6, vmin=0, vmax=num_classes - 1
    )
    if num_classes <= 20:
        handles = [
            axes.scatter([], [], color=scatter.cmap(scatter.norm(label)), s=12)
            for label in range(num_classes)
        ]
        axes.legend(handles, [str(name) for name in class_names], fontsize=7, loc="best")
    axes.set_xticks([])
    axes.set_yticks([])
    axes.set_title(f"t-SNE of {embeddings.shape[0]} test embeddings")
    return _save_figure(figure, path)


# ----------------------------------------------------------------------------- whole models


def _relative(path, run_dir):
    """`path` relative to `run_dir` as a POSIX string (how report.md links it)."""
    return Path(os.path.relpath(path, run_dir)).as_posix()


def _class_names(class_names, num_classes):
    if class_names is None:
        return [str(index) for index in range(num_classes)]
    class_names = [str(name) for name in class_names]
    if len(class_names) != num_classes:
        raise ValueError(
            f"{len(class_names)} `class_names` given for a {num_classes}-class problem."
        )
    return class_names


def evaluate_classifier(
    model,
    images,
    labels,
    run_dir=None,
    name="classifier",
    class_names=None,
    num_bins=15,
    batch_size=256,
    from_logits=True,
):
    """Top-1/top-5 accuracy, ECE, per-class accuracy and plots of one classifier.

    Args:
        model: a `keras.Model` (or callable) mapping images to `[N, C]` logits.
        images: `[N, ...]` test images.
        labels: `[N]` integer labels.
        run_dir: folder for the PNGs (`plots/<name>_reliability.png`,
            `plots/<name>_confusion.png`); `None` writes no plot.
        name: the model's name in file names and titles.
        class_names: names of the `C` classes (default: indices).
        num_bins: number of ECE bins.
        batch_size: images per forward pass.
        from_logits: whether the model outputs logits (see `predict_probabilities`).

    Returns:
        A JSON-ready dict: `top1_accuracy`, `top5_accuracy` (only when C > 5),
        `expected_calibration_error`, `num_bins`, `num_samples`, `per_class_accuracy`
        (class name -> accuracy or None when the class is absent) and `plots` (paths
        relative to `run_dir`).

    Example:

    >>> import keras, numpy as np
    >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(3)])
    >>> result = evaluate_classifier(model, np.zeros((4, 2), "float32"), [0, 1, 2, 0])
    >>> result["top1_accuracy"]
    0.5
    """
    probabilities = predict_probabilities(model, images, batch_size, from_logits)
    labels, probabilities = _check_scores(labels, probabilities)
    num_classes = probabilities.shape[1]
    names = _class_names(class_names, num_classes)
    predictions = probabilities.argmax(axis=1)
    result = {
        "top1_accuracy": top_k_accuracy(labels, probabilities, k=1),
        "expected_calibration_error": expected_calibration_error(labels, probabilities, num_bins),
        "num_bins": num_bins,
        "num_samples": int(labels.shape[0]),
    }
    if num_classes > 5:
        result["top5_accuracy"] = top_k_accuracy(labels, probabilities, k=5)
    accuracies = per_class_accuracy(labels, predictions, num_classes)
    result["per_class_accuracy"] = {
        class_name: None if math.isnan(value) else float(value)
        for class_name, value in zip(names, accuracies, strict=True)
    }
    result["plots"] = {}
    if run_dir is not None:
        plots = Path(run_dir, PLOTS_FOLDER)
        reliability = plot_reliability_diagram(
            labels, probabilities, plots / f"{name}_reliability.png", num_bins, title=name
        )
        confusion = plot_confusion_matrix(
            labels, predictions, plots / f"{name}_confusion.png", names, title=f"{name}"
        )
        result["plots"] = {
            "reliability_diagram": _relative(reliability, run_dir),
            "confusion_matrix": _relative(confusion, run_dir),
        }
    return result


def evaluate_encoder(
    encoder,
    train_images,
    train_labels,
    test_images,
    test_labels,
    run_dir=None,
    name="encoder",
    class_names=None,
    k=200,
    temperature=0.1,
    batch_size=256,
    tsne_samples=1000,
    seed=0,
):
    """Representation quality of an encoder without training a classifier.

    Computes the weighted kNN accuracy of the test set against the training set
    (`knn_accuracy`, exponential weights of Wu et al. 2018), the alignment and
    uniformity of the test embeddings (`alignment_uniformity`) and a t-SNE plot.

    Args:
        encoder: a `keras.Model` (or callable) mapping images to embeddings `[N, D]`.
        train_images, train_labels: the labelled kNN bank.
        test_images, test_labels: the evaluated set.
        run_dir: folder for `plots/<name>_tsne.png`; `None` writes no plot.
        name: the encoder's name in file names.
        class_names: legend names of the classes.
        k: number of kNN neighbours.
        temperature: kNN weight temperature.
        batch_size: images per forward pass.
        tsne_samples: at most this many test embeddings are mapped by t-SNE (0 skips it).
        seed: seed of the t-SNE subset and map.

    Returns:
        A JSON-ready dict: `knn_accuracy`, `knn_k`, `knn_temperature`, `knn_weighting`,
        `alignment`, `per_class_alignment` (class name -> float), `uniformity`,
        `embedding_dim` and `plots`.

    Example:

    >>> import keras, numpy as np
    >>> images = np.random.default_rng(0).random((10, 4)).astype("float32")
    >>> labels = np.arange(10) % 2
    >>> encoder = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    >>> result = evaluate_encoder(encoder, images, labels, images, labels, k=1)
    >>> result["knn_accuracy"]
    1.0
    """
    train_embeddings = predict(encoder, train_images, batch_size)
    test_embeddings = predict(encoder, test_images, batch_size)
    if train_embeddings.ndim != 2:
        raise ValueError(
            f"An encoder must output [N, dim] embeddings, got shape {train_embeddings.shape}."
        )
    test_labels = _check_labels(test_labels, "test_labels")
    accuracy = knn_accuracy(
        train_embeddings, train_labels, test_embeddings, test_labels, k=k, temperature=temperature
    )
    geometry = alignment_uniformity(test_embeddings, test_labels)
    names = None
    if class_names is not None:
        names = [str(name) for name in class_names]
        largest = int(max(_check_labels(train_labels).max(), test_labels.max()))
        if largest >= len(names):
            raise ValueError(
                f"A label ({largest}) has no name: {len(names)} `class_names` were given."
            )
    result = {
        "knn_accuracy": accuracy,
        "knn_k": int(min(k, train_embeddings.shape[0])),
        "knn_temperature": float(temperature),
        "knn_weighting": "exponential",
        "alignment": geometry["alignment"],
        "per_class_alignment": {
            (names[label] if names else str(label)): value
            for label, value in geometry["per_class_alignment"].items()
        },
        "uniformity": geometry["uniformity"],
        "embedding_dim": int(train_embeddings.shape[1]),
        "plots": {},
    }
    if run_dir is not None and tsne_samples:
        tsne = plot_tsne(
            test_embeddings,
            test_labels,
            Path(run_dir, PLOTS_FOLDER, f"{name}_tsne.png"),
            class_names=names,
            max_samples=tsne_samples,
            seed=seed,
        )
        result["plots"]["tsne"] = _relative(tsne, run_dir)
    return result


# ----------------------------------------------------------------------------- run folders

CLASSIFIER_FILES = {"supcon": "classifier.keras", "cross_entropy": "baseline.keras"}
ENCODER_FILES = {"supcon": "encoder.keras"}


def update_report_json(run_dir, update):
    """Sets the top-level keys of `update` in `run_dir/report.json` and returns the report.

    The file is created if absent; top-level keys that `update` does not mention (e.g.
    the training results) are kept, the ones it names are replaced (so a new evaluation
    leaves no stale numbers). The file is replaced atomically.

    Example:

    >>> import tempfile
    >>> folder = tempfile.mkdtemp()
    >>> _ = update_report_json(folder, {"supcon": {"test_accuracy": 0.9}})
    >>> sorted(update_report_json(folder, {"evaluation": {}}))
    ['evaluation', 'supcon']
    """
    path = Path(run_dir, REPORT_JSON)
    report = {}
    if path.exists():
        try:
            report = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as error:
            raise ValueError(f"{path} is not valid JSON ({error}); fix or remove it.") from error
        if not isinstance(report, dict):
            raise ValueError(f"{path} must hold a JSON object, got {type(report).__name__}.")
    report.update(update)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(temporary, path)
    return report


def _cell(value, digits=4):
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(value) for value in row) + " |" for row in rows]
    return lines


def _images(plots, run_dir):
    """Markdown image links of the `plots` dict whose files exist."""
    return [
        f"![{name.replace('_', ' ')}]({path})"
        for name, path in plots.items()
        if Path(run_dir, path).is_file()
    ]


def write_report_md(report, run_dir):
    """Writes `run_dir/report.md`: a short human summary of `report` linking the PNGs.

    `report` is the content of `report.json`: the training results (`supcon` and
    `cross_entropy` with `test_accuracy`, when present) and the `evaluation` written by
    `evaluate_run` (classifiers, encoders, corruptions). Plots are linked by their paths
    relative to `run_dir`; plots whose file is missing are left out.

    Args:
        report: a dict as stored in `report.json`.
        run_dir: the run folder.

    Returns:
        The `pathlib.Path` of report.md.

    Example:

    >>> import tempfile
    >>> path = write_report_md({"supcon": {"test_accuracy": 0.95}}, tempfile.mkdtemp())
    >>> "0.9500" in path.read_text()
    True
    """
    if not isinstance(report, dict):
        raise ValueError(f"`report` must be a dict (report.json), got {type(report).__name__}.")
    run_dir = Path(run_dir)
    evaluation = report.get("evaluation", {})
    lines = ["# Evaluation report", ""]
    if evaluation.get("dataset"):
        lines += [f"Dataset: `{evaluation['dataset']}`.", ""]

    trained = [
        (name, report[name].get("test_accuracy"))
        for name in ("supcon", "cross_entropy")
        if isinstance(report.get(name), dict) and "test_accuracy" in report[name]
    ]
    if trained:
        lines += ["## Test accuracy at the end of training", ""]
        lines += _table(["model", "test accuracy"], trained) + [""]

    classifiers = evaluation.get("classifiers", {})
    if classifiers:
        num_bins = next(iter(classifiers.values())).get("num_bins", 15)
        lines += ["## Classifiers: accuracy and calibration", ""]
        rows = [
            (
                name,
                result.get("top1_accuracy"),
                result.get("top5_accuracy"),
                result.get("expected_calibration_error"),
                result.get("num_samples"),
            )
            for name, result in classifiers.items()
        ]
        lines += _table(["model", "top-1", "top-5", f"ECE ({num_bins} bins)", "test samples"], rows)
        lines += [""]
        for name, result in classifiers.items():
            images = _images(result.get("plots", {}), run_dir)
            if images:
                lines += [f"### {name}", "", *images, ""]
        class_names = list(next(iter(classifiers.values())).get("per_class_accuracy", {}))
        if class_names:
            lines += ["## Accuracy per class", ""]
            rows = [
                [class_name]
                + [
                    result.get("per_class_accuracy", {}).get(class_name)
                    for result in classifiers.values()
                ]
                for class_name in class_names
            ]
            lines += _table(["class", *classifiers], rows) + [""]

    encoders = evaluation.get("encoders", {})
    if encoders:
        lines += ["## Representation: kNN, alignment, uniformity", ""]
        rows = [
            (
                name,
                result.get("knn_accuracy"),
                result.get("knn_k"),
                result.get("knn_temperature"),
                result.get("alignment"),
                result.get("uniformity"),
                result.get("embedding_dim"),
            )
            for name, result in encoders.items()
        ]
        lines += _table(
            ["encoder", "kNN accuracy", "k", "temperature", "alignment", "uniformity", "dim"],
            rows,
        )
        lines += [
            "",
            "Weighted kNN (cosine, weights exp(s / temperature), Wu et al. 2018) of the test "
            "embeddings against the training embeddings; alignment: mean over classes of the "
            "mean squared distance of same-class pairs; uniformity: log mean exp(-2 d^2) over "
            "all pairs (Wang & Isola 2020; lower is better for both).",
            "",
        ]
        for name, result in encoders.items():
            images = _images(result.get("plots", {}), run_dir)
            if images:
                lines += [f"### {name}", "", *images, ""]

    corruption_result = evaluation.get("corruptions")
    if corruption_result and corruption_result.get("models"):
        # Imported here: supcon_tf.corruptions imports this module.
        from supcon_tf import corruptions

        lines += ["## Corruption robustness", ""]
        lines += [
            f"{len(corruption_result['corruptions'])} corruptions "
            f"({', '.join(corruption_result['corruptions'])}) at severities "
            f"{corruption_result['severities']}, on {corruption_result['num_samples']} test "
            "images (applied on the fly; not the published CIFAR-10-C files).",
            "",
            corruptions.corruption_table(corruption_result),
            "",
        ]
        if corruption_result.get("baseline") is not None:
            rows = [
                [name]
                + [
                    corruption_result["models"][model].get("corruption_error", {}).get(name)
                    for model in corruption_result["models"]
                ]
                for name in corruption_result["corruptions"]
            ]
            lines += [f"Corruption error per corruption (vs {corruption_result['baseline']}):", ""]
            lines += _table(["corruption", *corruption_result["models"]], rows) + [""]
        lines += _images(corruption_result.get("plots", {}), run_dir) + [""]

    path = run_dir / REPORT_MD
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines).rstrip() + "\n", encoding="utf-8")
    return path


def _load_model(path):
    try:
        return keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as error:
        raise ValueError(f"Could not load the Keras model {path}: {error}") from error


def evaluate_run(
    model_dir,
    splits,
    num_bins=15,
    knn_k=200,
    knn_temperature=0.1,
    corruptions=None,
    corruption_samples=1000,
    tsne_samples=1000,
    batch_size=256,
    seed=0,
):
    """Evaluates the models of a `supcon-train` run folder and writes report.json/report.md.

    Loads `classifier.keras` (the linear classifier on the SupCon encoder, named
    `supcon`), and when present `baseline.keras` (the cross-entropy baseline,
    `cross_entropy`) and `encoder.keras` (the SupCon encoder). It then measures

    * for each classifier on the test set: top-1/top-5 accuracy, ECE with a reliability
      diagram, per-class accuracy with a confusion matrix (`evaluate_classifier`);
    * for the encoder: weighted kNN accuracy (training set as the bank), alignment,
      uniformity and a t-SNE plot (`evaluate_encoder`);
    * for all classifiers: accuracy and ECE under corruptions x severities on a seeded
      subset of the test set, with the corruption errors relative to `cross_entropy`
      when it exists (`supcon_tf.corruptions.evaluate_corruptions`).

    The results are merged into `model_dir/report.json` under `"evaluation"` (other keys
    are kept), plots go to `model_dir/plots/`, and `model_dir/report.md` links them.

    Args:
        model_dir: the run folder.
        splits: the dataset, an object with `x_train`, `y_train`, `x_test`, `y_test` and
            optionally `class_names` and `name` (e.g. `supcon_tf.data.DatasetSplits`).
        num_bins: ECE bins.
        knn_k: kNN neighbours.
        knn_temperature: kNN weight temperature.
        corruptions: corruption names (default: all that apply to the images).
        corruption_samples: test images used for the corruption study (0 skips it).
        tsne_samples: test embeddings in the t-SNE plot (0 skips it).
        batch_size: images per forward pass.
        seed: seed of the subsets, corruptions and t-SNE.

    Returns:
        The `"evaluation"` dict written to report.json.

    Example (a run folder made by hand):

    >>> import tempfile, types, keras, numpy as np
    >>> folder = tempfile.mkdtemp()
    >>> rng = np.random.default_rng(0)
    >>> images, labels = rng.random((12, 4, 4, 1)).astype("float32"), np.arange(12) % 2
    >>> model = keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Flatten(),
    ...                           keras.layers.Dense(2)])
    >>> model.save(f"{folder}/classifier.keras")
    >>> splits = types.SimpleNamespace(x_train=images, y_train=labels, x_test=images,
    ...                                y_test=labels)
    >>> result = evaluate_run(folder, splits, corruption_samples=0, tsne_samples=0)
    >>> sorted(result["classifiers"])
    ['supcon']
    """
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise FileNotFoundError(f"Run folder {model_dir} does not exist.")
    classifier_path = model_dir / CLASSIFIER_FILES["supcon"]
    if not classifier_path.is_file():
        raise FileNotFoundError(
            f"{classifier_path} not found: `model_dir` must be a finished supcon-train run "
            "folder holding classifier.keras."
        )
    for attribute in ("x_train", "y_train", "x_test", "y_test"):
        if not hasattr(splits, attribute):
            raise ValueError(f"`splits` has no `{attribute}`; pass a supcon_tf.data.DatasetSplits.")
    x_test, y_test = np.asarray(splits.x_test), _check_labels(splits.y_test, "y_test")
    class_names = getattr(splits, "class_names", None)
    timings = {}
    result = {"dataset": getattr(splits, "name", None), "classifiers": {}, "encoders": {}}

    classifiers = {}
    for name, file_name in CLASSIFIER_FILES.items():
        if (model_dir / file_name).is_file():
            classifiers[name] = _load_model(model_dir / file_name)
    for name, model in classifiers.items():
        start = time.perf_counter()
        result["classifiers"][name] = evaluate_classifier(
            model,
            x_test,
            y_test,
            run_dir=model_dir,
            name=name,
            class_names=class_names,
            num_bins=num_bins,
            batch_size=batch_size,
        )
        timings[f"classifier_{name}"] = time.perf_counter() - start

    for name, file_name in ENCODER_FILES.items():
        if not (model_dir / file_name).is_file():
            continue
        start = time.perf_counter()
        result["encoders"][name] = evaluate_encoder(
            _load_model(model_dir / file_name),
            np.asarray(splits.x_train),
            splits.y_train,
            x_test,
            y_test,
            run_dir=model_dir,
            name=name,
            class_names=class_names,
            k=knn_k,
            temperature=knn_temperature,
            batch_size=batch_size,
            tsne_samples=tsne_samples,
            seed=seed,
        )
        timings[f"encoder_{name}"] = time.perf_counter() - start

    if corruption_samples:
        # Imported here: supcon_tf.corruptions imports this module.
        from supcon_tf import corruptions as corruption_module

        start = time.perf_counter()
        rng = np.random.default_rng(seed)
        count = min(int(corruption_samples), x_test.shape[0])
        chosen = np.sort(rng.choice(x_test.shape[0], count, replace=False))
        corruption_result = corruption_module.evaluate_corruptions(
            classifiers,
            x_test[chosen],
            y_test[chosen],
            corruptions=corruptions,
            baseline="cross_entropy" if "cross_entropy" in classifiers else None,
            num_bins=num_bins,
            batch_size=batch_size,
            seed=seed,
        )
        plot = corruption_module.plot_corruption_results(
            corruption_result, model_dir / PLOTS_FOLDER / "corruptions.png"
        )
        corruption_result["plots"] = {"corruption_robustness": _relative(plot, model_dir)}
        result["corruptions"] = corruption_result
        timings["corruptions"] = time.perf_counter() - start

    result["timings"] = timings
    report = update_report_json(model_dir, {"evaluation": result})
    write_report_md(report, model_dir)
    return result
