"""Gradient caching (Gao et al., 2021): a full-batch SupCon step at a chunk's memory cost.

The contrastive loss couples every sample of the batch, so the batch cannot simply be
split into accumulated micro-batches. Gradient caching splits the network instead:

1. draw the augmented views of the whole batch once (kept for both passes);
2. encode and project the views in chunks of `chunk_size` images without recording
   anything for back-propagation, and concatenate the embeddings `[B, V, D]`;
3. compute the loss on the full batch and its gradient with respect to the
   embeddings, `g = d loss / d embeddings` (the "gradient cache");
4. run each chunk again under a tape and back-propagate its slice of `g` with
   `tape.gradient(chunk_embeddings, weights, output_gradients=g_chunk)`; the sum over
   chunks is the gradient of the full-batch loss (chain rule), applied in one
   optimizer step.

With a momentum encoder (`SupConModel(momentum_encoder=True)`) the key network also
embeds the views in chunks, without recording, before pass 1; its embeddings go to the
memory bank.

Peak activation memory is that of one chunk (plus the `[B, V, D]` embeddings and the
`[B, V, H, W, C]` views); the cost is one extra forward pass per step.

Exactness: the random state of the encoder and head (the `SeedGenerator`s of dropout
and other random layers) and their statistics (BatchNorm moving averages) are
snapshotted before pass 2 and restored after pass 1, so pass 2 replays pass 1's random
draws chunk by chunk and the statistics are updated once per chunk. BatchNorm in
training mode normalises each chunk with the chunk's own statistics, in both passes,
so the step is the exact gradient of the loss of per-chunk-normalised embeddings.
Random ops that do not use a Keras `SeedGenerator` (for instance stateful
`tf.random.uniform` calls without a seed in a custom layer) cannot be replayed.

Mixed precision: the loss is scaled by the `LossScaleOptimizer` before the gradient
with respect to the embeddings is taken, so the cached gradient and every chunk's
gradient carry the scale; `apply_gradients` unscales them (and skips the step on
overflow) as in Keras' own training step. Under `tf.distribute`, the loss gathers the
embeddings of all replicas (`gather_across_replicas=True`) and its gradient sends each
replica the gradient of the global loss with respect to its own embeddings; the
optimizer sums the replicas' weight gradients as usual.

Reference: Gao, Zhang, Han and Callan, "Scaling Deep Contrastive Learning Batch Size
under Memory Limited Setup", RepL4NLP 2021.

Example:

>>> import numpy as np, keras
>>> from supcon_tf.models import build_encoder
>>> from supcon_tf.losses import SupervisedContrastiveLoss
>>> from supcon_tf.models import SupConModel
>>> model = SupConModel(build_encoder("small_cnn", (8, 8, 1)), gradient_cache_chunk_size=4)
>>> model.compile(optimizer="sgd", loss=SupervisedContrastiveLoss(temperature=0.1))
>>> images = np.random.default_rng(0).random((16, 8, 8, 1)).astype("float32")
>>> history = model.fit(images, np.arange(16) % 4, batch_size=16, epochs=1, verbose=0)
>>> len(history.history["loss"])
1
"""

import keras
import tensorflow as tf


def check_chunk_size(chunk_size):
    """Raises `ValueError` unless `chunk_size` is None or a positive integer (TF backend)."""
    if chunk_size is None:
        return
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(
            "`gradient_cache_chunk_size` must be a positive integer (images per chunk) or "
            f"None (no caching), got {chunk_size!r}."
        )
    if keras.backend.backend() != "tensorflow":
        raise ValueError(
            "`gradient_cache_chunk_size` needs the TensorFlow backend of Keras, got backend "
            f"{keras.backend.backend()!r}; leave it None on other backends."
        )


def train_step(model, data, chunk_size):
    """One gradient-cached training step of a `SupConModel` (its `train_step`).

    Args:
        model: a compiled `SupConModel`.
        data: the batch from `fit`: `x`, `(x, y)` or `(x, y, sample_weight)`.
        chunk_size: images per chunk.

    Returns:
        The metrics dictionary of `model.compute_metrics`, as Keras' `train_step`.
    """
    _check_no_synchronized_batch_norm(model)
    x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
    views = tf.stop_gradient(model.draw_views(x, training=True))
    # A key network (momentum encoder) embeds the same views, chunk by chunk, for the bank.
    keys = None
    if model.key_network is not None:
        keys = _embed_in_chunks(model, views, chunk_size, model.embed_keys)
    state = _replayed_state(model)
    snapshot = [tf.identity(variable.value) for variable in state]
    embeddings = tf.stop_gradient(
        _embed_in_chunks(
            model, views, chunk_size, lambda chunk: model.embed_views(chunk, training=True)
        )
    )
    for variable, value in zip(state, snapshot, strict=True):
        variable.assign(value)

    trainable = model.trainable_weights
    with tf.GradientTape() as tape:
        tape.watch(embeddings)
        loss = model.compute_loss(
            x=x,
            y=y,
            y_pred=embeddings,
            sample_weight=sample_weight,
            training=True,
            key_embeddings=keys,
        )
        track_loss(model, loss, views)
        scaled_loss = model.optimizer.scale_loss(loss)
    # The weights' direct gradients are those of regularisation losses (weight decay
    # written as kernel regularisers); the rest flows through the embeddings.
    embedding_gradient, *direct_gradients = tape.gradient(scaled_loss, [embeddings, *trainable])
    gradients = _backpropagate_in_chunks(
        model, views, embedding_gradient, chunk_size, trainable, direct_gradients
    )
    model.optimizer.apply_gradients(zip(gradients, trainable, strict=True))
    return model.compute_metrics(x, y, embeddings, sample_weight=sample_weight)


