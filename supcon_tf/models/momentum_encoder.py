"""The momentum (key) encoder of MoCo for the memory bank: a slowly moving copy of the network.

A memory bank (`supcon_tf.models.memory_bank`) stores embeddings computed at past steps, by
past weights. MoCo (He et al., 2020; v2: Chen et al., 2020) keeps the queued embeddings
consistent with each other by computing them with a *key* network, a copy of the
encoder and projection head whose weights follow the trained (*query*) weights as an
exponential moving average, after every optimizer step:

    key <- momentum * key + (1 - momentum) * query        (momentum = 0.999)

`MomentumEncoder` holds the copy: non-trainable weights, identical to the query's when
it is initialised, updated by `update` (under `tf.distribute` the same update on every
replica, so the copies stay mirrored). Non-trainable weights of the query (BatchNorm
moving statistics, frozen layers) are copied, not averaged: the key network runs with
batch statistics (BatchNorm in training mode, as MoCo), so its moving statistics are
never used by training; copying them overwrites the key pass's own updates, so the key
state after a step is a function of the query's history alone (deterministic, equal
on every replica), and a key network used for inference normalises like the query.

`SupConModel.train_step` runs the key network: the views are drawn once; the query
embeddings are trained on as usual and the key network's embeddings of the same views
fill the memory bank.

Reference: K. He, H. Fan, Y. Wu, S. Xie, R. Girshick, "Momentum Contrast for
Unsupervised Visual Representation Learning", CVPR 2020; X. Chen, H. Fan, R. Girshick,
K. He, "Improved Baselines with Momentum Contrastive Learning", arXiv:2003.04297.

Example:

>>> import numpy as np, keras
>>> encoder = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4)])
>>> head = keras.layers.Dense(2)
>>> head.build((None, 4))
>>> key = MomentumEncoder(encoder, head, momentum=0.5)
>>> key.build((None, 3))
>>> key.initialize(encoder, head)  # the key starts as the query
>>> _ = head.kernel.assign(head.kernel + 1.0)  # an optimizer step moves the query
>>> key.update(encoder, head)  # key <- 0.5 key + 0.5 query
>>> bool(np.allclose(key.projection_head.kernel, head.kernel - 0.5))
True
>>> len(key.trainable_weights), len(key.non_trainable_weights)
(0, 4)
"""

import keras
import tensorflow as tf

from supcon_tf.errors import UsageError
from supcon_tf.models.gradient_cache import FullBatchGradients, track_loss

__all__ = [
    "MomentumEncoder",
    "check_momentum",
    "check_momentum_encoder_memory",
    "track_loss",  # kept at this path for code that imported it here
    "train_step",
]


def check_momentum(momentum):
    """Raises `ValueError` unless `momentum` is a number in [0, 1)."""
    if isinstance(momentum, bool) or not isinstance(momentum, (int, float)):
        raise ValueError(
            f"`momentum` of the key encoder must be a number in [0, 1), got {momentum!r}."
        )
    if not 0 <= momentum < 1:
        raise ValueError(
            "`momentum` of the key encoder must be in [0, 1) (0: the key is the query after "
            f"every step; MoCo uses 0.999), got {momentum!r}."
        )


def check_momentum_encoder_memory(momentum_encoder, memory_size):
    """The one rule tying the two options: a momentum encoder needs a memory bank.

    The key network only computes the embeddings the bank stores, so
    `momentum_encoder=True` with `memory_size=0` would train nothing different. The model's
    constructor calls it; a config that takes both options calls it too.

    >>> check_momentum_encoder_memory(True, 64)
    >>> check_momentum_encoder_memory(True, 0)
    Traceback (most recent call last):
    ...
    supcon_tf.errors.UsageError: `momentum_encoder=True` needs a memory bank: the key network only computes the embeddings the bank stores; got memory_size=0. Set `memory_size` > 0, or momentum_encoder=False.
    """
    if momentum_encoder and not memory_size:
        raise UsageError(
            "`momentum_encoder=True` needs a memory bank: the key network only computes "
            f"the embeddings the bank stores; got memory_size={memory_size!r}. Set "
            "`memory_size` > 0, or momentum_encoder=False."
        )


