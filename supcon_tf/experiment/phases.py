"""Training and evaluating one phase of an experiment, resumable from its run folder.

`fit_phase` trains a compiled model for a phase's epochs on shuffled, seeded batches
(`supcon_tf.experiment.inputs`) that are the same whether or not the run was
interrupted; it logs to `logs/<phase>/history.csv` (and TensorBoard when the package is
installed), saves the training state in `backup/<phase>`
(`supcon_tf.training.checkpoints.TrainingCheckpoint`) and resumes from there exactly, however
often the run was killed. It uses Keras' `fit`, or the custom loop of
`supcon_tf.training.distribute` under strategies where `fit` does not run. `evaluate_split`
measures a classifier on one split; `build_phase_optimizer` and `compile_classifier`
set a phase's optimizer and learning-rate schedule from a `TrainingRecipe`.

Each function takes the few typed values it needs (a `TrainingRecipe`, a batch size,
the backup interval), not the whole configuration.

Example:

>>> import tempfile, keras, numpy as np
>>> from supcon_tf.data import make_dataset
>>> from supcon_tf.experiment import ExperimentConfig, RunDirectory
>>> recipe = ExperimentConfig(batch_size=8).training_recipe()
>>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
>>> compile_classifier(model, recipe, epochs=2, num_examples=32)
>>> x, y = np.zeros((32, 4), "float32"), np.zeros(32, "int32")
>>> run = RunDirectory(tempfile.mkdtemp())
>>> def batches(end_epoch, first_epoch, step):
...     return make_dataset(x, y, batch_size=8, shuffle=True, drop_remainder=True,
...                         epochs=end_epoch, initial_epoch=first_epoch).skip(step)
>>> history, resumed_from_epoch = fit_phase(
...     model, run, "classifier", batches, num_examples=32, epochs=2, batch_size=8,
...     verbose=0)
>>> len(history["loss"]), resumed_from_epoch
(2, 0)
>>> run.resume_position("classifier", steps_per_epoch=4)  # finished: the last checkpoint
(2, 0)
"""

import importlib.util
import logging
import sys

import keras
import tensorflow as tf

from supcon_tf.errors import DataError
from supcon_tf.files import join
from supcon_tf.training.custom_loop import (
    fit_with_custom_loop,
    loss_and_accuracy,
    needs_custom_loop,
)
from supcon_tf.training.optimizers import build_optimizer
from supcon_tf.training.schedules import build_schedule


def fit_phase(
    model,
    run,
    phase,
    batches,
    num_examples,
    epochs,
    batch_size,
    backup_steps=0,
    verbose=1,
    validation_data=None,
    callbacks=(),
    should_stop=None,
):
    """Fits `model` for `phase`, resuming exactly from the run folder's last checkpoint.

    The checkpoint (`run.checkpoint`) restores weights, optimizer and random-generator
    states and gives the position `(epoch, step)`; the batches restart there
    (`training_batches`). A run resumed mid-epoch first finishes that epoch, so every
    logged epoch is a whole one.

    Args:
        model: a compiled Keras model.
        run: the `supcon_tf.experiment.RunDirectory`.
        phase: the phase name (its folders in the run).
        batches: `batches(end_epoch, first_epoch, step)` returns the training batches
            from `(first_epoch, step)` to the end of epoch `end_epoch - 1` (a
            `tf.data.Dataset`, or one the strategy already distributed); see
            `supcon_tf.experiment.inputs`.
        num_examples: training examples per epoch (`num_examples // batch_size` steps).
        epochs: the phase's epochs.
        batch_size: the global batch size.
        backup_steps: back up every this many steps (0: at each epoch's end).
        verbose: 0 silent, 1 progress bars on a terminal (one line per epoch when
            standard output is not one), 2 one line per epoch.
        validation_data: optional dataset of `(images, labels)` monitored each epoch.
        callbacks: extra callbacks; they run before the loggers, which see their logs.
        should_stop: optional callable; True saves at the next step and raises
            `supcon_tf.training.checkpoints.StopRequested` (see `stop_on_sigterm`).

    Returns:
        `(history, initial_epoch)`: the metrics of the epochs run now by name, and the
        epoch this call started at (0 for a fresh phase).
    """
    steps_per_epoch = num_examples // batch_size
    if steps_per_epoch < 1:
        raise DataError(
            f"The batch size {batch_size} exceeds the {num_examples} training images; "
            "lower --batch_size (--classifier_batch_size for the classifier stage)."
        )
    checkpoint = run.checkpoint(phase, steps_per_epoch, epochs, backup_steps, should_stop)
    initial_epoch, steps_done = checkpoint.restore(model)
    if initial_epoch >= epochs:
        return {}, initial_epoch
    custom_loop = needs_custom_loop(tf.distribute.get_strategy())
    callbacks = [
        *callbacks,
        *_phase_callbacks(run, phase, checkpoint, tensorboard=not custom_loop),
    ]
    # (first epoch, end epoch, steps per epoch, position): the rest of an interrupted
    # epoch, then whole epochs.
    segments = []
    if steps_done:
        segments.append((initial_epoch, initial_epoch + 1, steps_per_epoch - steps_done))
    first_whole_epoch = initial_epoch + (1 if steps_done else 0)
    if first_whole_epoch < epochs:
        segments.append((first_whole_epoch, epochs, steps_per_epoch))
    history = {}
    for first_epoch, end_epoch, steps in segments:
        step = steps_done if first_epoch == initial_epoch else 0
        stream = batches(end_epoch, first_epoch, step)
        result = _fit(
            model, stream, first_epoch, end_epoch, steps, validation_data, callbacks, verbose
        )
        for key, values in result.history.items():
            history.setdefault(key, []).extend(float(value) for value in values)
        if model.stop_training:  # a callback ended the phase early (early stopping)
            break
    return history, initial_epoch


