"""Classifier outputs and accuracy: predictions in batches, softmax, top-k, confusion, per class.

Labels are integer class indices `[N]`; classifier outputs are `[N, C]` logits
(`from_logits=True`) or probabilities.

Example:

>>> import numpy as np
>>> probabilities = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
>>> top_k_accuracy([0, 1, 1], probabilities, k=1)
0.6666666666666666
>>> confusion_matrix([0, 1, 1], probabilities.argmax(axis=1), num_classes=2).tolist()
[[1, 0], [1, 1]]
"""

import keras
import numpy as np

from supcon_tf.evaluation._checks import _check_labels, _check_positive_int, _check_scores


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
