"""Image encoders (backbones) that map images to a pooled feature vector `[B, F]`.

Encoders are loss-agnostic `keras.Model`s: the same encoder serves the SupCon
pretraining, the frozen-encoder classifier and the cross-entropy baseline. Each one
takes raw `[0, 1]` images; all but `"keras_example_cnn"` (which, like the Keras
example it reproduces, feeds them to its first convolution as they are) start with their
own input scaling to `[-1, 1]`.

Example:

>>> encoder = build_encoder("small_cnn", input_shape=(8, 8, 1))
>>> encoder.output_shape
(None, 128)
"""

import keras

ENCODERS = (
    "small_cnn",
    "resnet18",
    "resnet34",
    "resnet50",
    "resnet101",
    "resnet50v2_keras_example",
    "keras_example_cnn",
)
STEMS = ("cifar", "imagenet")

# Blocks per stage and whether the stages use bottleneck blocks (He et al., 2016).
_RESNET_STAGES = {
    "resnet18": ((2, 2, 2, 2), False),
    "resnet34": ((3, 4, 6, 3), False),
    "resnet50": ((3, 4, 6, 3), True),
    "resnet101": ((3, 4, 23, 3), True),
}
_BOTTLENECK_EXPANSION = 4
# PyTorch's default (momentum 0.1 there), as in the reference SupCon ResNets: the
# moving statistics settle within a few dozen steps, which small datasets need.
_BATCH_NORM_MOMENTUM = 0.9


def _check_input_shape(input_shape):
    if (
        not isinstance(input_shape, (tuple, list))
        or len(input_shape) != 3
        or not all(isinstance(size, int) and size > 0 for size in input_shape)
    ):
        raise ValueError(
            "`input_shape` must be (height, width, channels) with positive integers, "
            f"got {input_shape!r}."
        )
    return tuple(input_shape)


def _scaled(width, width_multiplier):
    return max(1, int(round(width * width_multiplier)))


def _input_scaling(inputs):
    """Maps images in `[0, 1]` to `[-1, 1]` (the normalisation lives in the model)."""
    return keras.layers.Rescaling(scale=2.0, offset=-1.0, name="input_scaling")(inputs)


def _conv_batch_norm(features, filters, kernel_size, strides, name, activation=True):
    features = keras.layers.Conv2D(
        filters,
        kernel_size,
        strides=strides,
        padding="same",
        use_bias=False,
        kernel_initializer="he_normal",
        name=f"{name}_conv",
    )(features)
    features = keras.layers.BatchNormalization(
        momentum=_BATCH_NORM_MOMENTUM, name=f"{name}_batch_norm"
    )(features)
    if activation:
        features = keras.layers.ReLU(name=f"{name}_relu")(features)
    return features


def _basic_block(features, filters, strides, name):
    shortcut = features
    if strides != 1 or features.shape[-1] != filters:
        shortcut = _conv_batch_norm(
            features, filters, 1, strides, f"{name}_shortcut", activation=False
        )
    features = _conv_batch_norm(features, filters, 3, strides, f"{name}_1")
    features = _conv_batch_norm(features, filters, 3, 1, f"{name}_2", activation=False)
    features = keras.layers.Add(name=f"{name}_add")([shortcut, features])
    return keras.layers.ReLU(name=f"{name}_out")(features)


def _bottleneck_block(features, filters, strides, name):
    output_filters = filters * _BOTTLENECK_EXPANSION
    shortcut = features
    if strides != 1 or features.shape[-1] != output_filters:
        shortcut = _conv_batch_norm(
            features, output_filters, 1, strides, f"{name}_shortcut", activation=False
        )
    features = _conv_batch_norm(features, filters, 1, 1, f"{name}_1")
    features = _conv_batch_norm(features, filters, 3, strides, f"{name}_2")
    features = _conv_batch_norm(features, output_filters, 1, 1, f"{name}_3", activation=False)
    features = keras.layers.Add(name=f"{name}_add")([shortcut, features])
    return keras.layers.ReLU(name=f"{name}_out")(features)


def _build_resnet(name, input_shape, width_multiplier, stem):
    blocks_per_stage, bottleneck = _RESNET_STAGES[name]
    block = _bottleneck_block if bottleneck else _basic_block
    inputs = keras.Input(input_shape, name="images")
    features = _input_scaling(inputs)
    stem_width = _scaled(64, width_multiplier)
    if stem == "cifar":
        features = _conv_batch_norm(features, stem_width, 3, 1, "stem")
    else:
        features = _conv_batch_norm(features, stem_width, 7, 2, "stem")
        features = keras.layers.MaxPooling2D(3, strides=2, padding="same", name="stem_pool")(
            features
        )
    for stage, num_blocks in enumerate(blocks_per_stage):
        filters = _scaled(64 * 2**stage, width_multiplier)
        for index in range(num_blocks):
            strides = 2 if stage > 0 and index == 0 else 1
            features = block(features, filters, strides, f"stage{stage + 1}_block{index + 1}")
    outputs = keras.layers.GlobalAveragePooling2D(name="pool")(features)
    return keras.Model(inputs, outputs, name=name)