def _check_no_synchronized_batch_norm(model):
    """Synchronised BatchNorm would all-reduce inside the chunk loop, which TF refuses."""
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return
    for part in (model.encoder, model.projection_head):
        for layer in part._flatten_layers():
            if isinstance(layer, keras.layers.BatchNormalization) and layer.synchronized:
                raise ValueError(
                    "Gradient caching cannot synchronise BatchNorm across replicas: layer "
                    f"{layer.name!r} has `synchronized=True`, and its all-reduce would run "
                    "inside the chunk loop. Use per-replica statistics (sync_batchnorm=False; "
                    "each chunk is then normalised by its own statistics) or "
                    "gradient_cache_chunk_size=None."
                )


def _replayed_state(model):
    """Variables that pass 1 changes and pass 2 must start from: seeds and statistics."""
    state, seen = [], set()
    for layer in (model.encoder, model.projection_head):
        for variable in layer.non_trainable_variables:
            if id(variable) not in seen:
                seen.add(id(variable))
                state.append(variable)
    return state


def _cache_dtype(model):
    """float64 for float64 models, else float32 (the loss computes in float32 anyway)."""
    return tf.float64 if model.projection_head.compute_dtype == "float64" else tf.float32


def _chunk_bounds(views, chunk_size):
    """`(num_chunks, chunk_of)`: `chunk_of(i)` slices views `[V, B, ...]` to chunk i."""
    batch_size = tf.shape(views)[1]
    num_chunks = (batch_size + chunk_size - 1) // chunk_size

    def chunk_of(index):
        start = index * chunk_size
        return start, views[:, start : start + chunk_size]

    return num_chunks, chunk_of


def _embed_in_chunks(model, views, chunk_size, embed):
    """The embeddings `[B, V, D]` of all chunks by `embed(chunk views)`, one chunk at a time.

    Pass 1 (`embed`: the query network in training mode) and the key network's pass.
    """
    num_chunks, chunk_of = _chunk_bounds(views, chunk_size)
    dtype = _cache_dtype(model)

    def step(index, embeddings):
        _, chunk = chunk_of(index)
        chunk_embeddings = tf.cast(embed(chunk), dtype)
        return index + 1, embeddings.write(index, chunk_embeddings)

    # Chunks differ in size when the batch is not a multiple of the chunk size.
    _, num_views, dim = model.compute_output_shape((None, *views.shape[2:]))
    embeddings = tf.TensorArray(
        dtype, size=num_chunks, infer_shape=False, element_shape=(None, num_views, dim)
    )
    _, embeddings = tf.while_loop(
        lambda index, _: index < num_chunks,
        step,
        [tf.constant(0), embeddings],
        parallel_iterations=1,
    )
    return embeddings.concat()


def _backpropagate_in_chunks(model, views, embedding_gradient, chunk_size, trainable, initial):
    """Pass 2: sums each chunk's back-propagated slice of the cached gradient."""
    num_chunks, chunk_of = _chunk_bounds(views, chunk_size)
    dtype = _cache_dtype(model)

    def step(index, totals):
        start, chunk = chunk_of(index)
        with tf.GradientTape() as tape:
            chunk_embeddings = tf.cast(model.embed_views(chunk, training=True), dtype)
        chunk_gradient = embedding_gradient[start : start + tf.shape(chunk_embeddings)[0]]
        gradients = tape.gradient(chunk_embeddings, trainable, output_gradients=chunk_gradient)
        return index + 1, [
            total if gradient is None else total + tf.convert_to_tensor(gradient)
            for total, gradient in zip(totals, gradients, strict=True)
        ]

    totals = [
        tf.zeros(variable.shape, variable.dtype) if gradient is None else gradient
        for variable, gradient in zip(trainable, initial, strict=True)
    ]
    totals = [tf.convert_to_tensor(total) for total in totals]
    _, totals = tf.while_loop(
        lambda index, _: index < num_chunks,
        step,
        [tf.constant(0), totals],
        parallel_iterations=1,
    )
    return totals


def track_loss(model, loss, views):
    """Updates the `loss` metric as Keras' `train_step` does (per-replica loss unscaled)."""
    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    model._loss_tracker.update_state(
        loss * tf.cast(replicas, loss.dtype), sample_weight=tf.shape(views)[1]
    )
