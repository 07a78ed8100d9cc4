"""The SupCon pretraining model and the two classifiers built on an encoder.

The two-phase workflow of Khosla et al. (2020):

1. `SupConModel(encoder)`: draws `num_views` augmented views of each image, encodes
   and projects them, and outputs `[B, V, D]` for `SupervisedContrastiveLoss`.
   `fit(x, y)` is supervised pretraining; `fit(x)` without labels is SimCLR.
2. `build_linear_classifier(encoder, num_classes)`: a linear (or small MLP) head on
   the frozen encoder, run in inference mode.

`build_cross_entropy_classifier` is the baseline: the same encoder architecture
trained end to end with cross-entropy. `HybridSupConModel` is the one-stage
alternative: a `SupConModel` and a linear head trained together on
`hybrid_weight x SupCon + cross-entropy`.

Example:

>>> import numpy as np, keras
>>> from supcon_tf.models import build_encoder, build_linear_classifier
>>> from supcon_tf.losses import SupervisedContrastiveLoss
>>> encoder = build_encoder("small_cnn", (8, 8, 1), width_multiplier=0.25)
>>> model = SupConModel(encoder, augmenter=keras.layers.RandomTranslation(0.1, 0.1, seed=0))
>>> model.compile(optimizer="adam", loss=SupervisedContrastiveLoss(temperature=0.1))
>>> images = np.random.default_rng(0).random((16, 8, 8, 1)).astype("float32")
>>> labels = np.arange(16) % 4
>>> history = model.fit(images, labels, batch_size=8, epochs=1, verbose=0)
>>> tuple(model(images[:2]).shape)
(2, 2, 128)
>>> classifier = build_linear_classifier(encoder, num_classes=4)
>>> tuple(classifier(images[:2]).shape)
(2, 4)
"""

import keras
import tensorflow as tf
from keras import ops

from supcon_tf import checks
from supcon_tf.errors import UsageError
from supcon_tf.losses.supcon import SupervisedContrastiveLoss
from supcon_tf.models.gradient_cache import FullBatchGradients, GradientCache
from supcon_tf.models.layers import ProjectionHead
from supcon_tf.models.memory_bank import MemoryBank
from supcon_tf.models.momentum_encoder import (
    MomentumEncoder,
    check_momentum,
    check_momentum_encoder_memory,
)


