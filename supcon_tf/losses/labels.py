"""The labels of a contrastive batch: embeddings as views, labels as exact tensors, positives.

`label_tensor` keeps integer labels exact (int64); `_positives` turns labels, one-/multi-hot
labels, a pair-weight matrix or an explicit mask into the `kernels.Positives` the kernels
read.

Example:

>>> label_tensor([16777216, 16777217]).dtype.name
'int64'
"""

import tensorflow as tf

from supcon_tf.losses import kernels


def _as_views(y_pred):
    """Returns embeddings as a float `[B, V, D]` tensor (float32 unless float64)."""
    y_pred = tf.convert_to_tensor(y_pred)
    if not y_pred.dtype.is_floating:
        raise ValueError(
            f"Embeddings `y_pred` must be a floating-point tensor, got dtype {y_pred.dtype.name}."
        )
    if y_pred.dtype != tf.float64:
        # float16 / bfloat16 inputs (mixed precision) are computed in float32.
        y_pred = tf.cast(y_pred, tf.float32)
    rank = y_pred.shape.rank
    if rank is None:
        raise ValueError(
            "Embeddings `y_pred` must have a known rank: [batch, dim] or [batch, views, dim]."
        )
    if rank < 2:
        raise ValueError(
            f"Embeddings `y_pred` must have rank 2 ([batch, dim]) or 3 ([batch, views, dim]), "
            f"got rank {rank} with shape {y_pred.shape}. For a single embedding, add a batch "
            "axis; for one view per sample use [batch, dim]."
        )
    if rank == 2:
        return y_pred[:, None, :]
    if rank > 3:
        dims = tf.shape(y_pred)
        y_pred = tf.reshape(y_pred, tf.concat([dims[:2], [-1]], axis=0))
    return y_pred


def _check_not_empty(features):
    """Raises when the `[B, V, D]` embeddings of a batch have no sample or no view."""
    if 0 in features.shape[:2]:
        raise ValueError(
            f"Embeddings `y_pred` have no samples or no views (shape {features.shape}): the "
            "loss needs at least one sample with at least one view."
        )


def _num_views(features):
    views = features.shape[1]
    if views is None:
        raise ValueError("The number of views (axis 1 of `y_pred`) must be known statically.")
    return views


def _check_batch(name, tensor, batch_size):
    """Raises when the static first dimension of `tensor` differs from the batch size."""
    size = tensor.shape[0]
    if size is not None and batch_size is not None and size != batch_size:
        raise ValueError(
            f"`{name}` has {size} rows but `y_pred` has a batch of {batch_size} samples; "
            f"they must match (got {name} shape {tensor.shape})."
        )


def label_tensor(y_true):
    """Labels as a tensor whose integer values stay exact: integers become int64.

    Integer labels are compared for equality only, so they must never pass through
    float32 (which merges labels from 2**24 on); boolean and floating-point labels
    (one-/multi-hot) are kept as given.

    Args:
        y_true: integer, boolean or floating-point labels (any shape).

    Returns:
        A tensor: int64 for integer labels, else `y_true`'s own dtype.

    Raises:
        ValueError: for any other dtype (strings, complex numbers).

    Example:

    >>> label_tensor([16777216, 16777217]).dtype.name
    'int64'
    >>> label_tensor(["cat", "dog"])
    Traceback (most recent call last):
    ...
    ValueError: Labels `y_true` must be integers, booleans or floats (one-/multi-hot), got dtype string. Map other labels to integer ids first (e.g. with `keras.layers.StringLookup`).
    """
    y_true = tf.convert_to_tensor(y_true)
    if y_true.dtype.is_integer:
        return tf.cast(y_true, tf.int64)
    if y_true.dtype.is_bool or y_true.dtype.is_floating:
        return y_true
    raise ValueError(
        "Labels `y_true` must be integers, booleans or floats (one-/multi-hot), got dtype "
        f"{y_true.dtype.name}. Map other labels to integer ids first (e.g. with "
        "`keras.layers.StringLookup`)."
    )


