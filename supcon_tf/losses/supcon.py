"""Supervised contrastive losses (Khosla et al., NeurIPS 2020) as Keras 3 losses.

The module has two layers, as Keras' own losses do: stateless functions that do the
maths and return one loss value per sample (`supervised_contrastive_loss`,
`npairs_loss`), and `keras.losses.Loss` subclasses that store the options and let
Keras do dtype conversion, `sample_weight`, reduction and distribution scaling
(`SupervisedContrastiveLoss`, `NPairsLoss`).

Layout conventions used throughout:

* `y_pred` holds embeddings `[B, D]` (one view per sample) or `[B, V, D]` (V views;
  trailing dimensions after the view axis are flattened into D).
* Inside the loss the views are laid out view-major (`index = view * B + sample`),
  so that anchors of `contrast_mode="one"` are the first B rows.
* The loss needs the TensorFlow backend of Keras 3.
"""

import math

import keras
import tensorflow as tf

from supcon_tf import kernels

CONTRAST_MODES = ("all", "one")
SUMMATIONS = ("out", "in")


def _check_options(temperature, base_temperature, contrast_mode, summation):
    """Validates the loss options and returns `(temperature, base_temperature)`."""
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)):
        raise ValueError(
            f"`temperature` must be a positive number, got {temperature!r} "
            f"of type {type(temperature).__name__}."
        )
    if not temperature > 0 or not math.isfinite(temperature):
        raise ValueError(f"`temperature` must be a positive finite number, got {temperature}.")
    if base_temperature is None:
        base_temperature = temperature
    if isinstance(base_temperature, bool) or not isinstance(base_temperature, (int, float)):
        raise ValueError(
            f"`base_temperature` must be a positive number or None, got {base_temperature!r}."
        )
    if not base_temperature > 0 or not math.isfinite(base_temperature):
        raise ValueError(
            f"`base_temperature` must be a positive finite number or None, got {base_temperature}."
        )
    if contrast_mode not in CONTRAST_MODES:
        raise ValueError(
            f"Unknown `contrast_mode`={contrast_mode!r}. Expected one of {CONTRAST_MODES}: "
            "'all' uses every view as an anchor, 'one' only the first view."
        )
    if summation not in SUMMATIONS:
        raise ValueError(
            f"Unknown `summation`={summation!r}. Expected one of {SUMMATIONS}: "
            "'out' is Eq. 2 of the paper (L_out), 'in' is Eq. 3 (L_in)."
        )
    return float(temperature), float(base_temperature)


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


