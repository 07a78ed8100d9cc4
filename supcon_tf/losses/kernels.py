"""Dense and blocked (tiled) kernels of the supervised contrastive loss.

`anchor_losses` computes the per-sample SupCon loss of a set of anchor samples against
a (possibly larger, e.g. gathered across replicas) contrast batch. Two implementations
share one formulation and one custom gradient:

* `"dense"` computes the whole `[K, M]` logit matrix (K anchor views, M contrast views)
  in one block and keeps its exponentials for the backward pass (three products in all).
* `"blocked"` streams over row blocks of the logit matrix: the forward pass keeps only
  each row's log-sum-exp, the backward pass recomputes one block at a time and
  accumulates the anchor and contrast gradients, so the peak extra memory is
  O(block_size x M) instead of O(K x M).
* `"auto"` picks dense while its working set fits a memory budget, else blocked
  (`kernel_choice`); from the static shapes when they are known, else at run time.

Why one module of about 900 lines: the two kernels share one custom gradient, one
precision trick and one row loss for the variants; split apart, each half would have to
import the other's private pieces, and a change to the formulation must reach both
kernels in the same edit.

The loss of an anchor row i with logits `l_ij = z_i . z_j / tau` splits into

    loss_i = logsumexp_{j != i} l_ij - (1/|P(i)|) sum_{p in P(i)} l_ip          (Eq. 2, "out")
    loss_i = logsumexp_{j != i} l_ij + log|P(i)| - logsumexp_{p in P(i)} l_ip   (Eq. 3, "in")

Only the log-sum-exp terms are quadratic. For integer labels (and SimCLR, where every
sample is its own class) and `summation="out"`, the positive sum is linear in the
embeddings: `sum_{p in P(i)} z_i . z_p = z_i . S_class(i) - z_i . z_i` with `S_c` the sum
of the class's contrast embeddings, so it costs O(M x D) and needs no mask at all.
Multi-hot labels, explicit positive masks and `summation="in"` build a `[block, M]`
positive mask per block from the labels (or from rows of the caller's `[G, G]` mask);
no `[M, M]` mask is formed. Self-similarities are excluded by writing `-inf` on the self
entries (an in-place scatter), not by multiplying with a mask and not with a finite
stand-in that large logits could beat; a row whose only contrast is itself (a single
view of a single sample) is shifted by 0 instead of its `-inf` maximum, so no NaN arises.

Precision: the "out" loss subtracts two numbers of size about 1/tau. To keep float32
results as exact as the masked form, the value is computed as (log-denominator minus
the logit of one positive "reference" column, both from the same product) plus (that
logit minus the mean positive logit, from the difference of contrast vectors); the
gradient is that of the plain expression.

Variants (`Variant`: a denominator mode other than "all", a positives cap, or
weighted positives) go through one generic row loss, `_variant_row_loss`, evaluated
on each block of logits in both kernels; its backward pass recomputes the block's
logits and differentiates the row loss with respect to them (automatic
differentiation on a `[block, M]` matrix), then folds that into the same two
products, so the blocked kernel's memory stays O(block_size x M).

Passes over a block: a row's exponentials are shifted by an upper bound of its logits,
`|a_i| max_j |c_j|` (1/tau for normalised embeddings), put into the product as one more
column (`[a_i, -shift_i] . [c_j, 1]`), so the forward pass is one product, one exponential
and one row sum, with no row maximum and no subtraction; where the bound is more than
`BOUND_SHIFT_MARGIN` above a known logit of some row (tiny temperatures, unnormalised
embeddings of very different norms) that block takes its row maxima instead.

The gradient of a row's log-sum-exp is that row's softmax `exp(l - shift) / sum`. The
dense kernel keeps the unnormalised exponentials and the row sums, and folds
`upstream / sum` into the `[block, D]` factors of its two products, so the `[K, M]`
matrix is never normalised or scaled. The blocked kernel's backward pass recomputes each
block's softmax as `exp(l - logsumexp)` from one product (the kept log-sum-exp as the
shift column) and one exponential, then its two products.

When the anchors are the contrast set itself (`contrast_mode="all"` on one replica) and the
positives are linear, the similarity matrix is symmetric: the blocked kernel then computes
each similarity once (`symmetric.symmetric_terms`, about 3 products and one exponential of
the whole problem instead of 4 and 2), provided one shift suits every row; else, and
under XLA, it takes the row blocks above.
"""

