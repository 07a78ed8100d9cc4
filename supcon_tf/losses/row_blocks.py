"""The row-block loss kernel: per-row log-denominators and positive terms, block by block.

`row_block_terms` computes, for each anchor row, the log-sum-exp over its contrasts and
the positive term the loss needs, with a custom gradient; with `block_size` it walks
blocks of anchor rows in a `tf.while_loop`, keeping O(block_size x M) memory, and
recomputes each block in the backward pass. It serves every case: the dense kernel (one
block), label masks, multi-hot labels, variants and local anchors.
`supcon_tf.losses.kernels` calls it (or, where the anchors are the contrast set itself,
`supcon_tf.losses.symmetric`); the passes are derived in the kernels module's docstring.
"""

import tensorflow as tf

# A row's exponentials are taken relative to an upper bound of its logits, |a_i| max_j |c_j|
# (no pass over the block), when the bound is at most this far above a logit of the row:
# every term within e^-47 of the row's largest stays a normal float32.
BOUND_SHIFT_MARGIN = 40.0


def row_block_terms(
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
):
    """Per-row log-denominator and positive terms, with a custom gradient.

    Args:
        anchors: `[K, D]` anchor embeddings already divided by the temperature.
        contrast: `[M, D]` contrast embeddings.
        anchor_samples: `[K]` sample index (in the contrast batch) of each anchor row.
        self_columns: `[K]` column of each anchor row's own view.
        reference_columns: `[K]` a positive column per row (for `reference_gap`), or None.
        build_mask: `anchor_samples[b] -> bool [b, M]` positives, or None.
        positive_term: None, `"sum"` (sum of positive logits), `"logsumexp"`, or
            `"variant"` (the whole row loss is `row_loss`).
        block_size: rows per block, or None for one dense block.
        row_loss: for `"variant"`: `(logits, anchor_samples, self_index) -> [b]` losses.
    Returns:
        `(log_denominator, reference_gap)` when `positive_term` is None, where
        `reference_gap = log_denominator - logit[reference column]` is computed without
        cancellation (no gradient); else `(log_denominator, positive, count, gap)` where
        `positive` is the sum (`"sum"`) or log-sum-exp of the positive logits and `gap` is
        log-denominator minus mean positive logit, or minus `positive`, computed from the
        row shifts without cancellation (no gradient); all `[K]`. For `"variant"`:
        `(loss,)`.
    """
    dtype = anchors.dtype
    minus_infinity = tf.constant(-float("inf"), dtype)
    if reference_columns is None:
        reference_columns = self_columns
    num_contrasts = tf.shape(contrast)[0]
    # A row's shift enters its product as one more column: [a, -shift] . [c, 1] = l - shift.
    shifted_contrast = tf.concat([contrast, tf.ones([num_contrasts, 1], dtype)], axis=1)
    # Upper bounds of the rows' logits, and one logit of each row (not its own) below them.
    bounds = tf.stop_gradient(tf.norm(anchors, axis=1) * tf.reduce_max(tf.norm(contrast, axis=1)))
    probe_columns = tf.where(
        tf.equal(reference_columns, self_columns),
        (self_columns + 1) % num_contrasts,
        reference_columns,
    )
    probes = tf.stop_gradient(tf.reduce_sum(anchors * tf.gather(contrast, probe_columns), axis=1))

    def product(block_anchors, self_index, shift):
        """`[b, M]` logits minus each row's `shift` (None: 0), `-inf` on the self entries."""
        if shift is None:
            logits = tf.matmul(block_anchors, contrast, transpose_b=True)
        else:
            augmented = tf.concat([block_anchors, -shift[:, None]], axis=1)
            logits = tf.matmul(augmented, shifted_contrast, transpose_b=True)
        if include_self:
            return logits
        rows = tf.shape(self_index)[0]
        return tf.tensor_scatter_nd_update(logits, self_index, tf.fill([rows], minus_infinity))

    def shifted_logits(block_anchors, self_index, block_bounds, block_probes):
        """`(shift, logits - shift)`: the bounds (no pass) when near enough, else row maxima."""

        def by_bound():
            return block_bounds, product(block_anchors, self_index, block_bounds)

        def by_maximum():
            logits = product(block_anchors, self_index, None)
            row_max = tf.reduce_max(logits, axis=1)
            shift = tf.where(row_max > minus_infinity, row_max, tf.zeros_like(row_max))
            return shift, logits - shift[:, None]

        near = tf.reduce_all(block_bounds - block_probes <= BOUND_SHIFT_MARGIN)
        return tf.cond(near, by_bound, by_maximum)

    def forward_block(block_anchors, block_samples, block_self, block_reference, *limits):
        rows = tf.shape(block_anchors)[0]
        self_index = tf.stack([tf.range(rows), block_self], axis=1)
        if positive_term == "variant":
            logits = product(block_anchors, self_index, None)
            return {
                "logits": logits,
                "self_index": self_index,
                "samples": block_samples,
                "loss": row_loss(logits, block_samples, self_index),
            }
        shift, shifted = shifted_logits(block_anchors, self_index, *limits)
        exps = tf.exp(shifted)
        sums = tf.reduce_sum(exps, axis=1)
        log_sums = tf.math.log(sums)
        state = {
            "exps": exps,
            "inverse_sums": tf.math.reciprocal_no_nan(sums),
            "log_denominator": shift + log_sums,
        }
        if positive_term is None:
            # log-denominator minus the reference logit, both relative to the shift.
            state["reference_gap"] = log_sums - tf.gather(shifted, block_reference, batch_dims=1)
            return state
        mask = build_mask(block_samples)
        if not include_self:
            mask = tf.tensor_scatter_nd_update(mask, self_index, tf.zeros([rows], tf.bool))
        count = tf.reduce_sum(tf.cast(mask, dtype), axis=1)
        state.update(mask=mask, count=count)
        has_positive = count > 0
        if positive_term == "sum":
            positive = tf.reduce_sum(tf.where(mask, shifted, tf.zeros_like(shifted)), 1)
            # log-denominator minus the mean positive logit, both relative to the shift.
            gap = log_sums - positive / tf.maximum(count, 1.0)
            positive += count * shift
        else:
            positive_shifted = tf.where(mask, shifted, minus_infinity)
            positive_max = tf.reduce_max(positive_shifted, axis=1)
            positive_max = tf.where(has_positive, positive_max, tf.zeros_like(positive_max))
            positive_exps = tf.exp(positive_shifted - positive_max[:, None])
            positive_sums = tf.reduce_sum(positive_exps, axis=1)
            log_positive = positive_max + tf.math.log(positive_sums)
            positive = shift + log_positive
            gap = log_sums - log_positive
            state["positive_softmax"] = (
                positive_exps * tf.math.reciprocal_no_nan(positive_sums)[:, None]
            )
        state["positive"] = tf.where(has_positive, positive, tf.zeros_like(positive))
        state["gap"] = tf.where(has_positive, gap, tf.zeros_like(gap))
        return state

    def softmax_block(block_anchors, block_self, log_denominator):
        """Backward state of linear-positives rows: the softmax `exp(l - logsumexp)`."""
        rows = tf.shape(block_anchors)[0]
        self_index = tf.stack([tf.range(rows), block_self], axis=1)
        finite = tf.math.is_finite(log_denominator)  # -inf: a row with no contrast at all
        shift = tf.where(finite, log_denominator, tf.zeros_like(log_denominator))
        softmax = tf.exp(product(block_anchors, self_index, shift))
        return {"exps": softmax, "inverse_sums": tf.ones_like(shift)}

    def backward_block(state, block_anchors, grad_denominator, grad_positive):
        """Returns the gradients of the block's anchors and its contrast contribution."""
        if positive_term == "variant":
            logits = state["logits"]
            with tf.GradientTape() as tape:
                tape.watch(logits)
                loss = row_loss(logits, state["samples"], state["self_index"])
            logits_grad = tape.gradient(loss, logits, output_gradients=grad_denominator)
            anchor_grad = tf.matmul(logits_grad, contrast)
            contrast_grad = tf.matmul(logits_grad, block_anchors, transpose_a=True)
            return anchor_grad, contrast_grad
        exps = state["exps"]
        # dlogits = diag(g / sums) exps: fold g / sums into the [b, D] factors.
        row_scale = (grad_denominator * state["inverse_sums"])[:, None]
        if positive_term is None:
            anchor_grad = row_scale * tf.matmul(exps, contrast)
            contrast_grad = tf.matmul(exps, row_scale * block_anchors, transpose_a=True)
            return anchor_grad, contrast_grad
        if positive_term == "sum":
            positive_grad = grad_positive[:, None] * tf.cast(state["mask"], dtype)
        else:
            positive_grad = grad_positive[:, None] * state["positive_softmax"]
        logits_grad = row_scale * exps + positive_grad
        anchor_grad = tf.matmul(logits_grad, contrast)
        contrast_grad = tf.matmul(logits_grad, block_anchors, transpose_a=True)
        return anchor_grad, contrast_grad

    if positive_term == "variant":
        output_names = ("loss",)
    else:
        output_names = ("log_denominator",) + (
            ("reference_gap",) if positive_term is None else ("positive", "count", "gap")
        )

    def outputs_of(state):
        return tuple(state[name] for name in output_names)

    def upstream(grads, reference):
        grads = list(grads) + [None] * (3 - len(grads))
        return [tf.zeros_like(reference) if grad is None else grad for grad in grads[:2]]

    row_indices = (anchor_samples, self_columns, reference_columns, bounds, probes)

    @tf.custom_gradient
    def dense_terms(anchors, contrast):
        state = forward_block(anchors, *row_indices)

        def grad(*grads):
            grad_denominator, grad_positive = upstream(grads, state[output_names[0]])
            return backward_block(state, anchors, grad_denominator, grad_positive)

        return outputs_of(state), grad

    if block_size is None:
        return dense_terms(anchors, contrast)

    num_rows = tf.shape(anchors)[0]
    num_blocks = (num_rows + block_size - 1) // block_size
    padding = num_blocks * block_size - num_rows

    def blocks_of(tensor):
        padded = tf.pad(tensor, [[0, padding]] + [[0, 0]] * (tensor.shape.rank - 1))
        return tf.reshape(padded, tf.concat([[num_blocks, block_size], tf.shape(tensor)[1:]], 0))

    index_blocks = [blocks_of(tensor) for tensor in row_indices]

    def block_indices(index):
        return [blocks[index] for blocks in index_blocks]

    @tf.custom_gradient
    def blocked_terms(anchors, contrast):
        anchor_blocks = blocks_of(anchors)

        def forward_step(index, arrays):
            state = forward_block(anchor_blocks[index], *block_indices(index))
            values = outputs_of(state)
            return index + 1, [
                array.write(index, value) for array, value in zip(arrays, values, strict=True)
            ]

        arrays = [tf.TensorArray(dtype, size=num_blocks) for _ in output_names]
        _, arrays = tf.while_loop(
            lambda index, _: index < num_blocks,
            forward_step,
            [tf.constant(0), arrays],
            parallel_iterations=1,
        )
        outputs = [tf.reshape(array.stack(), [-1])[:num_rows] for array in arrays]
        denominator_blocks = blocks_of(outputs[0])

        def grad(*grads):
            grad_denominator, grad_positive = upstream(grads, outputs[0])
            grad_denominator_blocks = blocks_of(grad_denominator)
            grad_positive_blocks = blocks_of(grad_positive)

            def backward_step(index, anchor_grads, contrast_grad):
                block_anchors = anchor_blocks[index]
                if positive_term is None:
                    block_self = index_blocks[1][index]
                    state = softmax_block(block_anchors, block_self, denominator_blocks[index])
                else:
                    state = forward_block(block_anchors, *block_indices(index))
                anchor_grad, block_contrast_grad = backward_block(
                    state,
                    block_anchors,
                    grad_denominator_blocks[index],
                    grad_positive_blocks[index],
                )
                return (
                    index + 1,
                    anchor_grads.write(index, anchor_grad),
                    contrast_grad + block_contrast_grad,
                )

            _, anchor_grads, contrast_grad = tf.while_loop(
                lambda index, *_: index < num_blocks,
                backward_step,
                [tf.constant(0), tf.TensorArray(dtype, size=num_blocks), tf.zeros_like(contrast)],
                parallel_iterations=1,
            )
            anchor_grad = tf.reshape(anchor_grads.stack(), [-1, tf.shape(anchors)[1]])
            return anchor_grad[:num_rows], contrast_grad

        return tuple(outputs), grad

    return blocked_terms(anchors, contrast)