def supervised_contrastive_loss(
    y_true,
    y_pred,
    temperature=0.1,
    base_temperature=None,
    contrast_mode="all",
    summation="out",
    normalize=True,
    positive_mask=None,
    implementation="auto",
    block_size=None,
    gather_across_replicas=True,
    memory_embeddings=None,
    memory_labels=None,
    denominator_mode="all",
    positives_cap=None,
    pair_weights=False,
):
    """Per-sample supervised contrastive loss (functional form).

    For every anchor view `i` with positives `P(i)` (all other views whose sample shares
    the anchor's label, and the other views of the anchor's own sample) and contrasts
    `A(i)` (every view except the anchor itself), with `z` the L2-normalised embeddings
    and `tau` the temperature:

        L_out(i) = -1/|P(i)| sum_{p in P(i)} log( exp(z_i.z_p/tau) / sum_{a in A(i)} exp(z_i.z_a/tau) )
        L_in(i)  = -log( 1/|P(i)| sum_{p in P(i)} exp(z_i.z_p/tau) / sum_{a in A(i)} exp(z_i.z_a/tau) )

    scaled by `tau / base_temperature`. A sample's loss is the mean over its anchor
    views. An anchor with no positive contributes 0.

    Reference: Khosla et al., "Supervised Contrastive Learning", NeurIPS 2020,
    Eq. 2 (`summation="out"`) and Eq. 3 (`summation="in"`).

    Variants (docs/loss.md): `denominator_mode` changes which views form the
    denominator of each term, with `N(i)` the anchor's negatives (views of samples
    that are not positives of the anchor's sample):

    * `"all"`: `A(i)`, every view but the anchor (the paper).
    * `"one_positive"`: `{p} + N(i)`, the term's own positive and the negatives
      (google-research `LossDenominatorMode.ONE_POSITIVE`; SINCERE, Feeney & Hughes,
      arXiv 2309.14277): other positives no longer repel the anchor.
    * `"only_negatives"`: `N(i)` (`ONLY_NEGATIVES`; the decoupled loss, DCL, of Yeh et
      al., ECCV 2022, supervised form).

    In `"one_positive"` and `"only_negatives"` an anchor with no negative has loss 0
    (there is nothing to contrast against; never NaN). `positives_cap` keeps, per
    anchor, its own sample's other views plus the views of the first `cap / V`
    positive samples in batch order (the global batch when gathering); the other
    positives leave the numerator and the denominator (google-research
    `positives_cap`).

    Weighted positives (`pair_weights=True`): `y_true` is a `[B, B]` (or
    `[B, 1, B, 1]`) non-negative matrix `w` of pair similarities (graded or soft
    label similarity); the own-sample diagonal is taken as 1. Pairs with `w > 0` are
    positives and each positive term is weighted: with `W_i = sum_p w_ip`,
    `L_out(i) = -sum_p w_ip log prob_ip / W_i` and
    `L_in(i) = -log(sum_p w_ip prob_ip / W_i)`; pairs with `w = 0` are the negatives.
    Integer and multi-hot labels are the 0/1 case.

    Args:
        y_true: integer labels `[B]` or `[B, 1]`; one-hot or multi-hot labels `[B, C]`
            (two samples are positives when they share at least one label); or `None`
            for SimCLR (only the other views of the same sample are positives).
        y_pred: embeddings `[B, D]` or `[B, V, D]` (extra trailing axes are flattened).
        temperature: softmax temperature `tau > 0`.
        base_temperature: the loss is multiplied by `temperature / base_temperature`;
            `None` means equal to `temperature` (no scaling).
        contrast_mode: `"all"` (every view is an anchor) or `"one"` (only view 0).
            Contrasts are always all views.
        summation: `"out"` (Eq. 2, the paper's recommended loss) or `"in"` (Eq. 3).
        normalize: L2-normalise the embeddings first. Turn off only for inputs that
            are already unit vectors.
        positive_mask: optional `[B, B]` boolean matrix of custom positives between
            samples, used instead of `y_true` (which must then be `None`). The diagonal
            is always positive. When gathering across `R > 1` replicas, pass this
            replica's rows of the global mask, `[B, R * B]`, with columns in global
            order (replica 0's samples first); see `gather_across_replicas`.
        gather_across_replicas: inside a `tf.distribute` replica context with more
            than one replica (`strategy.run`, or `model.fit` under `strategy.scope()`),
            all-gather the embeddings and labels of every replica, so that the anchors
            are this replica's samples and the contrasts (positives and negatives) are
            the whole global batch; gradients flow back to the replica that owns each
            embedding. Together with Keras' per-replica loss scaling this gives exactly
            the single-device loss and gradients of the global batch. `False` keeps
            each replica's own shard as its only negatives. No effect outside a
            multi-replica context.
        implementation: `"auto"` (default: dense for small batches, blocked above
            `kernels.AUTO_DENSE_MAX_ELEMENTS` similarities, decided at run time when the
            batch size is unknown while tracing, as in `model.fit`, for a partial last
            batch or a gathered global batch), `"dense"` (the whole
            similarity matrix at once) or `"blocked"` (row blocks with a streaming
            log-sum-exp; memory O(N x block_size) for huge batches). Same values and
            gradients either way.
        block_size: anchor rows per block of `"blocked"`; `None` picks about
            `kernels.DEFAULT_BLOCK_ELEMENTS` similarities per block.
        memory_embeddings: optional memory bank (XBM, the MoCo queue): embeddings of
            K past samples, `[K, V, D]` with the views and width of `y_pred` (`[K, D]`
            for `[B, D]` embeddings). They are extra contrasts for every anchor (in the
            denominator; positives when their label matches), never anchors, and get
            no gradient. Under gathering they extend the global batch.
        memory_labels: the bank's labels, in the format of `y_true` (integer `[K]`, or
            one-/multi-hot `[K, C]`); required with labels, `None` without (SimCLR:
            the bank holds only negatives).
        denominator_mode: `"all"` (default), `"one_positive"` or `"only_negatives"`
            (see above).
        positives_cap: `None` (default, no cap) or the most positive views per anchor
            besides its own sample's other views: a non-negative multiple of the number
            of views V.
        pair_weights: `y_true` is a `[B, B]` non-negative pair-weight matrix (see
            above); when gathering across `R > 1` replicas, this replica's rows of the
            global matrix, `[B, R * B]`.

    Returns:
        A `[B]` float tensor (float32, or float64 for float64 embeddings): the loss of
        this replica's B samples.

    Example:

    >>> import numpy as np
    >>> embeddings = np.random.default_rng(0).normal(size=(4, 2, 8)).astype("float32")
    >>> per_sample = supervised_contrastive_loss([0, 1, 0, 1], embeddings, temperature=0.1)
    >>> per_sample.shape
    TensorShape([4])
    """
    temperature, base_temperature = _check_options(
        temperature, base_temperature, contrast_mode, summation
    )
    kernels.check_implementation(implementation, block_size)
    kernels.check_variant(denominator_mode, positives_cap)
    features = _as_views(y_pred)
    _check_cap_views(positives_cap, _num_views(features))
    if y_true is None and positive_mask is None and _num_views(features) < 2:
        raise ValueError(
            "Without labels (`y_true=None`, SimCLR) the positives are the other views of the "
            "same sample, so `y_pred` needs at least 2 views, shape [batch, views>=2, dim]; "
            f"got shape {features.shape}."
        )
    memory = _memory_bank(memory_embeddings, memory_labels, features, y_true, positive_mask)
    if memory is not None and pair_weights:
        raise ValueError(
            "A memory bank finds its positives by label; it cannot be combined with "
            "`pair_weights=True` (a [B, B] weight matrix has no rows for the bank)."
        )
    if normalize:
        features = tf.math.l2_normalize(features, axis=-1)
    if not isinstance(gather_across_replicas, bool):
        raise ValueError(
            f"`gather_across_replicas` must be True or False, got {gather_across_replicas!r}."
        )
    if not isinstance(pair_weights, bool):
        raise ValueError(f"`pair_weights` must be True or False, got {pair_weights!r}.")
    # Without several replicas the anchors are the whole batch; with them, this replica's
    # samples against every replica's (the global batch).
    anchor_start, local_batch = 0, None
    context = _multi_replica_context() if gather_across_replicas else None
    if context is not None:
        features, y_true, positive_mask, anchor_start, local_batch = _gather_across_replicas(
            context, features, y_true, positive_mask
        )
    if memory is not None:
        # The bank's samples follow the (global) batch as contrasts; the anchors stay.
        memory_features, memory_labels = memory
        if normalize:
            memory_features = tf.math.l2_normalize(memory_features, axis=-1)
        if local_batch is None:
            local_batch = tf.shape(features)[0]
        features = tf.concat([features, memory_features], axis=0)
        if memory_labels is None:
            y_true = None  # SimCLR: sample identity is positional
        else:
            y_true = tf.concat([_flat_labels(label_tensor(y_true)), memory_labels], axis=0)
    loss = _per_sample_loss(
        features,
        y_true,
        positive_mask,
        temperature,
        contrast_mode,
        summation,
        anchor_start=anchor_start,
        local_batch=local_batch,
        implementation=implementation,
        block_size=block_size,
        variant=kernels.Variant(denominator_mode, positives_cap),
        pair_weights=pair_weights,
    )
    return loss * tf.cast(temperature / base_temperature, loss.dtype)


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


