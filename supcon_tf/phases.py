"""Training and evaluating one phase of an experiment, resumable from its run folder.

`fit_phase` trains a compiled model for a phase's epochs on shuffled, seeded batches
that are the same whether or not the run was interrupted; it logs to
`logs/<phase>/history.csv` (and TensorBoard when the package is installed), backs the
state up in `backup/<phase>` and resumes from there. It uses Keras' `fit`, or the
custom loop of `supcon_tf.distribute` under strategies where `fit` does not run.
`evaluate_split` measures a classifier on one split; `build_phase_optimizer` and
`compile_classifier` set a phase's optimizer and learning-rate schedule.

`config` is the experiment's `ExperimentConfig`; these functions read its
`batch_size`, `seed`, `backup_steps`, `verbose` and optimizer fields.

Example:

>>> import tempfile, keras, numpy as np
>>> from supcon_tf.experiment import ExperimentConfig
>>> from supcon_tf.runs import RunDirectory
>>> config = ExperimentConfig(batch_size=8, verbose=0)
>>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
>>> compile_classifier(model, config, epochs=2, num_examples=32)
>>> x, y = np.zeros((32, 4), "float32"), np.zeros(32, "int32")
>>> run = RunDirectory(tempfile.mkdtemp())
>>> history, resumed_from_epoch = fit_phase(model, config, run, "classifier", x, y, epochs=2)
>>> len(history["loss"]), resumed_from_epoch
(2, 0)
>>> run.resume_position("classifier", config.backup_steps)  # finished: backup removed
(0, 0)
"""

import importlib.util
import logging

import keras
import tensorflow as tf

from supcon_tf.data import make_dataset
from supcon_tf.distribute import evaluate_classifier, fit_with_custom_loop, needs_custom_loop
from supcon_tf.optimizers import build_optimizer
from supcon_tf.schedules import build_schedule


def fit_phase(
    model, config, run, phase, x, y, epochs, augmenter=None, validation=None, callbacks=()
):
    """Fits `model` for `phase`, resuming from the run folder's backup.

    Args:
        model: a compiled Keras model.
        config: the `ExperimentConfig`.
        run: the `supcon_tf.runs.RunDirectory`.
        phase: the phase name (its folders in the run).
        x, y: training images and labels (`y=None` for label-free pretraining).
        epochs: the phase's epochs.
        augmenter: optional augmentation of the training batches.
        validation: optional `(x, y)` monitored each epoch.
        callbacks: extra callbacks; they run before the loggers, which see their logs.

    Returns:
        `(history, initial_epoch)`: the metrics of the epochs run now by name, and the
        epoch this call started at (0 for a fresh phase).
    """
    steps_per_epoch = len(x) // config.batch_size
    if steps_per_epoch < 1:
        raise ValueError(
            f"The batch size {config.batch_size} exceeds the {len(x)} training images; "
            "lower --batch_size."
        )
    initial_epoch, steps_done = run.resume_position(phase, config.backup_steps)
    initial_epoch = min(initial_epoch, epochs)
    if initial_epoch >= epochs:
        return {}, initial_epoch
    stream = make_dataset(
        x,
        y,
        batch_size=config.batch_size,
        shuffle=True,
        seed=config.seed,
        augment=augmenter,
        drop_remainder=True,
        epochs=epochs,
        initial_epoch=initial_epoch,
    )
    # Resuming mid-epoch: skip the batches done before the backup; the backup
    # callback ends training at the uninterrupted run's last step.
    stream = stream.skip(steps_done)
    validation_data = None
    if validation is not None and len(validation[0]):
        validation_data = make_dataset(*validation, batch_size=config.batch_size)
    custom_loop = needs_custom_loop(tf.distribute.get_strategy())
    callbacks = [*callbacks, *_phase_callbacks(config, run, phase, tensorboard=not custom_loop)]
    # Keras 3's fit does not run under MultiWorkerMirroredStrategy (#20585).
    if custom_loop:
        result = fit_with_custom_loop(
            model,
            stream,
            epochs,
            steps_per_epoch,
            callbacks=callbacks,
            initial_epoch=initial_epoch,
            validation_data=validation_data,
        )
    else:
        result = model.fit(
            stream,
            epochs=epochs,
            steps_per_epoch=steps_per_epoch,
            validation_data=validation_data,
            callbacks=callbacks,
            shuffle=False,
            verbose=config.verbose,
        )
    history = {key: [float(value) for value in values] for key, values in result.history.items()}
    return history, initial_epoch


def _phase_callbacks(config, run, phase, tensorboard):
    """The log and backup callbacks of a phase: an epoch's log row precedes its backup."""
    logs = run.phase_paths(phase).logs
    logs.mkdir(parents=True, exist_ok=True)
    callbacks = [
        keras.callbacks.CSVLogger(str(logs / "history.csv"), append=True),
        run.backup_callback(phase, config.backup_steps),
    ]
    if tensorboard and _tensorboard_available():
        callbacks.append(keras.callbacks.TensorBoard(str(logs)))
    return callbacks


def _tensorboard_available():
    """TensorBoard logging needs the `tensorboard` package (a TensorFlow extra)."""
    if importlib.util.find_spec("tensorboard") is None:
        logging.warning(
            "The tensorboard package is not installed: logging metrics to "
            "logs/<phase>/history.csv only (pip install tensorboard for TensorBoard logs)."
        )
        return False
    return True


def evaluate_split(model, config, x, y):
    """`(loss, accuracy)` of a compiled classifier on `(x, y)`; `(None, None)` if empty."""
    if len(x) == 0:
        return None, None
    dataset = make_dataset(x, y, batch_size=config.batch_size)
    if needs_custom_loop(tf.distribute.get_strategy()):
        return evaluate_classifier(model, dataset)
    loss, accuracy = model.evaluate(dataset, verbose=0, return_dict=False)
    return float(loss), float(accuracy)


def build_phase_optimizer(config, epochs, num_examples):
    """The phase's optimizer, its learning rate following `config.lr_schedule`."""
    steps_per_epoch = max(num_examples // config.batch_size, 1)
    peak = config.scaled_learning_rate()
    learning_rate = build_schedule(
        config.lr_schedule,
        peak,
        total_steps=epochs * steps_per_epoch,
        warmup_steps=min(config.warmup_epochs, epochs) * steps_per_epoch,
        final_learning_rate=config.final_learning_rate * peak / config.learning_rate,
    )
    return build_optimizer(
        config.optimizer,
        learning_rate=learning_rate,
        weight_decay=config.weight_decay,
        momentum=config.momentum,
    )


def compile_classifier(model, config, epochs, num_examples):
    """Compiles a logits classifier with cross-entropy, accuracy and the phase's optimizer."""
    model.compile(
        optimizer=build_phase_optimizer(config, epochs, num_examples),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
    )