from typing import NamedTuple

import tensorflow as tf

# Not in the public API; used only to tell whether a graph is being built for XLA.
from tensorflow.python.ops import control_flow_util

from supcon_tf.losses import row_blocks, symmetric
from supcon_tf.losses.kernel_choice import (
    DEFAULT_BLOCK_ELEMENTS,
    IMPLEMENTATIONS,
    MIN_BLOCK_ROWS,
    check_implementation,
    choose_implementation,
    default_block_size,
    default_budget,
    dense_fits,
)

# The kernel options (`kernel_choice`) stay reachable from here, where they always were.
__all__ = [
    "DEFAULT_BLOCK_ELEMENTS",
    "DENOMINATOR_MODES",
    "IMPLEMENTATIONS",
    "MIN_BLOCK_ROWS",
    "Positives",
    "Variant",
    "anchor_losses",
    "check_implementation",
    "check_variant",
    "choose_implementation",
    "default_block_size",
]

DENOMINATOR_MODES = ("all", "one_positive", "only_negatives")

BOUND_SHIFT_MARGIN = row_blocks.BOUND_SHIFT_MARGIN


class Positives(NamedTuple):
    """Which contrast samples are positives for an anchor sample.

    `kind` is one of:

    * `"labels"`: `values` holds `[G]` class labels; equal labels are positives.
    * `"samples"`: `values` is `None`; only the other views of the same sample.
    * `"hot"`: `values` holds `[G, C]` one-/multi-hot labels; positives share a label.
    * `"mask"`: `values` holds a boolean `[G, G]` matrix of positives between samples
      (diagonal included).
    * `"weights"`: `values` holds a non-negative float `[G, G]` matrix of pair weights
      (diagonal 1); a pair is a positive where its weight is positive.

    Example:

    >>> import tensorflow as tf
    >>> Positives("labels", tf.constant([0, 1, 0])).kind
    'labels'
    """

    kind: str
    values: object = None


class Variant(NamedTuple):
    """Which terms enter an anchor's loss (defaults: the paper's Eq. 2 / Eq. 3).

    * `denominator_mode`: `"all"` (every view but the anchor), `"one_positive"` (the
      one positive of the term and the anchor's negatives: google-research
      `LossDenominatorMode.ONE_POSITIVE`, SINCERE) or `"only_negatives"` (negatives
      only: DCL).
    * `positives_cap`: `None`, or the most positive views per anchor besides the
      anchor's own other views (a multiple of the number of views V); the first
      `cap / V` positive samples in batch order are kept, the others leave both the
      numerator and the denominator.

    Example:

    >>> Variant().is_default
    True
    >>> Variant("only_negatives").is_default
    False
    """

    denominator_mode: str = "all"
    positives_cap: object = None

    @property
    def is_default(self):
        return self.denominator_mode == "all" and self.positives_cap is None


def check_variant(denominator_mode, positives_cap):
    """Validates the variant options of a loss.

    Args:
        denominator_mode: one of `DENOMINATOR_MODES`.
        positives_cap: `None` (no cap) or a non-negative integer.

    Example:

    >>> check_variant("one_positive", 4)
    >>> check_variant("all", -1)
    Traceback (most recent call last):
    ...
    ValueError: `positives_cap` must be None (no cap) or a non-negative integer multiple of the number of views, got -1.
    """
    if denominator_mode not in DENOMINATOR_MODES:
        raise ValueError(
            f"Unknown `denominator_mode`={denominator_mode!r}. Expected one of "
            f"{DENOMINATOR_MODES}: 'all' is the paper's denominator, 'one_positive' keeps "
            "only the term's positive and the negatives (SINCERE), 'only_negatives' only "
            "the negatives (DCL)."
        )
    _check_optional_count(
        "positives_cap",
        positives_cap,
        0,
        "None (no cap) or a non-negative integer multiple of the number of views",
    )