def _check_cap_views(positives_cap, num_views):
    """A cap counts whole samples: it must be a multiple of the number of views."""
    if positives_cap is not None and positives_cap % num_views:
        raise ValueError(
            f"`positives_cap` must be a multiple of the number of views ({num_views}): it "
            f"counts all views of each kept positive sample; got {positives_cap}."
        )


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


def _per_sample_loss(
    features,
    y_true,
    positive_mask,
    temperature,
    contrast_mode,
    summation,
    include_self=False,
    anchor_start=0,
    local_batch=None,
    implementation="auto",
    block_size=None,
    variant=None,
    pair_weights=False,
):
    """Kernel entry: per-sample loss of the anchors against the whole contrast batch.

    Args:
        features: normalised `[G, V, D]` embeddings of the whole contrast batch (all
            replicas' samples when gathered).
        y_true: labels of all G samples (see `supervised_contrastive_loss`) or `None`.
        positive_mask: optional `[G, G]` custom positives (with `y_true=None`).
        anchor_start, local_batch: the anchors are samples
            `anchor_start .. anchor_start + local_batch - 1` (default: all G samples).
        implementation, block_size: the kernel (see `kernels.anchor_losses`).
        variant: a `kernels.Variant` (None: the paper's loss).
        pair_weights: `y_true` is a `[G, G]` pair-weight matrix.

    Returns:
        `[local_batch]` loss per anchor sample (before the base-temperature scaling).
    """
    positives = _positives(y_true, features.shape[0], positive_mask, pair_weights)
    return kernels.anchor_losses(
        features,
        positives,
        temperature,
        contrast_mode,
        summation,
        include_self=include_self,
        anchor_start=anchor_start,
        local_batch=local_batch,
        implementation=implementation,
        block_size=block_size,
        variant=variant,
    )