@keras.saving.register_keras_serializable(package="supcon_tf")
class MomentumEncoder(keras.layers.Layer):
    """A key copy of an encoder and projection head, moved towards them after each step.

    The copies are made from the layers' configs (fresh variables; `initialize` copies
    the query's values in). Their weights are non-trainable, but their layers stay
    trainable, so that `training=True` runs BatchNorm on batch statistics.

    Args:
        encoder: the query encoder (a `keras.Model`, serialisable).
        projection_head: the query projection head (a serialisable layer).
        momentum: `m` of `key <- m key + (1 - m) query`, in [0, 1).
        **kwargs: `name`, ... of `keras.layers.Layer`.

    Call arguments:
        images: a flat batch of views `[N, H, W, C]`.
        training: `True` (the default, as MoCo's key pass) for batch statistics.

    Returns the key embeddings `[N, D]`, cut from the gradient.
    """

    def __init__(self, encoder, projection_head, momentum=0.999, **kwargs):
        super().__init__(**kwargs)
        check_momentum(momentum)
        self.encoder = _copy(encoder)
        self.projection_head = _copy(projection_head)
        self.momentum = float(momentum)

    def build(self, input_shape):
        if not self.encoder.built:
            self.encoder.build(input_shape)
        if not self.projection_head.built:
            self.projection_head.build(self.encoder.compute_output_shape(input_shape))
        for variable in self.weights:
            variable.trainable = False

    def call(self, images, training=True):
        features = self.encoder(images, training=training)
        return tf.stop_gradient(self.projection_head(features, training=training))

    def compute_output_shape(self, input_shape):
        feature_shape = self.encoder.compute_output_shape(input_shape)
        return self.projection_head.compute_output_shape(feature_shape)

    def initialize(self, encoder, projection_head):
        """Copies every weight of the query `encoder` and `projection_head` into the key."""
        for key, query in self._pairs(encoder, projection_head):
            key.assign(query)

    def update(self, encoder, projection_head):
        """`key <- m key + (1 - m) query` for the query's trainable weights; copies the others.

        In a replica context the update runs once per replica, on its own copies of the
        variables (`strategy.extended.update`), like an optimizer step.
        """
        pairs = [
            (key.value, query.value, query.trainable)
            for key, query in self._pairs(encoder, projection_head)
        ]
        momentum = self.momentum

        def average(key, query):
            return key.assign(momentum * key + (1.0 - momentum) * query)

        def copy(key, query):
            return key.assign(query)

        def apply(strategy):
            for key, query, trainable in pairs:
                strategy.extended.update(
                    key, average if trainable else copy, args=(query,), group=False
                )

        context = tf.distribute.get_replica_context()
        if context is None:  # cross-replica context
            apply(tf.distribute.get_strategy())
        else:
            context.merge_call(apply)

    def _pairs(self, encoder, projection_head):
        """`(key variable, query variable)` pairs, in the parts' weight order."""
        pairs = []
        for key_part, query_part in (
            (self.encoder, encoder),
            (self.projection_head, projection_head),
        ):
            key_weights, query_weights = key_part.weights, query_part.weights
            shapes = [tuple(weight.shape) for weight in key_weights]
            if shapes != [tuple(weight.shape) for weight in query_weights]:
                raise ValueError(
                    f"The key copy of {query_part.name!r} does not match it: weight shapes "
                    f"{shapes} against {[tuple(w.shape) for w in query_weights]}. Build the "
                    "query and the key network on the same input shape."
                )
            pairs.extend(zip(key_weights, query_weights, strict=True))
        return pairs

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "encoder": keras.saving.serialize_keras_object(self.encoder),
                "projection_head": keras.saving.serialize_keras_object(self.projection_head),
                "momentum": self.momentum,
            }
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for key in ("encoder", "projection_head"):
            config[key] = keras.saving.deserialize_keras_object(config[key])
        return cls(**config)


def _copy(layer):
    """A new layer of `layer`'s config (built if `layer` was), with its own variables."""
    if not isinstance(layer, keras.layers.Layer):
        raise ValueError(
            f"The key encoder copies Keras layers; got {type(layer).__name__}: {layer!r}."
        )
    return keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))


def train_step(model, data):
    """Deprecated: one step of a `SupConModel` with a key network, as its `train_step` runs.

    `SupConModel(momentum_encoder=True)` runs this step itself (views drawn once, the key
    network's embeddings of them to the memory bank, the query's under a tape); kept for
    code that called it. The momentum update follows in `SupConModel.train_step`.
    """
    return model.contrastive_train_step(data, FullBatchGradients())
