"""The classifiers on a trained encoder: the linear probe and the cross-entropy baseline.

`linear_head(classifier)` is the probe's head alone, a model from features to logits
that shares the classifier's layers: training it on features the frozen encoder
computed once trains the classifier itself (`supcon_tf.experiment.features`).

Example:

>>> from supcon_tf.models import build_encoder
>>> encoder = build_encoder("resnet18", (32, 32, 3))
>>> build_linear_classifier(encoder, num_classes=10).output_shape
(None, 10)
"""

import keras

from supcon_tf import checks

HIDDEN_ACTIVATIONS = ("relu", "linear")
# BatchNorm momentum of the feature standardisation: PyTorch's 0.1, as in MoCo v3 / MAE
# linear probing; the moving statistics settle within a few dozen steps.
_STANDARDIZATION_MOMENTUM = 0.9


def _check_classifier_arguments(encoder, num_classes, hidden_units, dropout, hidden_activation):
    if hidden_activation not in HIDDEN_ACTIVATIONS:
        raise ValueError(
            f"Unknown `hidden_activation` {hidden_activation!r}. Expected one of "
            f"{HIDDEN_ACTIVATIONS}."
        )
    if not isinstance(encoder, keras.Model):
        raise ValueError(f"`encoder` must be a keras.Model, got {type(encoder).__name__}.")
    checks.integer("num_classes", num_classes, minimum=2)
    if hidden_units is not None and (
        isinstance(hidden_units, bool) or not isinstance(hidden_units, int) or hidden_units < 1
    ):
        raise ValueError(
            f"`hidden_units` must be a positive integer or None, got {hidden_units!r}."
        )
    if not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
        raise ValueError(f"`dropout` must be in [0, 1), got {dropout!r}.")


def _classifier(encoder, num_classes, head, frozen, name):
    """`encoder` -> [standardisation] -> [dropout] -> [hidden Dense, dropout] -> logits."""
    hidden_units, dropout, hidden_activation, standardize = head
    inputs = keras.Input(encoder.input_shape[1:], name="images")
    features = encoder(inputs, training=False) if frozen else encoder(inputs)
    if standardize:
        features = keras.layers.BatchNormalization(
            center=False,
            scale=False,
            momentum=_STANDARDIZATION_MOMENTUM,
            name="feature_standardization",
        )(features)
    if dropout:
        features = keras.layers.Dropout(dropout, name="features_dropout")(features)
    if hidden_units:
        features = keras.layers.Dense(
            hidden_units, activation=hidden_activation, name="hidden_dense"
        )(features)
        if dropout:
            features = keras.layers.Dropout(dropout, name="hidden_dropout")(features)
    logits = keras.layers.Dense(num_classes, name="logits")(features)
    return keras.Model(inputs, logits, name=name)


def build_linear_classifier(
    encoder,
    num_classes,
    hidden_units=None,
    dropout=0.0,
    hidden_activation="relu",
    standardize=False,
):
    """The classifier phase: a linear (or one-hidden-layer) head on the frozen encoder.

    The encoder is set to `trainable=False` and called with `training=False`, so its
    weights and BatchNorm statistics stay fixed while the head trains.

    With `standardize=True` the frozen features are standardised per dimension by a
    `BatchNormalization` without scale or offset (batch statistics in training, moving
    averages at inference) before the head, as in the linear probing of MoCo v3
    (Chen et al., 2021) and MAE (He et al., 2022): the probe then sees features of
    unit scale whatever the encoder, and one learning rate suits every encoder.

    Args:
        encoder: the pretrained encoder (images -> `[B, F]`); it is frozen in place.
        num_classes: number of classes.
        hidden_units: optional width of a hidden layer (the later Keras example used
            512 with ReLU, the first one 64, linear); `None` gives a linear classifier.
        dropout: dropout rate before each Dense layer of the head (0 disables it).
        hidden_activation: `"relu"` or `"linear"`, the hidden layer's activation.
        standardize: standardise the features before the head (see above).

    Returns:
        A `keras.Model` from images to logits `[B, num_classes]`; compile it with
        `SparseCategoricalCrossentropy(from_logits=True)`.

    Example:

    >>> from supcon_tf.models import build_encoder
    >>> encoder = build_encoder("small_cnn", (8, 8, 1))
    >>> classifier = build_linear_classifier(encoder, num_classes=10)
    >>> encoder.trainable, classifier.output_shape
    (False, (None, 10))
    """
    _check_classifier_arguments(encoder, num_classes, hidden_units, dropout, hidden_activation)
    encoder.trainable = False
    head = (hidden_units, dropout, hidden_activation, standardize)
    return _classifier(encoder, num_classes, head, True, "linear_classifier")


def linear_head(classifier):
    """The head of a `build_linear_classifier` model, as a model from features to logits.

    The head model reuses the classifier's own layers (standardisation, dropout, hidden
    and logits layers), so the two share every weight: training the head on the frozen
    encoder's features trains the classifier, and the classifier (images -> logits) is
    what gets saved. `head(encoder(images, training=False), training=t)` equals
    `classifier(images, training=t)`.

    Args:
        classifier: a model built by `build_linear_classifier` (input, frozen encoder,
            then the head's layers in a chain).

    Returns:
        A `keras.Model` from features `[B, F]` to logits `[B, num_classes]`.

    Raises:
        ValueError: `classifier` is not a linear classifier on an encoder.

    Example:

    >>> from supcon_tf.models import build_encoder
    >>> classifier = build_linear_classifier(build_encoder("small_cnn", (8, 8, 1)), 10)
    >>> head = linear_head(classifier)
    >>> head.input_shape, head.get_layer("logits") is classifier.get_layer("logits")
    ((None, 128), True)
    """
    if not isinstance(classifier, keras.Model) or len(classifier.layers) < 3:
        raise ValueError(
            "`classifier` must be a model of build_linear_classifier (images -> frozen "
            f"encoder -> head), got {type(classifier).__name__}."
        )
    _, encoder, *head_layers = classifier.layers
    if not isinstance(encoder, keras.Model) or encoder.trainable:
        raise ValueError(
            "`classifier` must be a model of build_linear_classifier, whose second layer is "
            f"the frozen encoder; got {type(encoder).__name__} (trainable={encoder.trainable})."
        )
    features = inputs = keras.Input(encoder.output_shape[1:], name="features")
    for layer in head_layers:
        features = layer(features)
    return keras.Model(inputs, features, name=f"{classifier.name}_head")


def build_cross_entropy_classifier(
    encoder, num_classes, hidden_units=None, dropout=0.0, hidden_activation="relu"
):
    """The cross-entropy baseline: encoder and head trained together, end to end.

    Args:
        encoder: a freshly built encoder (same architecture as the SupCon one).
        num_classes: number of classes.
        hidden_units: optional width of a hidden layer; `None`: linear head.
        dropout: dropout rate before each Dense layer of the head.
        hidden_activation: `"relu"` or `"linear"`, the hidden layer's activation.

    Returns:
        A `keras.Model` from images to logits `[B, num_classes]`.

    Example:

    >>> from supcon_tf.models import build_encoder
    >>> model = build_cross_entropy_classifier(build_encoder("small_cnn", (8, 8, 1)), 10)
    >>> model.output_shape, len(model.trainable_weights) > 2
    ((None, 10), True)
    """
    _check_classifier_arguments(encoder, num_classes, hidden_units, dropout, hidden_activation)
    encoder.trainable = True
    head = (hidden_units, dropout, hidden_activation, False)
    return _classifier(encoder, num_classes, head, False, "cross_entropy_classifier")
