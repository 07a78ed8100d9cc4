"""Training and evaluating one phase of an experiment, resumable from its run folder.

`fit_phase` trains a compiled model for a phase's epochs on shuffled, seeded batches
(`training_batches` for data in RAM, `supcon_tf.inputs` for streamed data) that are the
same whether or not the run was interrupted; it logs
to `logs/<phase>/history.csv` (and TensorBoard when the package is installed), saves
the training state in `backup/<phase>` (`supcon_tf.checkpoints.TrainingCheckpoint`) and
resumes from there exactly, however often the run was killed. It uses Keras' `fit`, or the
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
>>> def batches(end_epoch, first_epoch, step):
...     return training_batches(x, y, config, end_epoch, (first_epoch, step))
>>> history, resumed_from_epoch = fit_phase(
...     model, config, run, "classifier", batches, num_examples=32, epochs=2)
>>> len(history["loss"]), resumed_from_epoch
(2, 0)
>>> run.resume_position("classifier", steps_per_epoch=4)  # finished: the last checkpoint
(2, 0)
"""

import importlib.util
import logging

import keras
import tensorflow as tf

from supcon_tf.data import make_dataset
from supcon_tf.distribute import evaluate_classifier, fit_with_custom_loop, needs_custom_loop
from supcon_tf.files import join
from supcon_tf.optimizers import build_optimizer
from supcon_tf.schedules import build_schedule


def fit_phase(
    model,
    config,
    run,
    phase,
    batches,
    num_examples,
    epochs,
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
        config: the `ExperimentConfig`.
        run: the `supcon_tf.runs.RunDirectory`.
        phase: the phase name (its folders in the run).
        batches: `batches(end_epoch, first_epoch, step)` returns the training batches
            from `(first_epoch, step)` to the end of epoch `end_epoch - 1` (a
            `tf.data.Dataset`, or one the strategy already distributed); see
            `training_batches` for data in RAM and `supcon_tf.inputs` for streams.
        num_examples: training examples per epoch (`num_examples // batch_size` steps).
        epochs: the phase's epochs.
        validation_data: optional dataset of `(images, labels)` monitored each epoch.
        callbacks: extra callbacks; they run before the loggers, which see their logs.
        should_stop: optional callable; True saves at the next step and raises
            `supcon_tf.checkpoints.StopRequested` (see `supcon_tf.runs.stop_on_sigterm`).

    Returns:
        `(history, initial_epoch)`: the metrics of the epochs run now by name, and the
        epoch this call started at (0 for a fresh phase).
    """
    steps_per_epoch = num_examples // config.batch_size
    if steps_per_epoch < 1:
        raise ValueError(
            f"The batch size {config.batch_size} exceeds the {num_examples} training images; "
            "lower --batch_size (--classifier_batch_size for the classifier stage)."
        )
    checkpoint = run.checkpoint(phase, steps_per_epoch, epochs, config.backup_steps, should_stop)
    initial_epoch, steps_done = checkpoint.restore(model)
    if initial_epoch >= epochs:
        return {}, initial_epoch
    custom_loop = needs_custom_loop(tf.distribute.get_strategy())
    callbacks = [
        *callbacks,
        *_phase_callbacks(config, run, phase, checkpoint, tensorboard=not custom_loop),
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
            model, config, stream, first_epoch, end_epoch, steps, validation_data, callbacks
        )
        for key, values in result.history.items():
            history.setdefault(key, []).extend(float(value) for value in values)
        if model.stop_training:  # a callback ended the phase early (early stopping)
            break
    return history, initial_epoch


def training_batches(x, y, config, epochs, position=(0, 0), augmenter=None):
    """The shuffled training batches from `position` to the end of epoch `epochs - 1`.

    Epoch `e` is shuffled by a seed derived from `(config.seed, e)`, so the batches
    from a position are those an uninterrupted run sees there: a run that resumes at
    `(epoch, step)` (`supcon_tf.checkpoints.TrainingCheckpoint.restore`) starts the
    stream with this.

    Example:

    >>> import numpy as np
    >>> from supcon_tf.experiment import ExperimentConfig
    >>> config = ExperimentConfig(batch_size=2)
    >>> x = np.arange(6, dtype="float32").reshape(6, 1)
    >>> whole = [b.numpy().ravel().tolist() for b in training_batches(x, None, config, 2)]
    >>> resumed = training_batches(x, None, config, 2, position=(1, 1))
    >>> [b.numpy().ravel().tolist() for b in resumed] == whole[4:]
    True
    """
    epoch, step = position
    stream = make_dataset(
        x,
        y,
        batch_size=config.batch_size,
        shuffle=True,
        seed=config.seed,
        augment=augmenter,
        drop_remainder=True,
        epochs=epochs,
        initial_epoch=epoch,
    )
    return stream.skip(step)


def _fit(model, config, stream, first_epoch, end_epoch, steps, validation_data, callbacks):
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
        verbose=config.verbose,
    )


def _phase_callbacks(config, run, phase, checkpoint, tensorboard):
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
