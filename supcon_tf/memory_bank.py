"""A label-aware memory bank: a FIFO queue of past embeddings and their labels.

Cross-batch memory (XBM, Wang et al., 2020) and the MoCo queue (He et al., 2020) keep
the embeddings of the last K samples as extra contrasts of the loss, so that every
anchor sees more negatives (and, with labels, more positives) than its batch holds.
`MemoryBank` stores them in non-trainable variables (saved with the model): each entry
is one past sample's `V` view embeddings `[V, D]` and its integer label.

Example:

>>> import numpy as np
>>> bank = MemoryBank(size=3)
>>> bank.build((None, 2, 4))
>>> bank.enqueue(np.ones((2, 2, 4), "float32"), np.array([7, 8]))
>>> bank.enqueue(np.zeros((2, 2, 4), "float32"), np.array([9, 10]))
>>> embeddings, labels = bank.contents()  # the last 3 samples, oldest first
>>> labels.numpy().tolist(), embeddings.shape
([8, 9, 10], TensorShape([3, 2, 4]))
"""

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="supcon_tf")
class MemoryBank(keras.layers.Layer):
    """FIFO queue of the last `size` samples' embeddings `[V, D]` and integer labels.

    `enqueue` writes a batch after the oldest entries are dropped; `contents` returns
    the stored entries oldest first. Inside a `tf.distribute` replica context with
    several replicas, `enqueue` all-gathers the batch of every replica (in replica
    order) first, so that every replica holds the same queue. The variables are
    non-trainable and saved with the model that owns the layer.

    Args:
        size: number of samples kept (K > 0).
        **kwargs: `name`, ... of `keras.layers.Layer`.

    Call arguments (`build` input shape): the embeddings' shape `[B, V, D]`.
    """

    def __init__(self, size, **kwargs):
        super().__init__(**kwargs)
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ValueError(f"`size` must be a positive integer, got {size!r}.")
        self.size = size

    def build(self, input_shape):
        _, num_views, dim = input_shape
        if num_views is None or dim is None:
            raise ValueError(
                f"MemoryBank needs the views and the width of the embeddings, got shape "
                f"{input_shape}."
            )

        def state(name, shape, dtype):
            # Every replica computes the same update: mirror the first replica's value.
            return self.add_weight(
                name=name,
                shape=shape,
                dtype=dtype,
                initializer="zeros",
                trainable=False,
                aggregation="only_first_replica",
            )

        self.embeddings = state("embeddings", (self.size, num_views, dim), "float32")
        self.labels = state("labels", (self.size,), "int64")
        self.count = state("count", (), "int32")
        self.position = state("position", (), "int32")

    def enqueue(self, embeddings, labels=None):
        """Appends a batch `[B, V, D]` (and integer labels `[B]`), dropping the oldest."""
        embeddings = tf.cast(tf.stop_gradient(embeddings), "float32")
        if labels is None:
            labels = tf.fill(tf.shape(embeddings)[:1], tf.constant(-1, tf.int64))
        labels = tf.cast(tf.reshape(labels, [-1]), tf.int64)
        context = tf.distribute.get_replica_context()
        if context is not None and context.num_replicas_in_sync > 1:
            embeddings = context.all_gather(embeddings, axis=0)
            labels = context.all_gather(labels, axis=0)
        # A batch larger than the queue: only its last `size` samples stay.
        embeddings, labels = embeddings[-self.size :], labels[-self.size :]
        count = tf.shape(embeddings)[0]
        slots = (self.position + tf.range(count)) % self.size
        self.embeddings.assign(
            tf.tensor_scatter_nd_update(self.embeddings, slots[:, None], embeddings)
        )
        self.labels.assign(tf.tensor_scatter_nd_update(self.labels, slots[:, None], labels))
        self.position.assign((self.position + count) % self.size)
        self.count.assign(tf.minimum(self.count + count, self.size))

    def contents(self):
        """`(embeddings [n, V, D], labels [n])` of the n <= size stored samples, oldest first."""
        order = (self.position - self.count + tf.range(self.count)) % self.size
        return tf.gather(self.embeddings, order), tf.gather(self.labels, order)

    def get_config(self):
        config = super().get_config()
        config.update({"size": self.size})
        return config
