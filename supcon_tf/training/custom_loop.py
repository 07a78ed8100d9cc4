"""A training loop for strategies where Keras 3's `fit` does not run (multi-worker).

Keras 3's `fit`, `evaluate` and `predict` fail under `MultiWorkerMirroredStrategy`
before their first step (keras-team/keras#20585). `needs_custom_loop(strategy)` tells
when; `fit_with_custom_loop` then trains like `fit` with a `strategy.run` loop of the
model's own `train_step`, and `loss_and_accuracy` evaluates a classifier on one worker.
"""

import keras
import tensorflow as tf


def needs_custom_loop(strategy):
    """Whether Keras 3's `model.fit` cannot run under `strategy` (multi-worker strategies).

    Keras 3's `fit`, `evaluate` and `predict` fail under
    `MultiWorkerMirroredStrategy` before their first step (keras-team/keras#20585); use
    `fit_with_custom_loop` and `loss_and_accuracy` there.

    Example:

    >>> from supcon_tf.training.distribute import build_strategy
    >>> needs_custom_loop(build_strategy("default"))
    False
    """
    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)


def fit_with_custom_loop(
    model, dataset, epochs, steps_per_epoch, callbacks=None, initial_epoch=0, validation_data=None
):
    """Trains a compiled model like `model.fit`, with a `strategy.run` loop of its `train_step`.

    For strategies under which Keras 3's `fit` does not run (`needs_custom_loop`). Call
    it inside `strategy.scope()`, where the model and its optimizer were built. Each step
    runs `model.train_step` on every replica (the optimizer all-reduces the gradients,
    the supcon_tf losses gather the global batch); callbacks get the usual
    `on_train_begin` / `on_epoch_*` / `on_train_batch_*` calls and may stop training
    with `model.stop_training`. Logged metrics are those of this worker's replica.

    Args:
        model: a compiled Keras model, built (called once) under the strategy's scope.
        dataset: a `tf.data.Dataset` of global batches yielding at least
            `(epochs - initial_epoch) * steps_per_epoch` batches (it is distributed
            here; the strategy splits each global batch over the replicas), or a
            dataset the strategy already distributed, e.g. with
            `strategy.distribute_datasets_from_function` (each input pipeline reading
            its own files, as `supcon_tf.data.make_training_stream` does).
        epochs: index of the last epoch plus one, as in `fit`.
        steps_per_epoch: batches per epoch.
        callbacks: Keras callbacks.
        initial_epoch: the first epoch to run (resuming).
        validation_data: optional `tf.data.Dataset` of `(images, labels)` batches for a
            classifier, evaluated after each epoch with `evaluate_classifier`
            (logged as `val_loss`, `val_accuracy`).

    Returns:
        The `keras.callbacks.History`.

    Example:

    >>> import keras, numpy as np, tensorflow as tf
    >>> model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    >>> model.compile(optimizer="sgd", loss="mse")
    >>> _ = model(np.zeros((1, 3), "float32"))
    >>> data = tf.data.Dataset.from_tensor_slices(
    ...     (np.ones((8, 3), "float32"), np.zeros((8, 2), "float32"))).batch(4).repeat()
    >>> history = fit_with_custom_loop(model, data, epochs=2, steps_per_epoch=2)
    >>> len(history.history["loss"])
    2
    """
    strategy = tf.distribute.get_strategy()
    if getattr(model, "optimizer", None) is None:
        raise ValueError("`model` must be compiled (with an optimizer) before training.")
    if not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)
    if isinstance(dataset, tf.data.Dataset):
        dataset = strategy.experimental_distribute_dataset(dataset)
    _build_compiled_losses_and_metrics(model, dataset)
    history = keras.callbacks.History()
    callback_list = keras.callbacks.CallbackList(
        [*(callbacks or []), history], model=model, epochs=epochs, steps=steps_per_epoch, verbose=0
    )
    iterator = iter(dataset)

    @tf.function
    def train_step(iterator):
        outputs = strategy.run(model.train_step, args=(next(iterator),))
        return {
            name: strategy.experimental_local_results(value)[0] for name, value in outputs.items()
        }

    model.stop_training = False
    callback_list.on_train_begin()
    for epoch in range(initial_epoch, epochs):
        model.reset_metrics()
        callback_list.on_epoch_begin(epoch)
        logs = {}
        for step in range(steps_per_epoch):
            callback_list.on_train_batch_begin(step)
            logs = {name: float(value) for name, value in train_step(iterator).items()}
            callback_list.on_train_batch_end(step, logs)
            if model.stop_training:
                break
        epoch_logs = dict(logs)
        if validation_data is not None:
            loss, accuracy = loss_and_accuracy(model, validation_data)
            epoch_logs.update({"val_loss": loss, "val_accuracy": accuracy})
        callback_list.on_epoch_end(epoch, epoch_logs)
        if model.stop_training:
            break
    callback_list.on_train_end()
    return history


def _build_compiled_losses_and_metrics(model, dataset):
    """Creates the compiled loss and metric variables in cross-replica context.

    Variables cannot be created inside `strategy.run`; one eager pass over a batch
    (whose results are then reset) creates them under the strategy's scope.
    """
    strategy = tf.distribute.get_strategy()
    # The first replica's part of the first batch.
    batch = tf.nest.map_structure(
        lambda value: strategy.experimental_local_results(value)[0], next(iter(dataset))
    )
    inputs, labels = batch if isinstance(batch, tuple) else (batch, None)
    predictions = model(inputs, training=False)
    model.compute_loss(x=inputs, y=labels, y_pred=predictions, training=False)
    if labels is not None:
        model.compute_metrics(inputs, labels, predictions)
    model.reset_metrics()


def loss_and_accuracy(model, dataset):
    """Loss and accuracy of a classifier over `dataset`, computed on this worker alone.

    Needs no collective operation, so it runs under any strategy (Keras 3's
    `evaluate` does not run under `MultiWorkerMirroredStrategy`): the model's compiled
    loss averaged over samples and the top-1 accuracy of its logits.

    Args:
        model: a compiled classifier (images -> logits) with a loss such as
            `SparseCategoricalCrossentropy`.
        dataset: a `tf.data.Dataset` of `(images, labels)` batches.

    Returns:
        `(loss, accuracy)` as floats.

    Example:

    >>> import numpy as np, keras, tensorflow as tf
    >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2)])
    >>> model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    >>> data = tf.data.Dataset.from_tensor_slices((np.eye(2, dtype="float32"), [0, 1])).batch(2)
    >>> loss, accuracy = loss_and_accuracy(model, data)
    >>> 0.0 <= accuracy <= 1.0
    True
    """
    loss = getattr(model, "loss", None)
    loss_object = keras.losses.get(loss) if loss is not None else None
    if loss_object is None:
        raise ValueError("`model` must be compiled with a loss to be evaluated.")
    total_loss, correct, count = 0.0, 0, 0
    for images, labels in dataset:
        logits = model(images, training=False)
        labels = tf.reshape(tf.cast(labels, tf.int64), [-1])
        size = int(labels.shape[0])
        total_loss += float(loss_object(labels, logits)) * size
        correct += int(tf.reduce_sum(tf.cast(tf.argmax(logits, axis=-1) == labels, tf.int32)))
        count += size
    if count == 0:
        raise ValueError("`dataset` yielded no samples to evaluate.")
    return total_loss / count, correct / count
