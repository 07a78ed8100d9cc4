"""Optimizers for SupCon training: LARS, plus Keras' own optimizers by name.

`LARS` (layer-wise adaptive rate scaling; You, Gitman and Ginsburg, 2017,
https://arxiv.org/abs/1708.03888) is the optimizer of the paper's ImageNet runs. The
others (`adam`, `adamw`, `sgd`, `rmsprop`, `lamb`) are Keras' implementations.

Example:

>>> optimizer = build_optimizer("lars", learning_rate=0.3, weight_decay=1e-6)
>>> type(optimizer).__name__, optimizer.eta
('LARS', 0.001)
"""

import math

import keras
from keras import ops

OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop", "lamb", "lars")


def _check_fraction(name, value, upper_inclusive):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"`{name}` must be a number in [0, 1), got {value!r}.")
    if value < 0 or value > 1 or (value == 1 and not upper_inclusive):
        interval = "[0, 1]" if upper_inclusive else "[0, 1)"
        raise ValueError(f"`{name}` must be in {interval}, got {value}.")
    return float(value)


def _check_non_negative(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"`{name}` must be a finite number >= 0, got {value!r}.")
    if value < 0:
        raise ValueError(f"`{name}` must be >= 0, got {value}.")
    return float(value)


@keras.saving.register_keras_serializable(package="supcon_tf")
class LARS(keras.optimizers.Optimizer):
    """Layer-wise Adaptive Rate Scaling with momentum and L2 weight decay.

    The update follows the SimCLR / SupCon TensorFlow implementation (the
    "classic momentum" branch of `LARSOptimizer` in google-research/simclr and
    google-research/supcon), for each variable `w` with gradient `g`:

    ```
    g     = g + weight_decay * w                          (if w is not excluded)
    trust = eta * ||w|| / ||g||  if ||w|| > 0 and ||g|| > 0, else 1
                                                          (1 if w is excluded)
    v     = momentum * v + learning_rate * trust * g
    w     = w - v                                         (nesterov: w - (momentum * v
                                                           + learning_rate * trust * g))
    ```

    `||.||` is the L2 norm over the whole variable (one trust ratio per variable, i.e.
    per layer kernel). Note that this formulation takes the norm of the decayed
    gradient, `||g + weight_decay * w||`, where You et al. (2017) write
    `||g|| + weight_decay * ||w||` in the denominator.

    **Excluded variables.** Biases and normalisation parameters (BatchNorm / LayerNorm
    gamma and beta) get neither weight decay nor trust-ratio adaptation, as in the
    reference implementations. The rule here does not look at variable names: with
    `exclude_rank_one=True` (default) every variable of rank 0 or 1 is excluded,
    which covers exactly biases and normalisation scales/offsets in dense and
    convolutional networks; kernels (rank >= 2) are decayed and adapted. Set
    `exclude_rank_one=False` to decay and adapt everything, and call
    `exclude_variables(variables)` to exclude further variables explicitly (for
    example a rank-2 embedding table). Explicit exclusions hold object identities, so
    they are not part of `get_config`; call `exclude_variables` again after loading.

    Args:
        learning_rate: a float, a `keras.optimizers.schedules.LearningRateSchedule`
            or a callable; the global learning rate.
        momentum: momentum coefficient in `[0, 1)`.
        weight_decay: L2 weight-decay coefficient added to the gradient (>= 0).
        eta: trust coefficient `eta` (> 0); 0.001 in the reference implementations.
        nesterov: use Nesterov momentum.
        exclude_rank_one: exclude rank-0/1 variables (biases, norm parameters) from
            weight decay and adaptation.
        name: optimizer name.
        **kwargs: the base `keras.optimizers.Optimizer` options (`clipnorm`,
            `global_clipnorm`, `use_ema`, `gradient_accumulation_steps`, ...).

    >>> import numpy as np
    >>> kernel = keras.Variable(np.ones((2, 2)), dtype="float32")
    >>> optimizer = LARS(learning_rate=1.0, momentum=0.0)
    >>> optimizer.apply([keras.ops.ones((2, 2))], [kernel])
    >>> round(float(keras.ops.convert_to_numpy(kernel)[0, 0]), 6)  # trust = 0.001 * 2 / 2
    0.999
    """

    def __init__(
        self,
        learning_rate=0.1,
        momentum=0.9,
        weight_decay=0.0,
        eta=0.001,
        nesterov=False,
        exclude_rank_one=True,
        name="lars",
        **kwargs,
    ):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        self.momentum = _check_fraction("momentum", momentum, upper_inclusive=False)
        # Stored apart from the base class's `weight_decay`, which would add Keras'
        # decoupled decay on top (`Optimizer.weight_decay` stays None).
        self.lars_weight_decay = _check_non_negative("weight_decay", weight_decay)
        eta = _check_non_negative("eta", eta)
        if eta == 0:
            raise ValueError("`eta` must be > 0, got 0.")
        self.eta = eta
        if not isinstance(nesterov, bool):
            raise ValueError(f"`nesterov` must be a bool, got {nesterov!r}.")
        if not isinstance(exclude_rank_one, bool):
            raise ValueError(f"`exclude_rank_one` must be a bool, got {exclude_rank_one!r}.")
        self.nesterov = nesterov
        self.exclude_rank_one = exclude_rank_one
        self._explicitly_excluded = {}

    def exclude_variables(self, variables):
        """Excludes `variables` (by identity) from weight decay and trust-ratio adaptation.

        Args:
            variables: an iterable of `keras.Variable`s (e.g. `layer.trainable_weights`).
        """
        for variable in variables:
            if not hasattr(variable, "shape") or not hasattr(variable, "assign"):
                raise ValueError(
                    f"`exclude_variables` takes Keras variables, got {type(variable).__name__}."
                )
            # `update_step` may see the backend variable behind a `keras.Variable`
            # (the TensorFlow backend passes `variable.value`): register both.
            self._explicitly_excluded[id(variable)] = variable
            backend_value = getattr(variable, "value", variable)
            self._explicitly_excluded[id(backend_value)] = variable

    def is_excluded(self, variable):
        """Whether `variable` is exempt from weight decay and adaptation."""
        if id(variable) in self._explicitly_excluded:
            return True
        return self.exclude_rank_one and len(variable.shape) <= 1

    def build(self, variables):
        """Creates one momentum buffer per variable."""
        if self.built:
            return
        super().build(variables)
        self.momentums = [
            self.add_variable_from_reference(variable, "momentum") for variable in variables
        ]

    def update_step(self, gradient, variable, learning_rate):
        """Applies one LARS step to `variable` (see the class docstring)."""
        dtype = variable.dtype
        learning_rate = ops.cast(learning_rate, dtype)
        gradient = ops.cast(gradient, dtype)
        # Python floats go straight to the variable's dtype (ops.cast would round
        # them through float32 first).
        momentum = ops.convert_to_tensor(self.momentum, dtype=dtype)
        velocity = self.momentums[self._get_variable_index(variable)]

        scaled_rate = learning_rate
        if not self.is_excluded(variable):
            weights = ops.convert_to_tensor(variable)
            if self.lars_weight_decay:
                decay = ops.convert_to_tensor(self.lars_weight_decay, dtype=dtype)
                gradient = gradient + decay * weights
            weight_norm = ops.sqrt(ops.sum(ops.square(weights)))
            gradient_norm = ops.sqrt(ops.sum(ops.square(gradient)))
            both_positive = ops.logical_and(weight_norm > 0, gradient_norm > 0)
            safe_gradient_norm = ops.where(both_positive, gradient_norm, ops.ones_like(weight_norm))
            trust_ratio = ops.where(
                both_positive,
                ops.convert_to_tensor(self.eta, dtype=dtype) * weight_norm / safe_gradient_norm,
                ops.ones_like(weight_norm),
            )
            scaled_rate = learning_rate * trust_ratio

        step = scaled_rate * gradient
        self.assign(velocity, momentum * velocity + step)
        if self.nesterov:
            self.assign_sub(variable, momentum * velocity + step)
        else:
            self.assign_sub(variable, velocity)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "momentum": self.momentum,
                "weight_decay": self.lars_weight_decay,
                "eta": self.eta,
                "nesterov": self.nesterov,
                "exclude_rank_one": self.exclude_rank_one,
            }
        )
        return config