def _check_optional_count(name, value, minimum, meaning):
    """Raises `ValueError` (saying `meaning`) unless `value` is None or an int >= `minimum`."""
    if value is not None and (
        isinstance(value, bool) or not isinstance(value, int) or value < minimum
    ):
        raise ValueError(f"`{name}` must be {meaning}, got {value!r}.")


def _segment_ids(labels):
    """Returns `[G]` int32 ids in `[0, G)`, equal exactly where the labels are equal.

    Uses a sort instead of `tf.unique`, so that shapes stay static under XLA.
    """
    order = tf.argsort(labels, stable=True)
    sorted_labels = tf.gather(labels, order)
    starts = tf.concat([[True], tf.not_equal(sorted_labels[1:], sorted_labels[:-1])], axis=0)
    sorted_ids = tf.cumsum(tf.cast(starts, tf.int32)) - 1
    return tf.scatter_nd(order[:, None], sorted_ids, tf.shape(labels))


def _positive_sums(features, anchors, anchor_samples, positives, include_self):
    """Linear-time `sum_{p in P(i)} z_p` (`[K, D]`) and `|P(i)|` for label-equality positives."""
    num_views = features.shape[1]
    global_batch = tf.shape(features)[0]
    sample_sums = tf.reduce_sum(features, axis=1)
    if positives.kind == "samples":
        class_sums = sample_sums
        class_sizes = tf.ones([global_batch], features.dtype)
        anchor_classes = anchor_samples
    else:
        segment_ids = _segment_ids(positives.values)
        class_sums = tf.math.unsorted_segment_sum(sample_sums, segment_ids, global_batch)
        class_sizes = tf.math.unsorted_segment_sum(
            tf.ones([global_batch], features.dtype), segment_ids, global_batch
        )
        anchor_classes = tf.gather(segment_ids, anchor_samples)
    positive_sums = tf.gather(class_sums, anchor_classes)
    counts = num_views * tf.gather(class_sizes, anchor_classes)
    if not include_self:
        positive_sums -= anchors
        counts -= 1.0
    return positive_sums, counts


def _mask_builder(positives, global_batch, num_views, dtype):
    """Returns `build(anchor_samples[b]) -> bool [b, M]` positives (self included)."""
    contrast_samples = tf.tile(tf.range(global_batch), [num_views])

    def same_sample(anchor_samples):
        return tf.equal(anchor_samples[:, None], contrast_samples[None, :])

    if positives.kind == "samples":
        return same_sample
    if positives.kind == "labels":
        contrast_labels = tf.tile(positives.values, [num_views])

        def build(anchor_samples):
            anchor_labels = tf.gather(positives.values, anchor_samples)
            return tf.equal(anchor_labels[:, None], contrast_labels[None, :])

        return build
    if positives.kind == "hot":
        hot = tf.cast(positives.values, dtype)
        contrast_hot = tf.tile(hot, [num_views, 1])

        def build(anchor_samples):
            shared = tf.matmul(tf.gather(hot, anchor_samples), contrast_hot, transpose_b=True)
            return tf.logical_or(shared > 0, same_sample(anchor_samples))

        return build

    def build(anchor_samples):
        rows = tf.gather(positives.values, anchor_samples)
        return tf.logical_or(tf.tile(rows, [1, num_views]), same_sample(anchor_samples))

    return build