@keras.saving.register_keras_serializable(package="supcon_tf")
class SupConModel(keras.Model):
    """Encoder + projection head that draws its own augmented views.

    For a batch of images `[B, H, W, C]` the model draws `num_views` views with the
    augmenter (in training mode, so each view is a fresh random draw), encodes all
    `V * B` views in one pass (BatchNorm statistics are shared across views, as in the
    reference implementation), projects them and returns `[B, V, D]`.

    `compile(optimizer, loss=SupervisedContrastiveLoss()); fit(x, y)` is the SupCon
    pretraining phase; `fit(x)` with no labels passes `y=None` to the loss (SimCLR).
    The trained encoder is `model.encoder`.

    Args:
        encoder: a `keras.Model` from images to features `[B, F]` (see
            `supcon_tf.models.build_encoder`).
        projection_head: a layer from features to embeddings; default
            `ProjectionHead()` (hidden width F, 128 outputs).
        augmenter: any Keras layer (or `keras.layers.Pipeline` / `keras.Sequential`)
            applied with `training=True` during training; `None` means no
            augmentation (every view is the image itself).
        num_views: views per image (2 in the paper).
        gradient_cache_chunk_size: `None` (default) trains on the whole batch in one
            pass. An integer `c` turns on gradient caching (Gao et al., 2021): the
            training step encodes and projects the batch in chunks of `c` images (all
            their views) without recording, computes the loss and its gradient with
            respect to the embeddings on the full batch, then runs each chunk again
            under a tape and back-propagates its slice of that gradient. Activation
            memory is that of a `c`-image batch; the loss and its gradient are those
            of the full batch; a step costs about one extra forward pass. Augmented
            views are drawn once per step and random layers (dropout) replay the
            same draws in both passes, so the step is exact. BatchNorm layers in
            training mode normalise each chunk with that chunk's own statistics
            (as unsynchronised data parallelism does per device) and update their
            moving statistics once per chunk. See `docs/large-batches.md`.
            TensorFlow backend only.
        memory_size: 0 (default) or the number K of past samples kept in a
            label-aware memory bank (XBM / the MoCo queue, `supcon_tf.models.memory_bank`):
            after each training step the step's projected embeddings (all views) and
            labels are enqueued, and the loss of the next steps contrasts each anchor
            also against the K stored samples (extra contrasts, never anchors, no
            gradient; positives among them by label: the same integer label, or a
            shared class of one-/multi-hot labels). The bank's label layout follows
            the first labels it sees (or `build_memory_bank(labels_shape)`). Under
            `tf.distribute` the queue receives the all-gathered global batch. Needs a
            `SupervisedContrastiveLoss`.
        momentum_encoder: `False` (default): the bank stores the model's own
            embeddings. `True` (needs `memory_size > 0`): MoCo's key network
            (`supcon_tf.models.momentum_encoder`), a copy of the encoder and projection head
            with non-trainable weights, identical at `build`, moved after every
            optimizer step by `key <- momentum * key + (1 - momentum) * query`
            (non-trainable weights such as BatchNorm moving statistics are copied);
            it embeds the step's views (BatchNorm on batch statistics, no gradient)
            and its embeddings are what the bank stores. The step's own contrasts
            stay the query embeddings.
        momentum: the key network's momentum `m`, in [0, 1) (MoCo: 0.999).
        **kwargs: `name`, `dtype`, ... of `keras.Model`.

    Call arguments:
        inputs: images `[B, H, W, C]`, or views already drawn by the input pipeline
            `[B, num_views, H, W, C]` (e.g. `supcon_tf.data.make_training_stream`'s
            random-resized crops), to which the augmenter is applied view by view.
        training: whether to augment and use batch statistics.

    Example:

    >>> import numpy as np
    >>> from supcon_tf.models import build_encoder
    >>> model = SupConModel(build_encoder("small_cnn", (8, 8, 1)), num_views=3)
    >>> tuple(model(np.zeros((4, 8, 8, 1), dtype="float32")).shape)
    (4, 3, 128)

    A memory bank filled by a momentum (key) encoder, MoCo style:

    >>> moco = SupConModel(
    ...     build_encoder("small_cnn", (8, 8, 1)), memory_size=64, momentum_encoder=True
    ... )
    >>> moco.build((None, 8, 8, 1))
    >>> len(moco.key_network.weights) == len(moco.encoder.weights + moco.projection_head.weights)
    True
    >>> moco.key_network.trainable_weights  # moved by the momentum update, not the optimizer
    []
    """

    def __init__(
        self,
        encoder,
        projection_head=None,
        augmenter=None,
        num_views=2,
        gradient_cache_chunk_size=None,
        memory_size=0,
        momentum_encoder=False,
        momentum=0.999,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not isinstance(encoder, keras.Model):
            raise ValueError(
                f"`encoder` must be a keras.Model, got {type(encoder).__name__}. "
                "Use supcon_tf.models.build_encoder(name, input_shape) to build one."
            )
        if isinstance(num_views, bool) or not isinstance(num_views, int) or num_views < 1:
            raise UsageError(f"`num_views` must be a positive integer, got {num_views!r}.")
        if augmenter is not None and not callable(augmenter):
            raise ValueError(f"`augmenter` must be a Keras layer or None, got {augmenter!r}.")
        if isinstance(memory_size, bool) or not isinstance(memory_size, int) or memory_size < 0:
            raise ValueError(
                f"`memory_size` must be a non-negative integer (0: no memory bank), got "
                f"{memory_size!r}."
            )
        checks.boolean("momentum_encoder", momentum_encoder)
        check_momentum(momentum)
        check_momentum_encoder_memory(momentum_encoder, memory_size)
        self.encoder = encoder
        self.projection_head = projection_head if projection_head is not None else ProjectionHead()
        self.augmenter = augmenter
        self.num_views = num_views
        self.gradient_cache_chunk_size = gradient_cache_chunk_size
        self.memory_size = memory_size
        self.memory_bank = MemoryBank(memory_size, name="memory_bank") if memory_size else None
        self.momentum_encoder = momentum_encoder
        self.momentum = float(momentum)
        self.key_network = None
        if momentum_encoder:
            self.key_network = MomentumEncoder(
                encoder, self.projection_head, momentum, name="key_network"
            )
        # How a step's gradients are computed when Keras' own step does not do: in chunks,
        # or with the key network's pass beside the query's.
        self.gradient_strategy = None
        if gradient_cache_chunk_size is not None:
            self.gradient_strategy = GradientCache(
                gradient_cache_chunk_size, self.encoder, self.projection_head
            )
        elif momentum_encoder:
            self.gradient_strategy = FullBatchGradients()

    @staticmethod
    def _image_shape(input_shape):
        """`[B, H, W, C]` of one view, for inputs with or without a view axis."""
        input_shape = tuple(input_shape)
        return (input_shape[0], *input_shape[2:]) if len(input_shape) == 5 else input_shape

    def build(self, input_shape):
        input_shape = self._image_shape(input_shape)
        if not self.encoder.built:
            self.encoder.build(input_shape)
        feature_shape = self.encoder.compute_output_shape(input_shape)
        if not self.projection_head.built:
            self.projection_head.build(feature_shape)
        if self.key_network is not None and not self.key_network.built:
            self.key_network.build(input_shape)
            self.key_network.initialize(self.encoder, self.projection_head)
        self.built = True

    def build_memory_bank(self, labels_shape):
        """Builds the memory bank for labels of `labels_shape` (after `build`).

        `labels_shape`: `[B]` (integer labels; also for SimCLR) or `[B, C]` (one-/multi-
        hot). Without this call the first training step builds the bank from its
        labels; call it before restoring a checkpoint that holds the bank's variables.
        Does nothing without a bank or when the bank is built.
        """
        if self.memory_bank is None or self.memory_bank.built:
            return
        if not self.built:
            raise ValueError("Build the model (call it on a batch) before its memory bank.")
        output_shape = self.compute_output_shape(self.get_build_config()["input_shape"])
        self.memory_bank.build(output_shape, labels_shape)

    def get_build_config(self):
        """The input shape, and the memory bank's label layout (`None`: not built yet)."""
        config = super().get_build_config()
        if config is None:
            return None
        bank = self.memory_bank
        config["labels_shape"] = bank.labels_shape if bank is not None and bank.built else None
        return config

    def build_from_config(self, config):
        # Without "labels_shape" the model was saved when banks held integer labels only.
        self.build(config["input_shape"])
        labels_shape = config.get("labels_shape", (None,))
        if labels_shape is not None:
            self.build_memory_bank(labels_shape)

    def call(self, inputs, training=False):
        # An explicit `False` outside training: some augmenters (`keras.layers.Pipeline`)
        # default to augmenting when `training` is left unset.
        training = bool(training)
        return self.embed_views(self.draw_views(inputs, training), training)

    def draw_views(self, inputs, training=False):
        """Returns the augmented views of a batch, stacked view-major: `[V, B, H, W, C]`.

        `inputs` are images `[B, H, W, C]` (each view drawn from the same image) or views
        already drawn by the input pipeline, `[B, V, H, W, C]` (each then augmented).
        """
        if len(inputs.shape) == 5:
            if inputs.shape[1] != self.num_views:
                raise ValueError(
                    f"Inputs with a view axis must have num_views={self.num_views} views, "
                    f"got shape {tuple(inputs.shape)}."
                )
            views = [inputs[:, view] for view in range(self.num_views)]
        else:
            views = [inputs] * self.num_views
        if self.augmenter is not None:
            views = [self.augmenter(view, training=training) for view in views]
        return ops.stack(views, axis=0)

    def embed_views(self, views, training=False):
        """Encodes and projects stacked views `[V, B, H, W, C]` into `[B, V, D]`."""
        features = self.encoder(self._flat_views(views), training=training)
        return self._by_sample(self.projection_head(features, training=training))

    def embed_keys(self, views):
        """The key network's embeddings `[B, V, D]` of views `[V, B, H, W, C]`.

        BatchNorm on batch statistics (training mode, as MoCo's key pass), no gradient.
        """
        return self._by_sample(self.key_network(self._flat_views(views), training=True))

    @staticmethod
    def _flat_views(views):
        """Views `[V, B, H, W, C]` as one batch of images `[V * B, H, W, C]`."""
        return ops.reshape(views, (-1, *views.shape[2:]))

    def _by_sample(self, projections):
        """View-major `[V * B, D]` -> `[B, V, D]`."""
        projections = ops.reshape(projections, (self.num_views, -1, projections.shape[-1]))
        return ops.transpose(projections, (1, 0, 2))

    def train_step(self, data):
        """Keras' training step, or the contrastive one when gradients are cached or a key
        network runs; then the key network's momentum update."""
        if self.gradient_strategy is None:
            logs = super().train_step(data)
        else:
            logs = self.contrastive_train_step(data, self.gradient_strategy)
        if self.key_network is not None:
            self.update_key_network()
        return logs

    def contrastive_train_step(self, data, gradients):
        """One optimizer step with the gradients computed by the strategy `gradients`.

        Draws the views once; the key network (if any) embeds them without gradient for
        the memory bank; `gradients` (`FullBatchGradients` or `GradientCache`) gives the
        query embeddings and the gradients of the scaled loss, which the optimizer applies.
        Returns the metrics dictionary, as Keras' `train_step`.
        """
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        if not self.built:  # the weights to differentiate must exist before the passes
            self.build(x.shape)
        views = ops.stop_gradient(self.draw_views(x, training=True))
        keys = None
        if self.key_network is not None:
            keys = gradients.embed_without_gradient(views, self.embed_keys)

        def scaled_loss_of(embeddings):
            loss = self.compute_loss(
                x=x,
                y=y,
                y_pred=embeddings,
                sample_weight=sample_weight,
                training=True,
                key_embeddings=keys,
            )
            self.track_loss(loss, ops.shape(views)[1])
            return self.optimizer.scale_loss(loss)

        weights = self.trainable_weights
        embeddings, weight_gradients = gradients.gradients(
            views, lambda chunk: self.embed_views(chunk, training=True), scaled_loss_of, weights
        )
        self.optimizer.apply_gradients(zip(weight_gradients, weights, strict=True))
        return self.compute_metrics(x, y, embeddings, sample_weight=sample_weight)

    def track_loss(self, loss, batch_size):
        """Updates the `loss` metric as Keras' `train_step` does (per-replica loss unscaled)."""
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        self._loss_tracker.update_state(
            loss * ops.cast(replicas, loss.dtype), sample_weight=batch_size
        )

    def update_key_network(self):
        """`key <- momentum * key + (1 - momentum) * query`, after an optimizer step."""
        self.key_network.update(self.encoder, self.projection_head)

    def compute_output_shape(self, input_shape):
        input_shape = self._image_shape(input_shape)
        feature_shape = self.encoder.compute_output_shape(input_shape)
        output_shape = self.projection_head.compute_output_shape(feature_shape)
        return (input_shape[0], self.num_views, output_shape[-1])

    def compute_loss(
        self,
        x=None,
        y=None,
        y_pred=None,
        sample_weight=None,
        training=True,
        key_embeddings=None,
    ):
        """Adds SimCLR (no labels: the loss gets `y_true=None`) and the memory bank.

        With a memory bank, a training step's loss also contrasts against the stored
        samples, and the step's embeddings (with a momentum encoder: the key network's
        `key_embeddings` of the same views) and labels are enqueued afterwards.
        """
        if self.memory_bank is not None and not self.memory_bank.built and y_pred is not None:
            # The label layout (integer or one-/multi-hot) follows the first labels seen.
            self.memory_bank.build(y_pred.shape, (None,) if y is None else y.shape)
        memory = self._memory_contrasts(y) if training else {}
        if not memory and (y is not None or self.loss is None):
            return super().compute_loss(
                x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=training
            )
        total = self.loss(y, y_pred, sample_weight=sample_weight, **memory)
        for loss in self.losses:  # regularisation losses added by layers
            total = total + ops.cast(ops.sum(loss), total.dtype)
        if memory:
            if self.key_network is not None and key_embeddings is None:
                raise ValueError(
                    "With `momentum_encoder=True` the memory bank stores the key network's "
                    "embeddings: pass `key_embeddings` (SupConModel.train_step does)."
                )
            self.memory_bank.enqueue(y_pred if key_embeddings is None else key_embeddings, y)
        return total

    def _memory_contrasts(self, y):
        """The memory bank's entries as loss arguments (`{}` without a bank)."""
        if self.memory_bank is None:
            return {}
        if not isinstance(self.loss, SupervisedContrastiveLoss):
            raise ValueError(
                "`memory_size` needs the model compiled with a SupervisedContrastiveLoss, "
                f"got loss {self.loss!r}."
            )
        if y is not None:
            self.memory_bank.check_labels(y.shape)
        embeddings, labels = self.memory_bank.contents()
        return {"memory_embeddings": embeddings, "memory_labels": None if y is None else labels}

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "encoder": keras.saving.serialize_keras_object(self.encoder),
                "projection_head": keras.saving.serialize_keras_object(self.projection_head),
                "augmenter": (
                    None
                    if self.augmenter is None
                    else keras.saving.serialize_keras_object(self.augmenter)
                ),
                "num_views": self.num_views,
                "gradient_cache_chunk_size": self.gradient_cache_chunk_size,
                "memory_size": self.memory_size,
                "momentum_encoder": self.momentum_encoder,
                "momentum": self.momentum,
            }
        )
        return config

    @classmethod
    def from_config(cls, config):
        return cls(**_deserialized(config, ("encoder", "projection_head", "augmenter")))