def progress_mode(verbose, stream=None):
    """Keras' `verbose` for `verbose`: progress bars (1) only on a terminal, else lines (2).

    A log file or a pipe gets one line per epoch instead of the ANSI codes of bars.

    Example:

    >>> import io
    >>> progress_mode(1, io.StringIO()), progress_mode(0, io.StringIO())
    (2, 0)
    """
    stream = sys.stdout if stream is None else stream
    if verbose == 1 and not (hasattr(stream, "isatty") and stream.isatty()):
        return 2
    return verbose


def _fit(model, stream, first_epoch, end_epoch, steps, validation_data, callbacks, verbose):
    """Epochs `first_epoch .. end_epoch - 1` of `steps` batches with Keras' `fit` or the custom loop."""
    # Keras 3's fit does not run under MultiWorkerMirroredStrategy (#20585).
    if needs_custom_loop(tf.distribute.get_strategy()):
        return fit_with_custom_loop(
            model,
            stream,
            end_epoch,
            steps,
            callbacks=callbacks,
            initial_epoch=first_epoch,
            validation_data=validation_data,
        )
    return model.fit(
        stream,
        epochs=end_epoch,
        initial_epoch=first_epoch,
        steps_per_epoch=steps,
        validation_data=validation_data,
        callbacks=callbacks,
        shuffle=False,
        verbose=progress_mode(verbose),
    )


def _phase_callbacks(run, phase, checkpoint, tensorboard):
    """The log and checkpoint callbacks of a phase: an epoch's log row precedes its checkpoint."""
    logs = run.phase_paths(phase).logs
    tf.io.gfile.makedirs(logs)
    callbacks = [_GFileCSVLogger(join(logs, "history.csv"), append=True), checkpoint]
    if tensorboard and _tensorboard_available():
        callbacks.append(keras.callbacks.TensorBoard(logs))
    return callbacks


class _GFileCSVLogger(keras.callbacks.CSVLogger):
    """Keras' `CSVLogger`, which also closes a `gs://` (`tf.io.gfile`) file at the end of `fit`.

    Keras opens a `scheme://` path as a `tf.io.gfile.GFile`, which has no `closed`
    attribute, so its `on_train_end` fails there; this one closes whatever it opened.
    """

    def on_train_end(self, logs=None):
        if self.csv_file is not None:
            self.csv_file.close()
            self.csv_file = None


def _tensorboard_available():
    """TensorBoard logging needs the `tensorboard` package (a TensorFlow extra)."""
    if importlib.util.find_spec("tensorboard") is None:
        logging.warning(
            "The tensorboard package is not installed: logging metrics to "
            "logs/<phase>/history.csv only (pip install tensorboard for TensorBoard logs)."
        )
        return False
    return True


def evaluate_split(model, dataset):
    """`(loss, accuracy)` of a compiled classifier on a dataset of `(images, labels)`.

    `(None, None)` when `dataset` is `None` (an empty split).
    """
    if dataset is None:
        return None, None
    if needs_custom_loop(tf.distribute.get_strategy()):
        return loss_and_accuracy(model, dataset)
    loss, accuracy = model.evaluate(dataset, verbose=0, return_dict=False)
    return float(loss), float(accuracy)


def build_phase_optimizer(recipe, epochs, num_examples):
    """The phase's optimizer, its learning rate following `recipe.lr_schedule`.

    Args:
        recipe: a `supcon_tf.experiment.TrainingRecipe`.
        epochs: the phase's epochs.
        num_examples: training examples per epoch.
    """
    steps_per_epoch = max(num_examples // recipe.batch_size, 1)
    learning_rate = build_schedule(
        recipe.lr_schedule,
        recipe.learning_rate,
        total_steps=epochs * steps_per_epoch,
        warmup_steps=min(recipe.warmup_epochs, epochs) * steps_per_epoch,
        final_learning_rate=recipe.final_learning_rate,
    )
    return build_optimizer(
        recipe.optimizer,
        learning_rate=learning_rate,
        weight_decay=recipe.weight_decay,
        momentum=recipe.momentum,
    )


def compile_classifier(model, recipe, epochs, num_examples):
    """Compiles a logits classifier with cross-entropy, accuracy and the phase's optimizer."""
    model.compile(
        optimizer=build_phase_optimizer(recipe, epochs, num_examples),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
    )
