"""Evaluation over a stream of batches, in memory that does not grow with the images.

A streamed dataset (an image folder cropped to one size, TFRecord shards, TFDS) is
never held in RAM: its splits come as `(images, labels)` batches. These functions go
through such batches once and keep only what the measures need:

* `stream_outputs`: a model's outputs (logits, embeddings) and the labels, batch by
  batch (`[N, C]` or `[N, D]`, never the `[N, H, W, 3]` images);
* `stream_knn_scores`: weighted kNN votes of queries against a bank that streams by:
  a running top-`k` per query, so the bank (the training set) is never stored;
* `stream_subset`: the images at chosen positions of a split (a capped, seeded
  subset, e.g. for the corruption study).

Example:

>>> import numpy as np, tensorflow as tf
>>> images = np.arange(12, dtype="float32").reshape(6, 2)
>>> batches = tf.data.Dataset.from_tensor_slices((images, np.arange(6) % 2)).batch(4)
>>> outputs, labels = stream_outputs(lambda x: 2 * x, batches)
>>> outputs.shape, labels.tolist()
((6, 2), [0, 1, 0, 1, 0, 1])
>>> stream_subset(batches, [1, 4])[1].tolist()
[1, 0]
"""

import keras
import numpy as np

from supcon_tf.evaluation._checks import _check_labels, _check_positive_int
from supcon_tf.evaluation.representation import l2_normalize


def _forward(model, images):
    """One batch through `model` in inference mode, as a NumPy array."""
    if isinstance(model, keras.Model):
        # The compiled predict step: the same forward pass as `model.evaluate`.
        return np.asarray(model.predict_on_batch(images))
    return keras.ops.convert_to_numpy(model(images))


def stream_outputs(model, batches):
    """`(outputs, labels)`: `model` on every batch of `(images, labels)`, concatenated.

    Args:
        model: a `keras.Model` (its predict step) or a callable `images -> outputs`.
        batches: an iterable of `(images, labels)` batches (e.g. a `tf.data.Dataset`).

    Returns:
        The `[N, ...]` outputs and the `[N]` int64 labels, in stream order.
    """
    outputs, labels = [], []
    for images, batch_labels in batches:
        outputs.append(_forward(model, images))
        labels.append(np.asarray(batch_labels).reshape(-1).astype(np.int64))
    if not outputs:
        raise ValueError("The stream of batches is empty: there is nothing to evaluate.")
    return np.concatenate(outputs), np.concatenate(labels)


def stream_knn_scores(encoder, bank_batches, queries, num_classes, k=200, temperature=0.1):
    """Weighted kNN votes `[Q, C]` of `queries` against a bank streamed by `encoder`.

    The same votes as `supcon_tf.evaluation.knn.knn_scores` with the `"exponential"`
    weighting (cosine similarity, weights `exp(s / temperature)`, `k` capped at the bank
    size), computed while the bank streams by: each query keeps the `k` largest
    similarities seen so far and their labels, so memory is `Q * (k + batch)` whatever
    the bank's size.

    Args:
        encoder: model or callable mapping a batch of images to `[B, D]` embeddings.
        bank_batches: iterable of `(images, labels)` batches of the labelled bank.
        queries: `[Q, D]` query embeddings.
        num_classes: number of classes (every bank label is below it).
        k: number of neighbours.
        temperature: temperature of the weights.

    Returns:
        A float64 `[Q, num_classes]` array, and the bank size.

    Example:

    >>> import numpy as np
    >>> bank = [(np.eye(2, dtype="float32"), np.array([0, 1]))]
    >>> scores, size = stream_knn_scores(lambda x: x, bank, np.array([[0.9, 0.1]]), 2, k=1)
    >>> scores.argmax(axis=1).tolist(), size
    ([0], 2)
    """
    queries = l2_normalize(np.asarray(queries, dtype=np.float64))
    k = _check_positive_int(k, "k")
    num_queries = queries.shape[0]
    best = np.full((num_queries, 0), -np.inf)
    best_labels = np.zeros((num_queries, 0), np.int64)
    bank_size = 0
    for images, labels in bank_batches:
        embeddings = l2_normalize(np.asarray(_forward(encoder, images), dtype=np.float64))
        labels = _check_labels(np.asarray(labels).reshape(-1), "bank labels")
        if labels.size and labels.max() >= num_classes:
            raise ValueError(f"A bank label ({labels.max()}) is not below {num_classes} classes.")
        bank_size += labels.shape[0]
        similarities = np.concatenate([best, queries @ embeddings.T], axis=1)
        candidate_labels = np.concatenate(
            [best_labels, np.broadcast_to(labels, (num_queries, labels.shape[0]))], axis=1
        )
        if similarities.shape[1] > k:
            keep = np.argpartition(-similarities, k - 1, axis=1)[:, :k]
            similarities = np.take_along_axis(similarities, keep, axis=1)
            candidate_labels = np.take_along_axis(candidate_labels, keep, axis=1)
        best, best_labels = similarities, candidate_labels
    if bank_size == 0:
        raise ValueError("The kNN bank is empty: the training split has no images.")
    # Shifting by the row maximum rescales a row's weights by a constant (see knn_scores).
    weights = np.exp((best - best.max(axis=1, keepdims=True)) / temperature)
    scores = np.zeros((num_queries, num_classes))
    rows = np.repeat(np.arange(num_queries), best.shape[1])
    np.add.at(scores, (rows, best_labels.ravel()), weights.ravel())
    return scores, bank_size


def stream_subset(batches, positions):
    """`(images, labels)` at the sorted `positions` of a stream of batches.

    Only the chosen images are kept (memory grows with `len(positions)`, not with the
    stream).

    Example:

    >>> import numpy as np
    >>> batches = [(np.arange(3), np.array([5, 6, 7])), (np.arange(3, 5), np.array([8, 9]))]
    >>> [part.tolist() for part in stream_subset(batches, [0, 3])]
    [[0, 3], [5, 8]]
    """
    positions = np.sort(np.asarray(positions, dtype=np.int64))
    images, labels, start = [], [], 0
    for batch_images, batch_labels in batches:
        batch_images = np.asarray(batch_images)
        end = start + batch_images.shape[0]
        inside = positions[(positions >= start) & (positions < end)] - start
        if inside.size:
            images.append(batch_images[inside])
            labels.append(np.asarray(batch_labels).reshape(-1)[inside])
        start = end
        if positions.size == 0 or end > positions[-1]:
            break
    if sum(part.shape[0] for part in labels) != positions.size:
        raise ValueError(f"Positions up to {positions.max()} asked of a stream of {start} items.")
    return np.concatenate(images), np.concatenate(labels).astype(np.int64)
