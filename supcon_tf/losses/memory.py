"""The memory-bank contrasts: checks a bank of past embeddings and labels against the batch.

The bank (`supcon_tf.models.MemoryBank`) supplies extra contrasts; here they are validated,
cast to the loss dtype and cut from the gradient before the kernel sees them.
"""

import tensorflow as tf

from supcon_tf.losses.labels import _as_views, _flat_labels, _none_if_no_labels, label_tensor


def _memory_bank(memory_embeddings, memory_labels, features, y_true, positive_mask):
    """Validates the memory bank; returns `(embeddings [K, V, D], labels or None)` or None.

    The embeddings are cast to the loss dtype and cut from the gradient; the labels
    follow `y_true` (int64 integers, or one-/multi-hot in `y_true`'s dtype).
    """
    if memory_embeddings is None:
        if memory_labels is not None:
            raise ValueError("`memory_labels` were given without `memory_embeddings`.")
        return None
    if positive_mask is not None:
        raise ValueError(
            "A memory bank needs labels (or none, SimCLR) to find its positives; it cannot "
            "be combined with `positive_mask`."
        )
    memory = tf.stop_gradient(tf.cast(_as_views(memory_embeddings), features.dtype))
    if memory.shape[1:] != features.shape[1:]:
        raise ValueError(
            "`memory_embeddings` must have the same views and width as `y_pred`: "
            f"[K, {features.shape[1]}, {features.shape[2]}] for `y_pred` of shape "
            f"{features.shape}; got shape {memory.shape}."
        )
    y_true = _none_if_no_labels(y_true)
    if y_true is None:
        if memory_labels is not None:
            raise ValueError(
                "`memory_labels` without `y_true`: without labels (SimCLR) the bank holds "
                "only negatives; pass memory_labels=None."
            )
        return memory, None
    if memory_labels is None:
        raise ValueError(
            "`memory_labels` must be given with `y_true`: the bank's positives are the "
            "entries with the anchor's label."
        )
    labels = label_tensor(memory_labels)
    batch_labels = label_tensor(y_true)
    size = memory.shape[0]
    if labels.shape[0] is not None and size is not None and labels.shape[0] != size:
        raise ValueError(
            f"`memory_labels` has {labels.shape[0]} rows but `memory_embeddings` has {size} "
            "samples; they must match."
        )
    hot = batch_labels.shape.rank == 2 and batch_labels.shape[1] != 1
    if hot:
        if labels.shape.rank != 2 or labels.shape[1] != batch_labels.shape[1]:
            raise ValueError(
                f"`memory_labels` must be one-/multi-hot [K, {batch_labels.shape[1]}] like "
                f"`y_true`, got shape {labels.shape}."
            )
        return memory, tf.cast(labels, batch_labels.dtype)
    return memory, _flat_labels(labels)
