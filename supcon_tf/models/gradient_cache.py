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


class FullBatchGradients:
    """The plain way to a step's gradients: the whole batch under one tape.

    The interface the model's training step uses (see `GradientCache`):
    `embed_without_gradient(views, embed)` and `gradients(views, embed, scaled_loss_of,
    weights)`, where `embed` maps views `[V, B, H, W, C]` to embeddings `[B, V, D]` and
    `scaled_loss_of` maps the embeddings to the (loss-scaled) loss of the batch.
    """

    def embed_without_gradient(self, views, embed):
        """`embed(views)`: the key network's embeddings of the batch."""
        return embed(views)

    def gradients(self, views, embed, scaled_loss_of, weights):
        """`(embeddings, gradients of the scaled loss with respect to `weights`)`."""
        with tf.GradientTape() as tape:
            embeddings = embed(views)
            scaled_loss = scaled_loss_of(embeddings)
        return embeddings, tape.gradient(scaled_loss, weights)


class GradientCache:
    """The gradient-cached way to a step's gradients: the batch's network in chunks.

    Same interface as `FullBatchGradients`, same gradients (see the module docstring),
    at the activation memory of one chunk of `chunk_size` images.

    Args:
        chunk_size: images per chunk, a positive integer.
        encoder, projection_head: the network that `embed` runs: their random state
            and statistics are replayed in pass 2, their output shape sizes the cache.
    """

    def __init__(self, chunk_size, encoder, projection_head):
        check_chunk_size(chunk_size)
        self.chunk_size = chunk_size
        self.parts = (encoder, projection_head)

    def embed_without_gradient(self, views, embed):
        """`embed(views)` chunk by chunk, nothing recorded (the key network's pass)."""
        return self._embed_in_chunks(views, embed)

    def gradients(self, views, embed, scaled_loss_of, weights):
        """Passes 1-4 of the module docstring: `(embeddings, summed chunk gradients)`."""
        _check_no_synchronized_batch_norm(self.parts)
        state = _replayed_state(self.parts)
        snapshot = [tf.identity(variable.value) for variable in state]
        embeddings = tf.stop_gradient(self._embed_in_chunks(views, embed))
        for variable, value in zip(state, snapshot, strict=True):
            variable.assign(value)
        with tf.GradientTape() as tape:
            tape.watch(embeddings)
            scaled_loss = scaled_loss_of(embeddings)
        # The weights' direct gradients are those of regularisation losses (weight decay
        # written as kernel regularisers); the rest flows through the embeddings.
        embedding_gradient, *direct_gradients = tape.gradient(scaled_loss, [embeddings, *weights])
        gradients = self._backpropagate_in_chunks(
            views, embed, embedding_gradient, weights, direct_gradients
        )
        return embeddings, gradients

    def _cache_dtype(self):
        """float64 for float64 models, else float32 (the loss computes in float32 anyway)."""
        return tf.float64 if self.parts[1].compute_dtype == "float64" else tf.float32

    def _chunks(self, views):
        """`(num_chunks, chunk_of)`: `chunk_of(i)` is `(start, views [V, b, ...] of chunk i)`."""
        chunk_size = self.chunk_size
        num_chunks = (tf.shape(views)[1] + chunk_size - 1) // chunk_size

        def chunk_of(index):
            start = index * chunk_size
            return start, views[:, start : start + chunk_size]

        return num_chunks, chunk_of

    def _embed_in_chunks(self, views, embed):
        """The embeddings `[B, V, D]` of all chunks by `embed(chunk views)`, one at a time."""
        num_chunks, chunk_of = self._chunks(views)
        dtype = self._cache_dtype()

        def step(index, embeddings):
            _, chunk = chunk_of(index)
            return index + 1, embeddings.write(index, tf.cast(embed(chunk), dtype))

        # Chunks differ in size when the batch is not a multiple of the chunk size.
        encoder, projection_head = self.parts
        features = encoder.compute_output_shape((None, *views.shape[2:]))
        dim = projection_head.compute_output_shape(features)[-1]
        embeddings = tf.TensorArray(
            dtype, size=num_chunks, infer_shape=False, element_shape=(None, views.shape[0], dim)
        )
        _, embeddings = tf.while_loop(
            lambda index, _: index < num_chunks,
            step,
            [tf.constant(0), embeddings],
            parallel_iterations=1,
        )
        return embeddings.concat()

    def _backpropagate_in_chunks(self, views, embed, embedding_gradient, weights, initial):
        """Pass 2: sums each chunk's back-propagated slice of the cached gradient."""
        num_chunks, chunk_of = self._chunks(views)
        dtype = self._cache_dtype()

        def step(index, totals):
            start, chunk = chunk_of(index)
            with tf.GradientTape() as tape:
                chunk_embeddings = tf.cast(embed(chunk), dtype)
            chunk_gradient = embedding_gradient[start : start + tf.shape(chunk_embeddings)[0]]
            gradients = tape.gradient(chunk_embeddings, weights, output_gradients=chunk_gradient)
            return index + 1, [
                total if gradient is None else total + tf.convert_to_tensor(gradient)
                for total, gradient in zip(totals, gradients, strict=True)
            ]

        totals = [
            tf.zeros(variable.shape, variable.dtype) if gradient is None else gradient
            for variable, gradient in zip(weights, initial, strict=True)
        ]
        totals = [tf.convert_to_tensor(total) for total in totals]
        _, totals = tf.while_loop(
            lambda index, _: index < num_chunks,
            step,
            [tf.constant(0), totals],
            parallel_iterations=1,
        )
        return totals


def train_step(model, data, chunk_size):
    """Deprecated: one gradient-cached step of `model`; set `gradient_cache_chunk_size`.

    `SupConModel(gradient_cache_chunk_size=...)` runs this step itself; this function is
    kept for code that called it: it runs the model's step with a `GradientCache`.
    """
    cache = GradientCache(chunk_size, model.encoder, model.projection_head)
    return model.contrastive_train_step(data, cache)


def _check_no_synchronized_batch_norm(parts):
    """Synchronised BatchNorm would all-reduce inside the chunk loop, which TF refuses."""
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return
    for part in parts:
        for layer in part._flatten_layers():
            if isinstance(layer, keras.layers.BatchNormalization) and layer.synchronized:
                raise ValueError(
                    "Gradient caching cannot synchronise BatchNorm across replicas: layer "
                    f"{layer.name!r} has `synchronized=True`, and its all-reduce would run "
                    "inside the chunk loop. Use per-replica statistics (sync_batchnorm=False; "
                    "each chunk is then normalised by its own statistics) or "
                    "gradient_cache_chunk_size=None."
                )


def _replayed_state(parts):
    """Variables that pass 1 changes and pass 2 must start from: seeds and statistics."""
    state, seen = [], set()
    for layer in parts:
        for variable in layer.non_trainable_variables:
            if id(variable) not in seen:
                seen.add(id(variable))
                state.append(variable)
    return state


def track_loss(model, loss, views):
    """Deprecated: updates `model`'s `loss` metric for a step on `views` (`[V, B, ...]`)."""
    model.track_loss(loss, tf.shape(views)[1])