def build_optimizer(name="adam", learning_rate=1e-3, weight_decay=0.0, momentum=0.9):
    """Returns an optimizer by name.

    Args:
        name: one of `OPTIMIZERS`: `"lars"` (`LARS`, L2 weight decay inside the
            trust ratio, biases and norm parameters excluded), or Keras' `"adam"`,
            `"adamw"`, `"sgd"`, `"rmsprop"`, `"lamb"` (Keras' weight decay,
            decoupled: `w -= learning_rate * weight_decay * w` each step).
        learning_rate: a float or a `keras.optimizers.schedules.LearningRateSchedule`.
        weight_decay: weight-decay coefficient (0 disables it).
        momentum: momentum for LARS, SGD and RMSprop.

    >>> build_optimizer("sgd", learning_rate=0.05, momentum=0.9).momentum
    0.9
    """
    if name not in OPTIMIZERS:
        raise ValueError(f"Unknown optimizer {name!r}. Expected one of {OPTIMIZERS}.")
    weight_decay = _check_non_negative("weight_decay", weight_decay)
    momentum = _check_fraction("momentum", momentum, upper_inclusive=False)
    if not callable(learning_rate):
        _check_non_negative("learning_rate", learning_rate)
    decay = weight_decay or None
    if name == "lars":
        return LARS(learning_rate, momentum=momentum, weight_decay=weight_decay)
    if name == "adam":
        return keras.optimizers.Adam(learning_rate, weight_decay=decay)
    if name == "adamw":
        return keras.optimizers.AdamW(learning_rate, weight_decay=weight_decay)
    if name == "sgd":
        return keras.optimizers.SGD(learning_rate, momentum=momentum, weight_decay=decay)
    if name == "rmsprop":
        return keras.optimizers.RMSprop(learning_rate, momentum=momentum, weight_decay=decay)
    return keras.optimizers.Lamb(learning_rate, weight_decay=decay)