def npairs_loss(y_true, y_pred):
    """Native replacement for `tfa.losses.npairs_loss` (TensorFlow Addons).

    Computes the n-pairs loss of Sohn (NeurIPS 2016) on a precomputed similarity
    (logit) matrix, exactly as TensorFlow Addons did: row i's target distribution is
    uniform over the samples with the same label as i (i itself included), and the loss
    is the softmax cross-entropy of row i of `y_pred` against it, averaged over rows.

    Args:
        y_true: integer labels `[B]` (or `[B, 1]`).
        y_pred: similarity logits `[B, B]`, e.g. `z @ z.T / temperature`.

    Returns:
        The scalar mean loss (as `tfa.losses.npairs_loss` returned).

    Example:

    >>> import numpy as np
    >>> z = np.eye(3, dtype="float32")
    >>> float(npairs_loss([0, 0, 1], z @ z.T / 0.5)) > 0
    True
    """
    y_pred = tf.convert_to_tensor(y_pred)
    if y_pred.shape.rank != 2:
        raise ValueError(
            f"`y_pred` must be a [batch, batch] logit matrix, got shape {y_pred.shape}."
        )
    if y_pred.dtype not in (tf.float32, tf.float64):
        y_pred = tf.cast(y_pred, tf.float32)
    labels = tf.reshape(label_tensor(y_true), [-1])
    _check_batch("y_true", labels, y_pred.shape[0])
    same = tf.cast(tf.equal(labels[:, None], labels[None, :]), y_pred.dtype)
    targets = same / tf.reduce_sum(same, axis=1, keepdims=True)
    return tf.reduce_mean(tf.nn.softmax_cross_entropy_with_logits(labels=targets, logits=y_pred))


class _PassThrough(keras.losses.Loss):
    """Keras' own masking, `sample_weight` and reduction of given per-sample losses."""

    @tf.autograph.experimental.do_not_convert
    def call(self, y_true, y_pred):
        return y_pred


class _LabelLoss(keras.losses.Loss):
    """A Keras loss whose integer labels reach `call` exact (int64), not cast to float.

    `keras.losses.Loss.__call__` converts `y_true` to the loss dtype (float32), which
    merges integer labels from 2**24 on. Here `y_true` keeps its integer dtype (and is
    validated) and `call` runs on it; weighting and reduction stay Keras' own.
    """

    # Straight-line code: nothing for autograph to convert (a `tf.function` around the
    # loss would otherwise convert this method and, through it, Keras' reduction).
    @tf.autograph.experimental.do_not_convert
    def __call__(self, y_true, y_pred, sample_weight=None, **call_options):
        with tf.name_scope(self.name):
            if y_true is not None:
                y_true = label_tensor(y_true)
            y_pred = tf.convert_to_tensor(y_pred)
            if y_pred.dtype != self.dtype:
                y_pred = tf.cast(y_pred, self.dtype)
            losses = self.call(y_true, y_pred, **call_options)
        reduction = _PassThrough(reduction=self.reduction, name=self.name, dtype=self.dtype)
        return reduction(losses, losses, sample_weight=sample_weight)