@keras.saving.register_keras_serializable(package="supcon_tf")
class HybridSupConModel(keras.Model):
    """One-stage training: `hybrid_weight x SupCon + cross-entropy` of a linear head.

    Composes a `SupConModel` (encoder, projection head, augmenter, views) with a
    linear classifier on the encoder's features of every view. On each batch the
    objective is

        hybrid_weight * contrastive(y, embeddings) + CE(y, logits)

    with the compiled loss as the contrastive term (e.g. `SupervisedContrastiveLoss`)
    and the cross-entropy averaged over all views. `call` returns
    `(embeddings [B, V, D], logits [B, V, C])`; `classifier()` gives the trained
    encoder and head as an image-to-logits model.

    Args:
        supcon_model: the `SupConModel` whose parts are trained.
        num_classes: number of classes of the linear head.
        hybrid_weight: weight `lambda > 0` of the contrastive term.
        **kwargs: `name`, `dtype`, ... of `keras.Model`.

    Example:

    >>> import numpy as np
    >>> from supcon_tf.models import build_encoder
    >>> from supcon_tf.losses import SupervisedContrastiveLoss
    >>> supcon = SupConModel(build_encoder("small_cnn", (8, 8, 1), width_multiplier=0.25))
    >>> model = HybridSupConModel(supcon, num_classes=4, hybrid_weight=0.5)
    >>> model.compile(optimizer="adam", loss=SupervisedContrastiveLoss())
    >>> images = np.random.default_rng(0).random((16, 8, 8, 1)).astype("float32")
    >>> history = model.fit(images, np.arange(16) % 4, batch_size=8, epochs=1, verbose=0)
    >>> tuple(model.classifier()(images[:2]).shape)
    (2, 4)
    """

    def __init__(self, supcon_model, num_classes, hybrid_weight=1.0, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(supcon_model, SupConModel):
            raise ValueError(
                f"`supcon_model` must be a SupConModel, got {type(supcon_model).__name__}."
            )
        checks.integer("num_classes", num_classes, minimum=2)
        if (
            isinstance(hybrid_weight, bool)
            or not isinstance(hybrid_weight, (int, float))
            or not 0 < hybrid_weight < float("inf")
        ):
            raise ValueError(
                f"`hybrid_weight` must be a positive finite number, got {hybrid_weight!r}."
            )
        self.supcon_model = supcon_model
        self.num_classes = num_classes
        self.hybrid_weight = float(hybrid_weight)
        self.head = keras.layers.Dense(num_classes, name="hybrid_head")
        self.cross_entropy = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    @property
    def encoder(self):
        return self.supcon_model.encoder

    def build(self, input_shape):
        self.supcon_model.build(input_shape)
        image_shape = self.supcon_model._image_shape(input_shape)
        self.head.build(self.encoder.compute_output_shape(image_shape))
        self.built = True

    def call(self, inputs, training=False):
        training = bool(training)
        parts = self.supcon_model
        views = parts.draw_views(inputs, training)  # [V, B, H, W, C]
        features = self.encoder(ops.reshape(views, (-1, *views.shape[2:])), training=training)
        projections = parts.projection_head(features, training=training)
        logits = self.head(features)

        def by_sample(values):
            # View-major [V * B, K] -> [B, V, K].
            values = ops.reshape(values, (parts.num_views, -1, values.shape[-1]))
            return ops.transpose(values, (1, 0, 2))

        return by_sample(projections), by_sample(logits)

    def loss_parts(self, y, y_pred, sample_weight=None):
        """`(contrastive, cross_entropy)`: the two terms of the objective."""
        embeddings, logits = y_pred
        contrastive = self.loss(y, embeddings, sample_weight=sample_weight)
        views = self.supcon_model.num_views
        labels = ops.reshape(ops.repeat(ops.reshape(y, (1, -1)), views, axis=0), (-1,))
        flat_logits = ops.reshape(ops.transpose(logits, (1, 0, 2)), (-1, self.num_classes))
        weights = None
        if sample_weight is not None:
            weights = ops.reshape(
                ops.repeat(ops.reshape(sample_weight, (1, -1)), views, axis=0), (-1,)
            )
        cross_entropy = self.cross_entropy(labels, flat_logits, sample_weight=weights)
        return contrastive, cross_entropy

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """`hybrid_weight x contrastive + cross-entropy` (+ layer regularisation losses)."""
        if y is None:
            raise ValueError("The hybrid objective needs labels: call fit(x, y), got y=None.")
        contrastive, cross_entropy = self.loss_parts(y, y_pred, sample_weight)
        total = self.hybrid_weight * contrastive + ops.cast(cross_entropy, contrastive.dtype)
        for loss in self.losses:
            total = total + ops.cast(ops.sum(loss), total.dtype)
        return total

    def classifier(self):
        """The encoder and linear head as an image-to-logits model (no augmentation)."""
        inputs = keras.Input(self.encoder.input_shape[1:])
        return keras.Model(inputs, self.head(self.encoder(inputs)), name="hybrid_classifier")

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "supcon_model": keras.saving.serialize_keras_object(self.supcon_model),
                "num_classes": self.num_classes,
                "hybrid_weight": self.hybrid_weight,
            }
        )
        return config

    @classmethod
    def from_config(cls, config):
        return cls(**_deserialized(config, ("supcon_model",)))


def _deserialized(config, keys):
    """A copy of `config` with the Keras objects serialised under `keys` rebuilt."""
    config = dict(config)
    for key in keys:
        if config.get(key) is not None:
            config[key] = keras.saving.deserialize_keras_object(config[key])
    return config