def _pair_weights(y_true, batch_size):
    """Validates a `[G, G]` (or `[G, 1, G, 1]`) non-negative pair-weight matrix."""
    y_true = tf.convert_to_tensor(y_true)
    if not y_true.dtype.is_floating and not y_true.dtype.is_integer:
        raise ValueError(
            "With `pair_weights=True`, `y_true` must be a numeric [batch, batch] weight "
            f"matrix, got dtype {y_true.dtype.name}."
        )
    shape = y_true.shape
    if shape.rank == 4 and shape[1] == 1 and shape[3] == 1:
        y_true = y_true[:, 0, :, 0]
        shape = y_true.shape
    if shape.rank != 2 or (None not in (shape[0], shape[1]) and shape[0] != shape[1]):
        raise ValueError(
            "With `pair_weights=True`, `y_true` must be a square [batch, batch] (or "
            f"[batch, 1, batch, 1]) matrix of pair weights, got shape {shape}."
        )
    _check_batch("y_true", y_true, batch_size)
    if y_true.dtype not in (tf.float32, tf.float64):
        y_true = tf.cast(y_true, tf.float32)
    if tf.executing_eagerly():
        smallest = float(tf.reduce_min(y_true)) if tf.size(y_true) > 0 else 0.0
        if not smallest >= 0:
            raise ValueError(
                "With `pair_weights=True`, `y_true` must hold non-negative, finite weights "
                f"(0 marks a negative pair), got a smallest entry of {smallest}."
            )
    else:
        check = tf.debugging.assert_non_negative(
            y_true, message="`y_true` pair weights must be non-negative"
        )
        with tf.control_dependencies([check]):
            y_true = tf.identity(y_true)
    return kernels.Positives("weights", y_true)


def _positives(y_true, batch_size, positive_mask=None, pair_weights=False):
    """Validates the labels (or mask) and describes the positive pairs between samples.

    Returns a `kernels.Positives`: integer labels, one-/multi-hot labels, an explicit
    boolean `[B, B]` mask (diagonal set: other views of the same sample are positives),
    or, without labels, only the other views of the same sample.
    """
    if positive_mask is not None:
        if y_true is not None:
            raise ValueError("Pass either `y_true` labels or `positive_mask`, not both.")
        positive_mask = tf.convert_to_tensor(positive_mask)
        if positive_mask.shape.rank != 2:
            raise ValueError(
                f"`positive_mask` must be a [batch, batch] matrix, got shape {positive_mask.shape}."
            )
        _check_batch("positive_mask", positive_mask, batch_size)
        cols = positive_mask.shape[1]
        if (
            cols is not None
            and positive_mask.shape[0] is not None
            and cols != positive_mask.shape[0]
        ):
            raise ValueError(
                f"`positive_mask` must be square [batch, batch], got shape {positive_mask.shape}."
            )
        if positive_mask.dtype != tf.bool:
            positive_mask = tf.not_equal(positive_mask, tf.zeros((), positive_mask.dtype))
        eye = tf.eye(tf.shape(positive_mask)[0], dtype=tf.bool)
        return kernels.Positives("mask", tf.logical_or(positive_mask, eye))
    if pair_weights:
        if y_true is None:
            raise ValueError(
                "`pair_weights=True` needs `y_true` as a [batch, batch] weight matrix, got None."
            )
        return _pair_weights(y_true, batch_size)
    if y_true is None:
        return kernels.Positives("samples")
    y_true = label_tensor(y_true)
    rank = y_true.shape.rank
    if rank is None or rank == 0 or rank > 2:
        raise ValueError(
            "Labels `y_true` must be integer labels [batch] or [batch, 1], or one-/multi-hot "
            f"labels [batch, classes]; got shape {y_true.shape}."
        )
    _check_batch("y_true", y_true, batch_size)
    if rank == 2 and y_true.shape[1] == 0:
        # A [B, 0] tensor (no labels at all) leaves only the other views of the same sample.
        return kernels.Positives("samples")
    if rank == 2 and y_true.shape[1] != 1:
        # One-hot or multi-hot: positives share at least one label.
        return kernels.Positives("hot", y_true)
    return kernels.Positives("labels", tf.reshape(y_true, [-1]))


def _none_if_no_labels(y_true):
    """`None` for no labels: `None` or a `[B, 0]` tensor (SimCLR through the Loss class)."""
    if y_true is None:
        return None
    shape = tf.convert_to_tensor(y_true).shape
    if shape.rank == 2 and shape[1] == 0:
        return None
    return y_true


def _flat_labels(labels):
    """Integer labels `[B, 1]` as `[B]`; one-/multi-hot labels unchanged."""
    if labels.shape.rank == 2 and labels.shape[1] == 1:
        return tf.reshape(labels, [-1])
    return labels