@keras.saving.register_keras_serializable(package="supcon_tf")
class SupervisedContrastiveLoss(_LabelLoss):
    """Supervised contrastive loss (SupCon) of Khosla et al., NeurIPS 2020.

    All views of samples that share the anchor's label are positives; every other view
    in the batch is a negative. With `z` L2-normalised and `tau` the temperature, for an
    anchor view `i` with positives `P(i)` and contrasts `A(i)` (all views but `i`):

        L_out(i) = -1/|P(i)| sum_{p in P(i)} log( exp(z_i.z_p/tau) / sum_{a in A(i)} exp(z_i.z_a/tau) )

    (Eq. 2, `summation="out"`, the paper's choice) or, with the mean inside the log,
    Eq. 3 `summation="in"`. Without labels (`y_true=None`) it is SimCLR's NT-Xent: the
    only positives are the other views of the same sample. `call` returns one value per
    sample (the mean over its anchor views), so Keras' reduction, `sample_weight` and
    distribution scaling apply as for any Keras loss.

    Args:
        temperature: softmax temperature `tau > 0` (the paper uses 0.1).
        base_temperature: the loss is scaled by `temperature / base_temperature`;
            `None` (default) means no scaling. The reference PyTorch code uses 0.07.
        contrast_mode: `"all"` (every view is an anchor) or `"one"` (only view 0).
        summation: `"out"` (Eq. 2) or `"in"` (Eq. 3).
        normalize: L2-normalise embeddings inside the loss (default `True`).
        implementation: `"auto"` (default), `"dense"` or `"blocked"`: how the
            similarity matrix is computed (see `supervised_contrastive_loss`); use
            `"blocked"` for batches too large for an `[N, N]` matrix.
        block_size: anchor rows per block of `"blocked"` (`None`: automatic).
        gather_across_replicas: under a `tf.distribute` strategy with several
            replicas, use the whole global batch (all replicas' embeddings and labels)
            as contrasts for this replica's anchors (default `True`, the paper's
            large-batch setting); `False` uses only the replica's own shard.
        denominator_mode: `"all"` (the paper), `"one_positive"` (SINCERE) or
            `"only_negatives"` (DCL); see `supervised_contrastive_loss`.
        positives_cap: `None` or the most positive views per anchor besides its own
            sample's other views (a multiple of the number of views; google-research's
            `positives_cap`).
        pair_weights: `y_true` is a `[B, B]` non-negative matrix of pair weights
            (graded or soft label similarity) instead of labels; see
            `supervised_contrastive_loss`.
        reduction: Keras reduction, default `"sum_over_batch_size"`.
        name: loss name.
        dtype: Keras dtype of the loss computation (default float32; float16 and
            bfloat16 embeddings are always computed in float32).

    Call arguments:
        y_true: integer labels `[B]` / `[B, 1]`, one-/multi-hot `[B, C]`, or `None`.
        y_pred: embeddings `[B, D]` or `[B, V, D]`.
        sample_weight: optional `[B]` weights.
        memory_embeddings, memory_labels: an optional memory bank of extra contrasts
            (see `supervised_contrastive_loss`).

    Example:

    >>> import numpy as np, keras
    >>> loss = SupervisedContrastiveLoss(temperature=0.1)
    >>> views = np.random.default_rng(0).normal(size=(8, 2, 16)).astype("float32")
    >>> labels = np.array([0, 1, 2, 3, 0, 1, 2, 3])
    >>> value = loss(labels, views)
    >>> bool(value > 0)
    True
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(16)])
    >>> model.compile(optimizer="adam", loss=SupervisedContrastiveLoss(temperature=0.1))
    """

    def __init__(
        self,
        temperature=0.1,
        base_temperature=None,
        contrast_mode="all",
        summation="out",
        normalize=True,
        implementation="auto",
        block_size=None,
        gather_across_replicas=True,
        denominator_mode="all",
        positives_cap=None,
        pair_weights=False,
        reduction="sum_over_batch_size",
        name="supervised_contrastive_loss",
        dtype=None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        _check_options(temperature, base_temperature, contrast_mode, summation)
        kernels.check_implementation(implementation, block_size)
        kernels.check_variant(denominator_mode, positives_cap)
        if not isinstance(gather_across_replicas, bool):
            raise ValueError(
                f"`gather_across_replicas` must be True or False, got {gather_across_replicas!r}."
            )
        self.temperature = temperature
        self.base_temperature = base_temperature
        self.contrast_mode = contrast_mode
        self.summation = summation
        self.normalize = normalize
        self.implementation = implementation
        self.block_size = block_size
        self.gather_across_replicas = gather_across_replicas
        self.denominator_mode = denominator_mode
        self.positives_cap = positives_cap
        if not isinstance(pair_weights, bool):
            raise ValueError(f"`pair_weights` must be True or False, got {pair_weights!r}.")
        self.pair_weights = pair_weights

    def call(self, y_true, y_pred, memory_embeddings=None, memory_labels=None):
        return supervised_contrastive_loss(
            y_true,
            y_pred,
            temperature=self.temperature,
            base_temperature=self.base_temperature,
            contrast_mode=self.contrast_mode,
            summation=self.summation,
            normalize=self.normalize,
            implementation=self.implementation,
            block_size=self.block_size,
            gather_across_replicas=self.gather_across_replicas,
            memory_embeddings=memory_embeddings,
            memory_labels=memory_labels,
            denominator_mode=self.denominator_mode,
            positives_cap=self.positives_cap,
            pair_weights=self.pair_weights,
        )

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "temperature": self.temperature,
                "base_temperature": self.base_temperature,
                "contrast_mode": self.contrast_mode,
                "summation": self.summation,
                "normalize": self.normalize,
                "implementation": self.implementation,
                "block_size": self.block_size,
                "gather_across_replicas": self.gather_across_replicas,
                "denominator_mode": self.denominator_mode,
                "positives_cap": self.positives_cap,
                "pair_weights": self.pair_weights,
            }
        )
        return config