def _sample_builder(positives, global_batch, dtype):
    """Returns `build(anchor_samples[b]) -> [b, G]` pair weights between samples.

    1 for a positive pair and 0 otherwise (or the caller's weights); the anchor's own
    sample always has weight 1.
    """
    samples = tf.range(global_batch)

    def own(anchor_samples):
        return tf.equal(anchor_samples[:, None], samples[None, :])

    if positives.kind == "samples":
        relation = own
    elif positives.kind == "labels":

        def relation(anchor_samples):
            anchor_labels = tf.gather(positives.values, anchor_samples)
            return tf.equal(anchor_labels[:, None], positives.values[None, :])

    elif positives.kind == "hot":
        hot = tf.cast(positives.values, dtype)

        def relation(anchor_samples):
            return tf.matmul(tf.gather(hot, anchor_samples), hot, transpose_b=True) > 0

    else:
        matrix = tf.cast(positives.values, dtype)

        def build(anchor_samples):
            rows = tf.gather(matrix, anchor_samples)
            return tf.where(own(anchor_samples), tf.ones_like(rows), rows)

        return build

    def build(anchor_samples):
        return tf.cast(tf.logical_or(relation(anchor_samples), own(anchor_samples)), dtype)

    return build


def _safe_logsumexp(logits, include):
    """Row log-sum-exp over `include`, and whether the row has any entry.

    An empty row gets 0 (not `-inf`) with a zero gradient, so no NaN arises.
    """
    minus_infinity = tf.constant(-float("inf"), logits.dtype)
    masked = tf.where(include, logits, minus_infinity)
    nonempty = tf.reduce_any(include, axis=1)
    shift = tf.stop_gradient(tf.where(nonempty, tf.reduce_max(masked, axis=1), 0.0))
    sums = tf.reduce_sum(tf.exp(masked - shift[:, None]), axis=1)
    safe_sums = tf.where(nonempty, sums, tf.ones_like(sums))
    return shift + tf.math.log(safe_sums), nonempty


