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
>>> from supcon_tf.encoders import build_encoder
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
from keras import ops

from supcon_tf.layers import ProjectionHead


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
            `supcon_tf.encoders.build_encoder`).
        projection_head: a layer from features to embeddings; default
            `ProjectionHead()` (hidden width F, 128 outputs).
        augmenter: any Keras layer (or `keras.layers.Pipeline` / `keras.Sequential`)
            applied with `training=True` during training; `None` means no
            augmentation (every view is the image itself).
        num_views: views per image (2 in the paper).
        **kwargs: `name`, `dtype`, ... of `keras.Model`.

    Call arguments:
        inputs: images `[B, H, W, C]`.
        training: whether to augment and use batch statistics.

    Example:

    >>> import numpy as np
    >>> from supcon_tf.encoders import build_encoder
    >>> model = SupConModel(build_encoder("small_cnn", (8, 8, 1)), num_views=3)
    >>> tuple(model(np.zeros((4, 8, 8, 1), dtype="float32")).shape)
    (4, 3, 128)
    """

    def __init__(self, encoder, projection_head=None, augmenter=None, num_views=2, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(encoder, keras.Model):
            raise ValueError(
                f"`encoder` must be a keras.Model, got {type(encoder).__name__}. "
                "Use supcon_tf.encoders.build_encoder(name, input_shape) to build one."
            )
        if isinstance(num_views, bool) or not isinstance(num_views, int) or num_views < 1:
            raise ValueError(f"`num_views` must be a positive integer, got {num_views!r}.")
        if augmenter is not None and not callable(augmenter):
            raise ValueError(f"`augmenter` must be a Keras layer or None, got {augmenter!r}.")
        self.encoder = encoder
        self.projection_head = projection_head if projection_head is not None else ProjectionHead()
        self.augmenter = augmenter
        self.num_views = num_views

    def build(self, input_shape):
        if not self.encoder.built:
            self.encoder.build(input_shape)
        feature_shape = self.encoder.compute_output_shape(input_shape)
        if not self.projection_head.built:
            self.projection_head.build(feature_shape)
        self.built = True

    def call(self, inputs, training=False):
        # An explicit `False` outside training: some augmenters (`keras.layers.Pipeline`)
        # default to augmenting when `training` is left unset.
        training = bool(training)
        if self.augmenter is None:
            views = [inputs] * self.num_views
        else:
            views = [self.augmenter(inputs, training=training) for _ in range(self.num_views)]
        features = self.encoder(ops.concatenate(views, axis=0), training=training)
        projections = self.projection_head(features, training=training)
        # View-major [V * B, D] -> [B, V, D].
        projections = ops.reshape(projections, (self.num_views, -1, projections.shape[-1]))
        return ops.transpose(projections, (1, 0, 2))

    def compute_output_shape(self, input_shape):
        feature_shape = self.encoder.compute_output_shape(input_shape)
        output_shape = self.projection_head.compute_output_shape(feature_shape)
        return (input_shape[0], self.num_views, output_shape[-1])

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """Adds the SimCLR case: with no labels the loss is called with `y_true=None`."""
        if y is not None or self.loss is None:
            return super().compute_loss(
                x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=training
            )
        total = self.loss(None, y_pred, sample_weight=sample_weight)
        for loss in self.losses:  # regularisation losses added by layers
            total = total + ops.cast(ops.sum(loss), total.dtype)
        return total

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
            }
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for key in ("encoder", "projection_head", "augmenter"):
            if config.get(key) is not None:
                config[key] = keras.saving.deserialize_keras_object(config[key])
        return cls(**config)


def _check_classifier_arguments(encoder, num_classes, hidden_units, dropout):
    if not isinstance(encoder, keras.Model):
        raise ValueError(f"`encoder` must be a keras.Model, got {type(encoder).__name__}.")
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"`num_classes` must be an integer >= 2, got {num_classes!r}.")
    if hidden_units is not None and (
        isinstance(hidden_units, bool) or not isinstance(hidden_units, int) or hidden_units < 1
    ):
        raise ValueError(
            f"`hidden_units` must be a positive integer or None, got {hidden_units!r}."
        )
    if not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
        raise ValueError(f"`dropout` must be in [0, 1), got {dropout!r}.")


def _classifier(encoder, num_classes, hidden_units, dropout, frozen, name):
    inputs = keras.Input(encoder.input_shape[1:], name="images")
    features = encoder(inputs, training=False) if frozen else encoder(inputs)
    if dropout:
        features = keras.layers.Dropout(dropout, name="features_dropout")(features)
    if hidden_units:
        features = keras.layers.Dense(hidden_units, activation="relu", name="hidden_dense")(
            features
        )
        if dropout:
            features = keras.layers.Dropout(dropout, name="hidden_dropout")(features)
    logits = keras.layers.Dense(num_classes, name="logits")(features)
    return keras.Model(inputs, logits, name=name)


def build_linear_classifier(encoder, num_classes, hidden_units=None, dropout=0.0):
    """The classifier phase: a linear (or one-hidden-layer) head on the frozen encoder.

    The encoder is set to `trainable=False` and called with `training=False`, so its
    weights and BatchNorm statistics stay fixed while the head trains.

    Args:
        encoder: the pretrained encoder (images -> `[B, F]`); it is frozen in place.
        num_classes: number of classes.
        hidden_units: optional width of a ReLU hidden layer (the original Keras
            example used 512); `None` gives a linear classifier.
        dropout: dropout rate before each Dense layer of the head (0 disables it).

    Returns:
        A `keras.Model` from images to logits `[B, num_classes]`; compile it with
        `SparseCategoricalCrossentropy(from_logits=True)`.

    Example:

    >>> from supcon_tf.encoders import build_encoder
    >>> encoder = build_encoder("small_cnn", (8, 8, 1))
    >>> classifier = build_linear_classifier(encoder, num_classes=10)
    >>> encoder.trainable, classifier.output_shape
    (False, (None, 10))
    """
    _check_classifier_arguments(encoder, num_classes, hidden_units, dropout)
    encoder.trainable = False
    return _classifier(encoder, num_classes, hidden_units, dropout, True, "linear_classifier")


def build_cross_entropy_classifier(encoder, num_classes, hidden_units=None, dropout=0.0):
    """The cross-entropy baseline: encoder and head trained together, end to end.

    Args:
        encoder: a freshly built encoder (same architecture as the SupCon one).
        num_classes: number of classes.
        hidden_units: optional width of a ReLU hidden layer; `None`: linear head.
        dropout: dropout rate before each Dense layer of the head.

    Returns:
        A `keras.Model` from images to logits `[B, num_classes]`.

    Example:

    >>> from supcon_tf.encoders import build_encoder
    >>> model = build_cross_entropy_classifier(build_encoder("small_cnn", (8, 8, 1)), 10)
    >>> model.output_shape, len(model.trainable_weights) > 2
    ((None, 10), True)
    """
    _check_classifier_arguments(encoder, num_classes, hidden_units, dropout)
    encoder.trainable = True
    return _classifier(
        encoder, num_classes, hidden_units, dropout, False, "cross_entropy_classifier"
    )


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
    >>> from supcon_tf.encoders import build_encoder
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
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
            raise ValueError(f"`num_classes` must be an integer >= 2, got {num_classes!r}.")
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
        self.head.build(self.encoder.compute_output_shape(input_shape))
        self.built = True

    def call(self, inputs, training=False):
        training = bool(training)
        parts = self.supcon_model
        if parts.augmenter is None:
            views = [inputs] * parts.num_views
        else:
            views = [parts.augmenter(inputs, training=training) for _ in range(parts.num_views)]
        features = self.encoder(ops.concatenate(views, axis=0), training=training)
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
        config = dict(config)
        config["supcon_model"] = keras.saving.deserialize_keras_object(config["supcon_model"])
        return cls(**config)
