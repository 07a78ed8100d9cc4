"""The blocked loss kernel's fast path when the anchors are the contrast set itself.

With `contrast_mode="all"` on one replica, the anchor rows are the contrast rows divided by
the temperature (`a_i = c_i / tau`), so the shifted exponentials

    E_ij = exp(a_i . c_j - s)        (one shift s for every row, E_ii = 0 unless self counts)

form a symmetric `[N, N]` matrix. `symmetric_terms` computes each entry once: row block I
takes the columns up to its own last row (`j < end(I)`), and the part left of its diagonal
block is used twice, by rows (row sums, products for rows of I) and by columns (column
sums, transposed products for the earlier rows). Per pair of views that is half a product
and half an exponential in the forward pass, and in the backward pass half a product (the
recomputed block) and two products of width 2D, about 3 products and one exponential of
the whole `N x N x D` problem in all (the row-block kernel does 4 products and 2
exponentials). The backward pass walks the blocks from the last: rows after block I are
final by then, so the running sum of products covers only the rows before it and shrinks.
The peak extra memory is one `[block, N]` block, as in the row-block kernel.

Gradients: with `g_i` the upstream gradient of row i's log-denominator `lse_i` and
`u_i = g_i exp(s - lse_i)` (the softmax is `u_i E_ij / g_i`),

    d/da_i = u_i sum_j E_ij c_j,        d/dc_j = sum_i E_ij u_i a_i = sum_i E_ji (u a)_i,

so both are row sums of `E @ [c, u a]`, formed from the blocks and their transposes.

The caller (`kernels._row_terms`) checks the preconditions: the anchors are `contrast /
tau` in the same order, the linear-positives loss (only the log-denominators are
quadratic), and one shift `s` near enough to every row's logits.

Example:

>>> import tensorflow as tf
>>> contrast = tf.math.l2_normalize(tf.random.stateless_normal([5, 3], [0, 1]), -1)
>>> anchors = contrast / 0.5
>>> log_denominator, _ = symmetric_terms(
...     anchors, contrast, 2.0, tf.range(5), include_self=False, block_size=2
... )
>>> logits = tf.matmul(anchors, contrast, transpose_b=True) - 1e9 * tf.eye(5)
>>> bool(tf.reduce_all(tf.abs(log_denominator - tf.reduce_logsumexp(logits, 1)) < 1e-5))
True
"""

import tensorflow as tf