@keras.saving.register_keras_serializable(package="supcon_tf")
class NPairsLoss(_LabelLoss):
    """The original Keras SupCon example's loss, without TensorFlow Addons.

    The Keras example ("Supervised Contrastive Learning", Khandelwal 2020) computed
    `tfa.losses.npairs_loss(labels, z @ z.T / temperature)` on L2-normalised embeddings.
    Unlike `SupervisedContrastiveLoss`, each sample counts as its own positive and stays
    in the softmax denominator:

        L(i) = -1/|P(i)| sum_{p in P(i)} log( exp(z_i.z_p/tau) / sum_{a} exp(z_i.z_a/tau) )

    with `P(i)` every view with i's label, i included, and `a` over all views, i
    included. With one view per sample this equals `npairs_loss(y, z @ z.T / tau)`.

    Args:
        temperature: softmax temperature (the Keras example used 0.05).
        normalize: L2-normalise embeddings first (the Keras example did).
        reduction, name, dtype: as for any Keras loss.

    Example:

    >>> import numpy as np
    >>> z = np.random.default_rng(0).normal(size=(6, 8)).astype("float32")
    >>> bool(NPairsLoss(temperature=0.05)([0, 1, 2, 0, 1, 2], z) > 0)
    True
    """

    def __init__(
        self,
        temperature=0.05,
        normalize=True,
        reduction="sum_over_batch_size",
        name="npairs_loss",
        dtype=None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        _check_options(temperature, None, "all", "out")
        self.temperature = temperature
        self.normalize = normalize

    def call(self, y_true, y_pred):
        features = _as_views(y_pred)
        if self.normalize:
            features = tf.math.l2_normalize(features, axis=-1)
        return _per_sample_loss(
            features, y_true, None, self.temperature, "all", "out", include_self=True
        )

    def get_config(self):
        config = super().get_config()
        config.update({"temperature": self.temperature, "normalize": self.normalize})
        return config
