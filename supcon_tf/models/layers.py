"""Layers of the SupCon model: the projection head and L2 normalisation.

Example:

>>> import numpy as np
>>> head = ProjectionHead(output_units=4)
>>> projections = head(np.ones((2, 8), dtype="float32"))
>>> tuple(projections.shape)
(2, 4)
>>> norms = np.linalg.norm(L2Normalize()(projections), axis=-1)
>>> bool(np.allclose(norms, 1.0, atol=1e-5))
True
"""

import keras
from keras import ops

from supcon_tf import checks


@keras.saving.register_keras_serializable(package="supcon_tf")
class L2Normalize(keras.layers.Layer):
    """Scales vectors to unit Euclidean length along one axis.

    `y = x / sqrt(max(sum(x ** 2), epsilon))`, so a zero vector stays zero instead of
    producing NaN.

    Args:
        axis: the axis to normalise over (default: the last one).
        epsilon: lower bound of the squared norm.

    Call arguments:
        inputs: a float tensor of any shape.

    Example:

    >>> import numpy as np
    >>> L2Normalize()(np.array([[3.0, 4.0]], dtype="float32")).numpy().tolist()
    [[0.6000000238418579, 0.800000011920929]]
    """

    def __init__(self, axis=-1, epsilon=1e-12, **kwargs):
        super().__init__(**kwargs)
        checks.integer("axis", axis)
        if not epsilon > 0:
            raise ValueError(f"`epsilon` must be positive, got {epsilon!r}.")
        self.axis = axis
        self.epsilon = epsilon

    def call(self, inputs):
        squared_norm = ops.sum(ops.square(inputs), axis=self.axis, keepdims=True)
        return inputs * ops.rsqrt(ops.maximum(squared_norm, self.epsilon))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({"axis": self.axis, "epsilon": self.epsilon})
        return config


@keras.saving.register_keras_serializable(package="supcon_tf")
class ProjectionHead(keras.layers.Layer):
    """MLP that maps encoder features to the embedding space of the contrastive loss.

    The paper's head (Khosla et al., 2020, Sec. 3.1): `num_hidden_layers` blocks of
    `Dense(hidden_units) -> [BatchNormalization] -> ReLU`, then a linear
    `Dense(output_units)`. The loss L2-normalises the output, so the head does not.
    With `num_hidden_layers=0` the head is a single linear layer.

    Args:
        output_units: width of the embedding (128 in the paper).
        hidden_units: width of the hidden layers; `None` (default) uses the width of
            the input features (2048 for ResNet-50, as in the paper).
        num_hidden_layers: number of hidden blocks (default 1).
        batch_norm: add BatchNormalization after each hidden Dense layer.
        activation: activation of the hidden layers.
        output_activation: activation of the output layer (`None`: linear; the
            original Keras example used `"relu"`).

    Call arguments:
        inputs: features `[B, F]`.
        training: whether BatchNormalization uses batch statistics.

    Example:

    >>> import numpy as np
    >>> head = ProjectionHead(output_units=16, batch_norm=True)
    >>> head(np.zeros((3, 32), dtype="float32")).shape
    TensorShape([3, 16])
    >>> head.hidden_layers[0].units  # hidden width defaults to the input width
    32
    """

    def __init__(
        self,
        output_units=128,
        hidden_units=None,
        num_hidden_layers=1,
        batch_norm=False,
        activation="relu",
        output_activation=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not isinstance(output_units, int) or output_units < 1:
            raise ValueError(f"`output_units` must be a positive integer, got {output_units!r}.")
        if hidden_units is not None and (not isinstance(hidden_units, int) or hidden_units < 1):
            raise ValueError(
                f"`hidden_units` must be a positive integer or None, got {hidden_units!r}."
            )
        if not isinstance(num_hidden_layers, int) or num_hidden_layers < 0:
            raise ValueError(
                f"`num_hidden_layers` must be a non-negative integer, got {num_hidden_layers!r}."
            )
        self.output_units = output_units
        self.hidden_units = hidden_units
        self.num_hidden_layers = num_hidden_layers
        self.batch_norm = batch_norm
        self.activation = keras.activations.get(activation)
        self.output_activation = keras.activations.get(output_activation)
        self.hidden_layers = []
        self.normalization_layers = []
        self.output_layer = None

    def build(self, input_shape):
        width = self.hidden_units or input_shape[-1]
        if width is None:
            raise ValueError(
                "ProjectionHead needs a known feature width when `hidden_units` is None; "
                f"got input shape {input_shape}."
            )
        shape = tuple(input_shape)
        for index in range(self.num_hidden_layers):
            dense = keras.layers.Dense(
                width, use_bias=not self.batch_norm, name=f"hidden_dense_{index}"
            )
            dense.build(shape)
            shape = dense.compute_output_shape(shape)
            self.hidden_layers.append(dense)
            if self.batch_norm:
                normalization = keras.layers.BatchNormalization(name=f"hidden_batch_norm_{index}")
                normalization.build(shape)
                self.normalization_layers.append(normalization)
        self.output_layer = keras.layers.Dense(
            self.output_units, activation=self.output_activation, name="output_dense"
        )
        self.output_layer.build(shape)

    def call(self, inputs, training=None):
        features = inputs
        for index, dense in enumerate(self.hidden_layers):
            features = dense(features)
            if self.batch_norm:
                features = self.normalization_layers[index](features, training=training)
            features = self.activation(features)
        return self.output_layer(features)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.output_units)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "output_units": self.output_units,
                "hidden_units": self.hidden_units,
                "num_hidden_layers": self.num_hidden_layers,
                "batch_norm": self.batch_norm,
                "activation": keras.activations.serialize(self.activation),
                "output_activation": keras.activations.serialize(self.output_activation),
            }
        )
        return config
