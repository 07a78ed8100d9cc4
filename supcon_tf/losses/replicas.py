"""The cross-replica gather: each replica's shard of features and labels into the global batch.

Under a `tf.distribute` strategy with several replicas, the loss contrasts every anchor
against the whole global batch (all replicas' samples), as the paper's large batches do.
"""

import tensorflow as tf

from supcon_tf.losses.labels import _check_batch, label_tensor


def _multi_replica_context():
    """Returns the current `tf.distribute` replica context when it has several replicas."""
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        # Cross-replica context (no per-replica shard to gather) or a single replica.
        return None
    return context


def _gather_across_replicas(context, features, y_true, positive_mask):
    """All-gathers this replica's shard into the global batch, in replica order.

    The embeddings go through `ReplicaContext.all_gather`, whose gradient sums the
    upstream gradients of every replica and hands each replica the rows it owns, so
    every replica's loss back-propagates into the embeddings of all replicas. Labels
    and masks carry no gradient. Shards may differ in size (a partial last batch): the
    anchor offset is the total size of the preceding replicas' shards.

    Returns:
        `(features, y_true, positive_mask, anchor_start, local_batch)` where the first
        three describe the global batch and the anchors are rows
        `anchor_start .. anchor_start + local_batch - 1` of it.
    """
    local_batch = tf.shape(features)[0]
    shard_sizes = context.all_gather(tf.reshape(local_batch, [1]), axis=0)
    anchor_start = tf.reduce_sum(shard_sizes[: context.replica_id_in_sync_group])
    gathered = [context.all_gather(features, axis=0)]
    local = [features]

    if y_true is not None:
        y_true = label_tensor(y_true)
        _check_batch("y_true", y_true, features.shape[0])
        if y_true.shape.rank == 2 and y_true.shape[1] == 0:
            # No labels at all ([B, 0], SimCLR through the Loss class): sample identity
            # is positional, which the kernel derives from the gathered order itself.
            y_true = None
        else:
            gathered.append(context.all_gather(tf.stop_gradient(y_true), axis=0))
            local.append(y_true)
    if positive_mask is not None:
        positive_mask = tf.convert_to_tensor(positive_mask)
        if positive_mask.shape.rank != 2:
            raise ValueError(
                f"With `gather_across_replicas=True` over {context.num_replicas_in_sync} "
                "replicas, `positive_mask` must hold this replica's rows of the global mask, "
                f"shape [local batch, global batch], got shape {positive_mask.shape}."
            )
        _check_batch("positive_mask", positive_mask, features.shape[0])
        if positive_mask.dtype != tf.bool:
            positive_mask = tf.not_equal(positive_mask, tf.zeros((), positive_mask.dtype))
        # Collectives do not carry booleans: gather as int32 rows of the [G, G] mask.
        gathered.append(context.all_gather(tf.cast(positive_mask, tf.int32), axis=0) > 0)
        local.append(positive_mask)

    global_size = _static_global_size(context, gathered, positive_mask)
    gathered = [
        _with_static_shape(tensor, [global_size, *original.shape[1:]])
        for tensor, original in zip(gathered, local, strict=True)
    ]
    global_features = gathered.pop(0)
    if y_true is not None:
        y_true = gathered.pop(0)
    if positive_mask is not None:
        positive_mask = gathered.pop(0)
    return global_features, y_true, positive_mask, anchor_start, local_batch


def _static_global_size(context, gathered, positive_mask):
    """The global batch size if any gathered tensor (or the mask's width) knows it statically."""
    sizes = {tensor.shape[0] for tensor in gathered} - {None}
    if positive_mask is not None and positive_mask.shape[1] is not None:
        sizes.add(positive_mask.shape[1])
    if len(sizes) > 1:
        raise ValueError(
            f"With `gather_across_replicas=True` over {context.num_replicas_in_sync} "
            "replicas, `positive_mask` must hold this replica's rows of the global mask, "
            "shape [local batch, global batch]; its width and the gathered global batch "
            f"disagree (sizes {sorted(sizes)}). Build it from global sample indices, or pass "
            "`gather_across_replicas=False` for per-replica masks."
        )
    return sizes.pop() if sizes else None


def _with_static_shape(tensor, shape):
    """Gives a gathered tensor the static shape a graph-mode all-gather may drop.

    The batch dimension is checked at run time (`tf.ensure_shape`), the others are the
    local tensor's own.
    """
    if shape[0] is not None and tensor.shape[0] is None:
        tensor = tf.ensure_shape(tensor, shape)
    tensor.set_shape(shape)
    return tensor
