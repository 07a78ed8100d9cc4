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

import keras
import tensorflow as tf

from supcon_tf import checks
from supcon_tf.losses import kernels
from supcon_tf.losses.labels import (
    _as_views,
    _check_not_empty,
    _flat_labels,
    _num_views,
    _positives,
    label_tensor,
)
from supcon_tf.losses.memory import _memory_bank
from supcon_tf.losses.replicas import _gather_across_replicas, _multi_replica_context

CONTRAST_MODES = ("all", "one")
SUMMATIONS = ("out", "in")


def check_temperature(temperature, name="temperature"):
    """The one rule for a softmax temperature: a finite number > 0, returned as a float.

    The losses' public entries call it; a config that takes a temperature calls it too, so
    the rule and its message live here only.

    >>> check_temperature(0.1)
    0.1
    >>> check_temperature(0)
    Traceback (most recent call last):
    ...
    supcon_tf.errors.UsageError: `temperature` must be > 0.0, got 0.
    """
    return checks.number(name, temperature, minimum=0.0, inclusive=False)


def _check_options(temperature, base_temperature, contrast_mode, summation):
    """Validates the loss options and returns `(temperature, base_temperature)`."""
    temperature = check_temperature(temperature)
    if base_temperature is None:
        base_temperature = temperature
    base_temperature = check_temperature(base_temperature, "base_temperature")
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
    return temperature, base_temperature


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
    dense_memory_budget=None,
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
        implementation: `"auto"` (default: dense while its similarity matrices fit
            `dense_memory_budget`, blocked beyond; decided at run time when the batch
            size is unknown while tracing, as in `model.fit`, for a partial last batch
            or a gathered global batch), `"dense"` (the whole similarity matrix at once)
            or `"blocked"` (row blocks with a streaming log-sum-exp; memory
            O(N x block_size) for huge batches). Same values and gradients either way.
        block_size: anchor rows per block of `"blocked"`; `None` picks about
            `kernel_choice.DEFAULT_BLOCK_ELEMENTS` similarities per block.
        dense_memory_budget: bytes that `"auto"` lets the dense kernel's N x N matrices
            take (it keeps `kernel_choice.DENSE_LIVE_MATRICES` of them); `None` (default)
            is `kernel_choice.SYMMETRIC_DENSE_MEMORY_BUDGET`, 64 MiB (dense up to 1024 x 2
            views in float32), where the blocked kernel uses the symmetry of the
            similarities (`contrast_mode="all"` on one replica, `summation="out"` with
            labels or SimCLR) and is the faster one beyond, else
            `kernel_choice.DEFAULT_DENSE_MEMORY_BUDGET`, 1 GiB (dense up to 4096 x 2
            views). Raise it to keep larger batches dense, lower it to bound the memory.
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
    kernels.check_implementation(implementation, block_size, dense_memory_budget)
    kernels.check_variant(denominator_mode, positives_cap)
    features = _as_views(y_pred)
    _check_not_empty(features)
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
    checks.boolean("gather_across_replicas", gather_across_replicas)
    checks.boolean("pair_weights", pair_weights)
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
        dense_memory_budget=dense_memory_budget,
        variant=kernels.Variant(denominator_mode, positives_cap),
        pair_weights=pair_weights,
    )
    return loss * tf.cast(temperature / base_temperature, loss.dtype)


def _check_cap_views(positives_cap, num_views):
    """A cap counts whole samples: it must be a multiple of the number of views."""
    if positives_cap is not None and positives_cap % num_views:
        raise ValueError(
            f"`positives_cap` must be a multiple of the number of views ({num_views}): it "
            f"counts all views of each kept positive sample; got {positives_cap}."
        )


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
    dense_memory_budget=None,
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
        implementation, block_size, dense_memory_budget: the kernel (see
            `kernels.anchor_losses`).
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
        dense_memory_budget=dense_memory_budget,
    )


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
        dense_memory_budget: bytes `"auto"` lets the dense kernel use (`None`: the
            default of the kernel that would run); see `supervised_contrastive_loss`.
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
        dense_memory_budget=None,
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
        kernels.check_implementation(implementation, block_size, dense_memory_budget)
        kernels.check_variant(denominator_mode, positives_cap)
        checks.boolean("gather_across_replicas", gather_across_replicas)
        self.temperature = temperature
        self.base_temperature = base_temperature
        self.contrast_mode = contrast_mode
        self.summation = summation
        self.normalize = normalize
        self.implementation = implementation
        self.block_size = block_size
        self.dense_memory_budget = dense_memory_budget
        self.gather_across_replicas = gather_across_replicas
        self.denominator_mode = denominator_mode
        self.positives_cap = positives_cap
        self.pair_weights = checks.boolean("pair_weights", pair_weights)

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
            dense_memory_budget=self.dense_memory_budget,
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
                "dense_memory_budget": self.dense_memory_budget,
                "gather_across_replicas": self.gather_across_replicas,
                "denominator_mode": self.denominator_mode,
                "positives_cap": self.positives_cap,
                "pair_weights": self.pair_weights,
            }
        )
        return config