def symmetric_terms(anchors, contrast, shift, reference_columns, include_self, block_size):
    """Per-row log-denominator and reference gap of `anchors = contrast / tau`.

    Args:
        anchors: `[N, D]` the contrast rows divided by the temperature.
        contrast: `[N, D]` contrast embeddings.
        shift: scalar upper bound of every logit, at most a few tens above each row's
            largest (no gradient).
        reference_columns: `[N]` one positive column per row (`reference_gap`).
        include_self: whether the self entries count (n-pairs) or are left out.
        block_size: rows per block (a Python int or a scalar tensor).

    Returns:
        `(log_denominator, reference_gap)`, both `[N]`, as `kernels._row_terms` returns
        them for linear positives; only `log_denominator` has a gradient.
    """
    dtype = anchors.dtype
    # Tensors of this graph (a `tf.cond` branch when called from one): the gradient
    # function may use them, not the caller's tensors they stand for.
    anchors, contrast = tf.identity(anchors), tf.identity(contrast)
    if isinstance(block_size, tf.Tensor):
        block_size = tf.identity(block_size)
    shift = tf.stop_gradient(tf.cast(shift, dtype))
    num_rows = tf.shape(anchors)[0]
    num_blocks = (num_rows + block_size - 1) // block_size
    # The shift enters the product as one more column: [a, -s] . [c, 1] = a . c - s.
    shifted_anchors = tf.concat([anchors, -tf.fill([num_rows, 1], shift)], axis=1)
    shifted_contrast = tf.concat([contrast, tf.ones([num_rows, 1], dtype)], axis=1)

    def block_exps(start, end):
        """`[end, end - start]`: E of the block's rows up to column `end`, transposed.

        The block is computed as columns (`contrast @ anchors^T`): a CPU matmul with a long
        first dimension runs on every core, and the products below then have the long side
        as their contraction or their rows (about twice the rate of the row orientation on
        a 2-core CPU at 16384 x 2 views). The contrast rows are a prefix (`[:end]`), which
        TensorFlow slices without a copy.
        """
        exps = tf.exp(
            tf.matmul(shifted_contrast[:end], shifted_anchors[start:end], transpose_b=True)
        )
        if include_self:
            return exps
        # The self entries are the diagonal of the trailing square (row start + t, column t).
        return tf.linalg.set_diag(exps, tf.zeros([end - start], dtype), k=-start)

    def bounds(index):
        start = index * block_size
        return start, tf.minimum(start + block_size, num_rows)

    def spread(start, end, own, transposed):
        """The block's sums for its rows (`own`) and for the earlier rows, as `[N, ...]`."""
        return tf.pad(
            tf.concat([transposed[:start], own], axis=0),
            [[0, num_rows - end]] + [[0, 0]] * (own.shape.rank - 1),
        )

    def loop(step, initial):
        _, total = tf.while_loop(
            lambda index, _: index < num_blocks,
            step,
            [tf.constant(0), initial],
            shape_invariants=[tf.TensorShape([]), tf.TensorShape([None])],
            parallel_iterations=1,
        )
        return total

    @tf.custom_gradient
    def terms(anchors, contrast):
        def forward_step(index, sums):
            start, end = bounds(index)
            exps = block_exps(start, end)
            own = tf.reduce_sum(exps, axis=0)
            return index + 1, sums + spread(start, end, own, tf.reduce_sum(exps, axis=1))

        sums = loop(forward_step, tf.zeros([num_rows], dtype))
        log_sums = tf.math.log(sums)
        log_denominator = shift + log_sums
        reference_logits = tf.reduce_sum(
            shifted_anchors * tf.gather(shifted_contrast, reference_columns), axis=1
        )
        # log-denominator minus the reference logit, both relative to the shift.
        reference_gap = tf.stop_gradient(log_sums - reference_logits)

        def grad(grad_denominator, grad_gap=None):
            del grad_gap  # the reference gap carries no gradient
            if grad_denominator is None:
                grad_denominator = tf.zeros_like(log_denominator)
            finite = tf.math.is_finite(log_sums)  # -inf: a row with no contrast at all
            scale = tf.where(finite, grad_denominator * tf.exp(-log_sums), tf.zeros_like(log_sums))
            factors = tf.concat([contrast, scale[:, None] * anchors], axis=1)

            # Blocks in reverse order: block I's products finish its own rows (the later
            # blocks have added theirs) and add to the rows before it, so the running sum
            # covers only rows [0, start(I)) and shrinks; finished rows go to an array.
            dim = tf.shape(anchors)[1]

            def backward_step(index, pending, finished):
                start, end = bounds(index)
                exps = block_exps(start, end)
                own = tf.matmul(exps, factors[:end], transpose_a=True)
                transposed = tf.matmul(exps, factors[start:end])
                finished = finished.write(index, own + pending[start:end])
                return index - 1, pending[:start] + transposed[:start], finished

            _, _, finished = tf.while_loop(
                lambda index, *_: index >= 0,
                backward_step,
                [
                    num_blocks - 1,
                    tf.zeros([num_rows, 2 * dim], dtype),
                    tf.TensorArray(dtype, size=num_blocks, infer_shape=False),
                ],
                shape_invariants=[
                    tf.TensorShape([]),
                    tf.TensorShape([None, anchors.shape[1] and 2 * anchors.shape[1]]),
                    tf.TensorShape(None),
                ],
                parallel_iterations=1,
            )
            products = finished.concat()
            return scale[:, None] * products[:, :dim], products[:, dim:]

        return (log_denominator, reference_gap), grad

    return terms(anchors, contrast)