def _variant_row_loss(
    logits, anchor_samples, self_index, build_weights, num_views, variant, summation
):
    """Per-row loss of a variant from a `[b, M]` block of logits (self entries `-inf`).

    With pair weights `w_ip` (0/1 for labels), `W_i = sum_p w_ip`, negatives `N(i)`
    (the views of samples with weight 0) and positives `P(i)` (weight > 0, capped):

        "all":            D_i = logsumexp over P(i) and N(i)
        "only_negatives": D_i = logsumexp over N(i)
        out:  L_i = sum_p w_ip (D_i - l_ip) / W_i
        in:   L_i = D_i + log W_i - logsumexp_p (l_ip + log w_ip)
        "one_positive" out: L_i = sum_p w_ip softplus(logsumexp_N(i) - l_ip) / W_i
        "one_positive" in:  L_i = -log( sum_p (w_ip / W_i) sigmoid(l_ip - logsumexp_N(i)) )

    A row without positive, or (modes "one_positive" and "only_negatives") without
    negative, has loss 0.
    """
    dtype = logits.dtype
    rows = tf.shape(logits)[0]
    sample_weights = build_weights(anchor_samples)
    uncapped = sample_weights > 0
    if variant.positives_cap is not None:
        global_batch = tf.shape(sample_weights)[1]
        own = tf.equal(anchor_samples[:, None], tf.range(global_batch)[None, :])
        others = tf.logical_and(uncapped, tf.logical_not(own))
        rank = tf.cumsum(tf.cast(others, tf.int32), axis=1)
        kept = tf.logical_and(others, rank <= variant.positives_cap // num_views)
        sample_weights = tf.where(
            tf.logical_or(kept, own), sample_weights, tf.zeros_like(sample_weights)
        )
    weights = tf.tile(sample_weights, [1, num_views])
    weights = tf.tensor_scatter_nd_update(weights, self_index, tf.zeros([rows], dtype))
    positive = weights > 0
    negative = tf.logical_not(tf.tile(uncapped, [1, num_views]))
    total = tf.reduce_sum(weights, axis=1)
    has_positive = total > 0
    safe_total = tf.where(has_positive, total, tf.ones_like(total))
    zeros = tf.zeros_like(logits)
    safe_logits = tf.where(positive, logits, zeros)
    if variant.denominator_mode == "one_positive":
        log_negatives, has_negative = _safe_logsumexp(logits, negative)
        margin = log_negatives[:, None] - safe_logits
        if summation == "out":
            terms = tf.where(positive, weights * tf.math.softplus(margin), zeros)
            loss = tf.reduce_sum(terms, axis=1) / safe_total
        else:
            log_terms = tf.math.log_sigmoid(-margin) + tf.math.log(
                tf.where(positive, weights, tf.ones_like(weights))
            )
            log_mean, _ = _safe_logsumexp(log_terms, positive)
            loss = tf.math.log(safe_total) - log_mean
        valid = tf.logical_and(has_positive, has_negative)
        # Without negatives every term is log(1) = 0 already; keep it exact.
        return tf.where(valid, loss, tf.zeros_like(loss))
    if variant.denominator_mode == "all":
        log_denominator, _ = _safe_logsumexp(logits, tf.logical_or(positive, negative))
        valid = has_positive
    else:
        log_denominator, has_negative = _safe_logsumexp(logits, negative)
        valid = tf.logical_and(has_positive, has_negative)
    if summation == "out":
        gaps = tf.where(positive, weights * (log_denominator[:, None] - safe_logits), zeros)
        loss = tf.reduce_sum(gaps, axis=1) / safe_total
    else:
        weighted = safe_logits + tf.math.log(tf.where(positive, weights, tf.ones_like(weights)))
        log_positive, _ = _safe_logsumexp(weighted, positive)
        loss = log_denominator + tf.math.log(safe_total) - log_positive
    return tf.where(valid, loss, tf.zeros_like(loss))


def _reference_columns(positives, num_views, global_batch, local_batch, rows, anchor_samples):
    """For each anchor row, one contrast column that is a positive whenever it has one.

    The other view of the same sample when there are several views; with one view, the
    next sample of the same class (in label order); the anchor itself when it has none.
    """
    if num_views > 1:
        next_view = (rows // local_batch + 1) % num_views
        return next_view * global_batch + anchor_samples
    if positives.kind != "labels":
        return anchor_samples
    segment_ids = _segment_ids(positives.values)
    order = tf.argsort(segment_ids, stable=True)
    sorted_ids = tf.gather(segment_ids, order)
    same_as_next = tf.concat([tf.equal(sorted_ids[1:], sorted_ids[:-1]), [False]], axis=0)
    same_as_previous = tf.concat([[False], same_as_next[:-1]], axis=0)
    positions = tf.range(tf.shape(order)[0])
    partner_positions = tf.where(
        same_as_next, positions + 1, tf.where(same_as_previous, positions - 1, positions)
    )
    partners = tf.scatter_nd(
        order[:, None], tf.gather(order, partner_positions), tf.shape(segment_ids)
    )
    return tf.gather(partners, anchor_samples)


def _row_terms(
    anchors,
    contrast,
    anchor_samples,
    self_columns,
    reference_columns,
    build_mask,
    positive_term,
    include_self,
    block_size,
    row_loss=None,
    symmetric_anchors=False,
):
    """`row_blocks.row_block_terms`, or the symmetric blocked kernel where it applies.

    The arguments and the returned terms are those of `row_blocks.row_block_terms`, plus:

    Args:
        symmetric_anchors: the caller's word that `anchors` is `contrast` divided by the
            temperature, row for row. Then blocked linear-positives terms (`block_size`
            set, `positive_term` None) use `symmetric.symmetric_terms` (each similarity
            once) when one shift suits every row, checked at run time; else, and in every
            other case, `row_blocks.row_block_terms` runs.
    """
    arguments = (anchors, contrast, anchor_samples, self_columns, reference_columns)
    options = dict(
        build_mask=build_mask,
        positive_term=positive_term,
        include_self=include_self,
        block_size=block_size,
        row_loss=row_loss,
    )
    if not symmetric_anchors or positive_term is not None or block_size is None:
        return row_blocks.row_block_terms(*arguments, **options)
    if reference_columns is None:
        reference_columns = self_columns
    # One shift for every row: the largest bound of the logits, |a_i| max_j |c_j|, when
    # no row's known logit (one of its positives, else its neighbour) is far below it.
    contrast_norm = tf.reduce_max(tf.norm(contrast, axis=1))
    shift = tf.stop_gradient(tf.reduce_max(tf.norm(anchors, axis=1)) * contrast_norm)
    probe_columns = tf.where(
        tf.equal(reference_columns, self_columns),
        (self_columns + 1) % tf.shape(contrast)[0],
        reference_columns,
    )
    probes = tf.stop_gradient(tf.reduce_sum(anchors * tf.gather(contrast, probe_columns), axis=1))
    one_shift = tf.reduce_all(shift - probes <= BOUND_SHIFT_MARGIN)

    def by_rows():
        # A custom gradient in a `tf.cond` branch may use only the branch's own tensors:
        # the kernel's gradient uses its inputs, so they enter the branch as copies.
        def copy(value):
            return tf.identity(value) if isinstance(value, tf.Tensor) else value

        copied = {name: copy(value) for name, value in options.items()}
        return row_blocks.row_block_terms(*[copy(value) for value in arguments], **copied)

    return tf.cond(
        one_shift,
        lambda: symmetric.symmetric_terms(
            anchors, contrast, shift, reference_columns, include_self, block_size
        ),
        by_rows,
    )


def anchor_losses(
    features,
    positives,
    temperature,
    contrast_mode,
    summation,
    include_self=False,
    anchor_start=0,
    local_batch=None,
    implementation="auto",
    block_size=None,
    variant=None,
    dense_memory_budget=None,
):
    """Per-sample loss of the local anchors against a (possibly larger) contrast set.

    Args:
        features: `[G, V, D]` embeddings of the whole contrast batch (already normalised).
        positives: a `Positives` description of the positive pairs between samples.
        temperature: softmax temperature.
        contrast_mode: `"all"` (every view is an anchor) or `"one"` (only view 0).
        summation: `"out"` (Eq. 2) or `"in"` (Eq. 3).
        include_self: the n-pairs variant: the anchor itself counts as a positive and
            stays in the denominator.
        anchor_start: index of the first anchor sample in `[0, G)`.
        local_batch: number of anchor samples (default: all G from `anchor_start`).
        implementation: `"auto"`, `"dense"` or `"blocked"`.
        block_size: anchor rows per block for `"blocked"` (None: about
            `DEFAULT_BLOCK_ELEMENTS` logits per block).
        variant: a `Variant` (denominator mode, positives cap); weighted positives
            come as `Positives("weights", ...)`.
        dense_memory_budget: bytes "auto" lets the dense kernel use (None: the default,
            `kernel_choice.SYMMETRIC_DENSE_MEMORY_BUDGET` where the blocked kernel would take
            its symmetric path, else `kernel_choice.DEFAULT_DENSE_MEMORY_BUDGET`).

    Returns:
        `[local_batch]` loss per anchor sample, averaged over its anchor views.

    Example:

    >>> import tensorflow as tf
    >>> features = tf.math.l2_normalize(tf.random.stateless_normal([6, 2, 4], [0, 1]), -1)
    >>> positives = Positives("labels", tf.constant([0, 1, 0, 1, 2, 2]))
    >>> dense = anchor_losses(features, positives, 0.1, "all", "out", implementation="dense")
    >>> blocked = anchor_losses(
    ...     features, positives, 0.1, "all", "out", implementation="blocked", block_size=5
    ... )
    >>> bool(tf.reduce_all(tf.abs(dense - blocked) < 1e-5))
    True
    """
    check_implementation(implementation, block_size, dense_memory_budget)
    variant = Variant() if variant is None else variant
    arguments = (features, positives, temperature, contrast_mode, summation)
    options = dict(
        include_self=include_self,
        anchor_start=anchor_start,
        local_batch=local_batch,
        implementation=implementation,
        block_size=block_size,
        variant=variant,
        dense_memory_budget=dense_memory_budget,
    )
    symmetric = _symmetric_candidate(
        contrast_mode, summation, positives, variant, anchor_start, local_batch, features
    )
    blocked = _blocked_when_static(
        features, contrast_mode, implementation, default_budget(dense_memory_budget, symmetric)
    )
    if tf.executing_eagerly() and blocked:
        # Eagerly, the blocked loop is a Python loop whose every intermediate is a live
        # value: run it as one graph (traced once per shape and options), as lean as a
        # compiled call. Small dense calls stay eager (tracing would cost more).
        return _graph_anchor_losses(*arguments, **options)
    return _anchor_losses(*arguments, **options)


def _symmetric_candidate(
    contrast_mode, summation, positives, variant, anchor_start, local_batch, features
):
    """Whether the blocked kernel would take its symmetric path (`supcon_tf.losses.symmetric`):
    every view of every local sample an anchor, on one replica, linear positives."""
    linear_positives = (
        variant.is_default and summation == "out" and positives.kind in ("labels", "samples")
    )
    return linear_positives and _anchors_are_contrast(
        contrast_mode, anchor_start, local_batch, features
    )


def _anchors_are_contrast(contrast_mode, anchor_start, local_batch, features):
    """Whether the anchors are the contrast rows themselves (one replica, every view an
    anchor), outside XLA (whose loops need the static shapes the symmetric kernel lacks)."""
    return (
        contrast_mode == "all"
        and isinstance(anchor_start, int)
        and anchor_start == 0
        and (
            local_batch is None
            or (isinstance(local_batch, int) and local_batch == features.shape[0])
        )
        and not _in_xla()
    )


def _blocked_when_static(features, contrast_mode, implementation, dense_memory_budget):
    """Whether the kernel resolves to `"blocked"` from `features`' static shape."""
    num_samples, num_views = features.shape[0], features.shape[1]
    if num_samples is None or num_views is None:
        return implementation == "blocked"
    anchor_views = num_views if contrast_mode == "all" else 1
    num_contrasts = num_samples * num_views
    kernel = choose_implementation(
        implementation,
        num_samples * anchor_views,
        num_contrasts,
        memory_budget=dense_memory_budget,
        itemsize=features.dtype.size,
    )
    return kernel == "blocked"


def _size(tensor):
    """The number of rows of `tensor`: a Python int when static, else a scalar tensor."""
    return tensor.shape[0] if tensor.shape[0] is not None else tf.shape(tensor)[0]


def _in_xla():
    """Whether the current graph is being built for XLA (`jit_compile=True`, TPU)."""
    return control_flow_util.GraphOrParentsInXlaContext(tf.compat.v1.get_default_graph())


def _anchor_losses(
    features,
    positives,
    temperature,
    contrast_mode,
    summation,
    include_self,
    anchor_start,
    local_batch,
    implementation,
    block_size,
    variant,
    dense_memory_budget,
):
    """`anchor_losses` in a graph (see there)."""
    num_views = features.shape[1]
    anchor_views = num_views if contrast_mode == "all" else 1
    dtype = features.dtype
    global_batch = tf.shape(features)[0]
    # The anchors are the contrast rows themselves (one replica, every view an anchor):
    # the blocked kernel may use the symmetry of the similarities (not under XLA, whose
    # loops need static shapes).
    symmetric_anchors = _anchors_are_contrast(contrast_mode, anchor_start, local_batch, features)
    if local_batch is None:
        local_batch = global_batch - anchor_start
    dim = tf.shape(features)[2]

    # View-major layout: row v * G + g is view v of sample g.
    contrast = tf.reshape(tf.transpose(features, [1, 0, 2]), [-1, dim])
    local = features[anchor_start : anchor_start + local_batch, :anchor_views]
    anchors = tf.reshape(tf.transpose(local, [1, 0, 2]), [-1, dim])
    rows = tf.range(tf.shape(anchors)[0])
    anchor_samples = anchor_start + rows % local_batch
    self_columns = (rows // local_batch) * global_batch + anchor_samples

    use_variant = not variant.is_default or positives.kind == "weights"
    linear_positives = (
        not use_variant and summation == "out" and positives.kind in ("labels", "samples")
    )
    row_loss = None
    if use_variant:
        positive_term, build_mask, reference_columns = "variant", None, None
        build_weights = _sample_builder(positives, global_batch, dtype)

        def row_loss(logits, samples, self_index):
            return _variant_row_loss(
                logits, samples, self_index, build_weights, num_views, variant, summation
            )

    elif linear_positives:
        positive_term, build_mask = None, None
        if include_self:
            reference_columns = self_columns
        else:
            reference_columns = _reference_columns(
                positives, num_views, global_batch, local_batch, rows, anchor_samples
            )
    else:
        positive_term = "sum" if summation == "out" else "logsumexp"
        build_mask = _mask_builder(positives, global_batch, num_views, dtype)
        reference_columns = None

    scaled_anchors = anchors * tf.constant(1.0 / temperature, dtype)
    # The symmetric blocked kernel is the faster one at smaller sizes than the row blocks.
    dense_memory_budget = default_budget(
        dense_memory_budget, symmetric_anchors and positive_term is None
    )

    def terms_of(kernel):
        blocks = None
        if kernel == "blocked":
            blocks = block_size or default_block_size(_size(contrast))
            # No block taller than the anchors: padding rows would be computed in vain.
            rows = _size(anchors)
            if isinstance(rows, int) and isinstance(blocks, int):
                blocks = max(1, min(blocks, rows))
            else:
                blocks = tf.maximum(1, tf.minimum(blocks, rows))
        return _row_terms(
            scaled_anchors,
            contrast,
            anchor_samples,
            self_columns,
            reference_columns,
            build_mask,
            positive_term,
            include_self,
            block_size=blocks,
            row_loss=row_loss,
            symmetric_anchors=symmetric_anchors,
        )

    implementation = choose_implementation(
        implementation,
        anchors.shape[0],
        contrast.shape[0],
        _in_xla(),
        memory_budget=dense_memory_budget,
        itemsize=dtype.size,
    )
    if implementation == "run time":
        fits = dense_fits(
            tf.shape(anchors)[0], tf.shape(contrast)[0], dtype.size, dense_memory_budget
        )
        terms = tf.cond(fits, lambda: terms_of("dense"), lambda: terms_of("blocked"))
    else:
        terms = terms_of(implementation)
    if use_variant:
        (loss,) = terms
        counts = tf.ones_like(loss)
    elif linear_positives:
        log_denominator, reference_gap = terms
        positive_sums, counts = _positive_sums(
            features, anchors, anchor_samples, positives, include_self
        )
        safe_counts = tf.maximum(counts, 1.0)
        mean_positive = tf.reduce_sum(scaled_anchors * positive_sums, axis=1) / safe_counts
        loss = log_denominator - mean_positive
        # The same value without cancelling two numbers of size 1/temperature:
        # (log-denominator - reference logit) + (reference logit - mean positive logit),
        # the latter from the difference of the contrast vectors. Gradients flow
        # through `loss`, whose value is replaced.
        reference_to_mean = tf.reduce_sum(
            scaled_anchors
            * (tf.gather(contrast, reference_columns) - positive_sums / safe_counts[:, None]),
            axis=1,
        )
        accurate = tf.stop_gradient(reference_gap + reference_to_mean)
        loss = accurate + (loss - tf.stop_gradient(loss))
    else:
        log_denominator, positive, counts, gap = terms
        safe_counts = tf.maximum(counts, 1.0)
        if summation == "out":
            loss = log_denominator - positive / safe_counts
        else:
            gap += tf.math.log(safe_counts)
            loss = log_denominator + tf.math.log(safe_counts) - positive
        # The value without cancelling the two shifts (see `row_blocks.row_block_terms`);
        # the gradient flows through `loss`.
        loss = tf.stop_gradient(gap) + (loss - tf.stop_gradient(loss))
    loss = tf.where(counts > 0, loss, tf.zeros_like(loss))
    return tf.reduce_mean(tf.reshape(loss, [anchor_views, local_batch]), axis=0)


_graph_anchor_losses = tf.function(_anchor_losses, autograph=False)
