"""A label-aware memory bank: a FIFO queue of past embeddings and their labels.

Cross-batch memory (XBM, Wang et al., 2020) and the MoCo queue (He et al., 2020) keep
the embeddings of the last K samples as extra contrasts of the loss, so that every
anchor sees more negatives (and, with labels, more positives) than its batch holds.
`MemoryBank` stores them in non-trainable variables (saved with the model): each entry
is one past sample's `V` view embeddings `[V, D]` and its label, an integer or a
one-/multi-hot row of C classes (the layout is fixed when the bank is built, from the
shape of the labels).

Example:

>>> import numpy as np
>>> bank = MemoryBank(size=3)
>>> bank.build((None, 2, 4))
>>> bank.enqueue(np.ones((2, 2, 4), "float32"), np.array([7, 8]))
>>> bank.enqueue(np.zeros((2, 2, 4), "float32"), np.array([9, 10]))
>>> embeddings, labels = bank.contents()  # the last 3 samples, oldest first
>>> labels.numpy().tolist(), embeddings.shape
([8, 9, 10], TensorShape([3, 2, 4]))

Multi-hot labels `[B, C]`: build with their shape (or let the first `enqueue` build it).

>>> hot = MemoryBank(size=2)
>>> hot.enqueue(np.ones((3, 2, 4), "float32"), np.array([[1, 0, 1], [0, 1, 0], [1, 1, 0]]))
>>> hot.contents()[1].numpy().tolist()
[[0.0, 1.0, 0.0], [1.0, 1.0, 0.0]]
"""

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="supcon_tf")
class MemoryBank(keras.layers.Layer):
    """FIFO queue of the last `size` samples' embeddings `[V, D]` and their labels.

    `enqueue` writes a batch after the oldest entries are dropped; `contents` returns
    the stored entries oldest first. Inside a `tf.distribute` replica context with
    several replicas, `enqueue` all-gathers the batch of every replica (in replica
    order) first, so that every replica holds the same queue. The variables are
    non-trainable and saved with the model that owns the layer.

    The labels are integers `[size]` (int64; -1 for samples enqueued without labels)
    or, for one-/multi-hot labels `[B, C]` with C > 1, rows `[size, C]` (float32). The
    layout follows `labels_shape` at `build`; a bank that is not built yet is built
    by its first `enqueue`, from that batch's shapes.

    Args:
        size: number of samples kept (K > 0).
        **kwargs: `name`, ... of `keras.layers.Layer`.

    Build arguments:
        input_shape: the embeddings' shape `[B, V, D]`.
        labels_shape: the labels' shape: `None`, `[B]` or `[B, 1]` (integer labels),
            or `[B, C]` (one-/multi-hot, C > 1).
    """

    def __init__(self, size, **kwargs):
        super().__init__(**kwargs)
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ValueError(f"`size` must be a positive integer, got {size!r}.")
        self.size = size
        self.label_width = None  # C of one-/multi-hot labels; None: integer labels

    def build(self, input_shape, labels_shape=None):
        _, num_views, dim = input_shape
        if num_views is None or dim is None:
            raise ValueError(
                f"MemoryBank needs the views and the width of the embeddings, got shape "
                f"{input_shape}."
            )
        self.label_width = _label_width(labels_shape)

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
        if self.label_width is None:
            self.labels = state("labels", (self.size,), "int64")
        else:
            self.labels = state("labels", (self.size, self.label_width), "float32")
        self.count = state("count", (), "int32")
        self.position = state("position", (), "int32")

    @property
    def labels_shape(self):
        """The labels' shape the bank was built for: `(None,)` or `(None, C)`."""
        return (None,) if self.label_width is None else (None, self.label_width)

    def enqueue(self, embeddings, labels=None):
        """Appends a batch `[B, V, D]` (and its labels `[B]` or `[B, C]`), dropping the oldest."""
        if not self.built:
            self.build(embeddings.shape, None if labels is None else _shape_of(labels))
        embeddings = tf.cast(tf.stop_gradient(embeddings), "float32")
        labels = self._stored_labels(labels, tf.shape(embeddings)[0])
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

    def _stored_labels(self, labels, batch_size):
        """Labels in the bank's layout: int64 `[B]` (-1 if none) or float32 `[B, C]` (0 if none)."""
        if labels is None:
            if self.label_width is None:
                return tf.fill([batch_size], tf.constant(-1, tf.int64))
            return tf.zeros([batch_size, self.label_width], tf.float32)
        labels = tf.convert_to_tensor(labels)
        self.check_labels(labels.shape)
        if self.label_width is None:
            return tf.cast(tf.reshape(labels, [-1]), tf.int64)
        return tf.cast(labels, tf.float32)

    def check_labels(self, labels_shape):
        """Raises `ValueError` unless labels of `labels_shape` have the bank's layout."""
        if _label_width(labels_shape) != self.label_width:
            raise ValueError(
                f"MemoryBank {self.name!r} stores labels of shape {self.labels_shape} (set "
                f"when it was built); got labels of shape {tuple(labels_shape)}. Use labels "
                "of one layout: integers [B] or one-/multi-hot rows [B, C] of a fixed C."
            )

    def contents(self):
        """`(embeddings [n, V, D], labels [n] or [n, C])` of the n <= size stored samples,
        oldest first."""
        order = (self.position - self.count + tf.range(self.count)) % self.size
        return tf.gather(self.embeddings, order), tf.gather(self.labels, order)

    def get_config(self):
        config = super().get_config()
        config.update({"size": self.size})
        return config


def _shape_of(labels):
    return labels.shape if hasattr(labels, "shape") else tf.convert_to_tensor(labels).shape


def _label_width(labels_shape):
    """None for integer labels (`None`, `[B]`, `[B, 1]`), C for one-/multi-hot `[B, C]`."""
    if labels_shape is None:
        return None
    labels_shape = tuple(labels_shape)
    if len(labels_shape) == 1 or (len(labels_shape) == 2 and labels_shape[1] == 1):
        return None
    if len(labels_shape) == 2 and labels_shape[1] is not None:
        return int(labels_shape[1])
    raise ValueError(
        "A memory bank stores integer labels [batch] (or [batch, 1]) or one-/multi-hot "
        f"labels [batch, classes] with a known number of classes; got labels of shape "
        f"{labels_shape}."
    )