def _build_small_cnn(input_shape, width_multiplier):
    """Three conv blocks (32, 64, 128 filters) with BatchNorm, ReLU and pooling."""
    inputs = keras.Input(input_shape, name="images")
    features = _input_scaling(inputs)
    for index, width in enumerate((32, 64, 128)):
        features = _conv_batch_norm(
            features, _scaled(width, width_multiplier), 3, 1, f"block{index + 1}"
        )
        if min(features.shape[1], features.shape[2]) >= 2 and index < 2:
            features = keras.layers.MaxPooling2D(2, name=f"block{index + 1}_pool")(features)
    outputs = keras.layers.GlobalAveragePooling2D(name="pool")(features)
    return keras.Model(inputs, outputs, name="small_cnn")


def _build_keras_example_encoder(input_shape):
    """The original Keras example's encoder: ResNet50V2 from scratch, average-pooled."""
    inputs = keras.Input(input_shape, name="images")
    features = _input_scaling(inputs)
    resnet = keras.applications.ResNet50V2(
        include_top=False, weights=None, input_shape=input_shape, pooling="avg"
    )
    return keras.Model(inputs, resnet(features), name="resnet50v2_keras_example")


def _build_keras_example_cnn(input_shape):
    """The first Keras example's encoder (2020/11/01): two valid 3x3 ReLU convolutions
    (32, 64 filters) with 2x2 max-pooling, flattened into a linear `Dense(128)`.

    On 32x32x3 images it has 314,432 parameters, as the example's summary prints.
    """
    return keras.Sequential(
        [
            keras.Input(input_shape, name="images"),
            keras.layers.Conv2D(32, 3, activation="relu", name="conv1"),
            keras.layers.MaxPooling2D(2, name="pool1"),
            keras.layers.Conv2D(64, 3, activation="relu", name="conv2"),
            keras.layers.MaxPooling2D(2, name="pool2"),
            keras.layers.Flatten(name="flatten"),
            keras.layers.Dense(128, name="features"),
        ],
        name="keras_example_cnn",
    )


def _pooled(model):
    """Returns `model` itself when it outputs `[B, F]`, else it followed by average pooling."""
    if not isinstance(model.output_shape, tuple):
        raise ValueError(
            f"An encoder must have a single output, got output shapes {model.output_shape}."
        )
    rank = len(model.output_shape)
    if rank == 2:
        return model
    if rank == 4:
        inputs = keras.Input(model.input_shape[1:], name="images")
        outputs = keras.layers.GlobalAveragePooling2D(name="pool")(model(inputs))
        return keras.Model(inputs, outputs, name=f"{model.name}_pooled")
    raise ValueError(
        "An encoder must output features [batch, features] or feature maps "
        f"[batch, height, width, channels]; {model.name!r} outputs shape {model.output_shape}."
    )


def build_encoder(name, input_shape=None, width_multiplier=1.0, stem="cifar"):
    """Builds an image encoder that outputs a pooled feature vector `[B, F]`.

    Args:
        name: one of `ENCODERS`, or a built `keras.Model` (used as is when it outputs
            `[B, F]`; a feature-map output `[B, H, W, C]` gets global average pooling).
            `"small_cnn"` is a three-block CNN (fast on a CPU);
            `"resnet18"` ... `"resnet101"` are the ResNets of He et al. (2016), as in
            the paper; `"resnet50v2_keras_example"` is the original Keras example's
            encoder (`keras.applications.ResNet50V2` from scratch, average-pooled);
            `"keras_example_cnn"` is the first Keras example's (2020/11/01) small CNN
            (conv 32, pool, conv 64, pool, flatten, linear `Dense(128)`; no width
            multiplier, no input scaling).
        input_shape: `(height, width, channels)` of the images (not needed for a model).
        width_multiplier: scales every layer's number of filters (ResNets, small CNN).
        stem: `"cifar"` (3x3 convolution, stride 1, no max-pool: for 32x32 images) or
            `"imagenet"` (7x7 convolution, stride 2, then 3x3 max-pool). ResNets only.

    Returns:
        A `keras.Model` from images `[B, H, W, C]` in `[0, 1]` to features `[B, F]`.

    Example:

    >>> encoder = build_encoder("resnet18", (16, 16, 3), width_multiplier=0.125)
    >>> encoder.output_shape  # 512 * 0.125 features
    (None, 64)
    >>> build_encoder(encoder) is encoder
    True
    """
    if isinstance(name, keras.Model):
        return _pooled(name)
    if name not in ENCODERS:
        raise ValueError(f"Unknown encoder {name!r}. Expected one of {ENCODERS} or a keras.Model.")
    if stem not in STEMS:
        raise ValueError(f"Unknown stem {stem!r}. Expected one of {STEMS}.")
    if isinstance(width_multiplier, bool) or not (
        isinstance(width_multiplier, (int, float)) and width_multiplier > 0
    ):
        raise ValueError(f"`width_multiplier` must be positive, got {width_multiplier!r}.")
    input_shape = _check_input_shape(input_shape)
    if name == "small_cnn":
        return _build_small_cnn(input_shape, width_multiplier)
    if name == "resnet50v2_keras_example":
        return _build_keras_example_encoder(input_shape)
    if name == "keras_example_cnn":
        return _build_keras_example_cnn(input_shape)
    return _build_resnet(name, input_shape, width_multiplier, stem)
