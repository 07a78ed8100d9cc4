"""Optimizers and learning-rate schedules for SupCon training.

Example:

>>> optimizer = build_optimizer("sgd", learning_rate=0.05)
>>> type(optimizer).__name__
'SGD'
"""

import keras

OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop", "lamb")


def build_optimizer(name="adam", learning_rate=1e-3, weight_decay=0.0, momentum=0.9):
    """Returns a Keras optimizer by name.

    Args:
        name: one of `OPTIMIZERS`.
        learning_rate: a float or a `keras.optimizers.schedules.LearningRateSchedule`.
        weight_decay: decoupled weight decay (0 disables it).
        momentum: momentum for SGD and RMSprop.
    """
    decay = weight_decay or None
    if name == "adam":
        return keras.optimizers.Adam(learning_rate, weight_decay=decay)
    if name == "adamw":
        return keras.optimizers.AdamW(learning_rate, weight_decay=weight_decay)
    if name == "sgd":
        return keras.optimizers.SGD(learning_rate, momentum=momentum, weight_decay=decay)
    if name == "rmsprop":
        return keras.optimizers.RMSprop(learning_rate, momentum=momentum, weight_decay=decay)
    if name == "lamb":
        return keras.optimizers.Lamb(learning_rate, weight_decay=decay)
    raise ValueError(f"Unknown optimizer {name!r}. Expected one of {OPTIMIZERS}.")
