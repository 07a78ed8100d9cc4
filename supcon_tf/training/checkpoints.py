"""Training-state checkpoints that survive any number of kills, and the position they resume at.

`TrainingCheckpoint` is a Keras callback that saves the whole state of a training run
(every model variable, including BatchNorm statistics and the random-generator states
of augmentation and dropout layers, every optimizer variable, and the number of
batches consumed) into one file, and restores the newest readable one:

    checkpoint = TrainingCheckpoint("backup/", steps_per_epoch=100, epochs=10, save_every=25)
    epoch, step = checkpoint.restore(model)          # (0, 0) on a fresh start
    dataset = batches_from(epoch, step)              # the stream, rebuilt at that position
    model.fit(dataset, ..., callbacks=[checkpoint])

One source of truth for the position: the number of batches the run has consumed,
counted by the callback and saved with the weights. `optimizer.iterations` is not
used: a `LossScaleOptimizer` does not count the steps it skips for non-finite
gradients, so it falls behind the data. `training_position` turns the count into
`(epoch, step)`; whoever builds the data stream starts it there.

Every write is atomic: the file is written under a temporary name and renamed (with
`tf.io.gfile`, so `gs://` folders work), so a process killed while saving leaves the
previous checkpoint intact. The last `keep` checkpoints are kept; one that cannot be
read (truncated, corrupt, written for another model) is skipped with a warning in
the log and the one before it is used. A state with a non-finite loss or weights is
never saved: training stops with `NonFiniteTrainingError`, naming the phase, epoch
and step, and the last good checkpoint stays.

Example:

>>> import tempfile, keras, numpy as np
>>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
>>> model.compile(optimizer="sgd", loss="mse")
>>> folder = tempfile.mkdtemp()
>>> checkpoint = TrainingCheckpoint(folder, steps_per_epoch=4, epochs=2, save_every=3)
>>> checkpoint.restore(model)
(0, 0)
>>> _ = model.fit(np.ones((8, 2)), np.ones(8), batch_size=2, epochs=2,
...               callbacks=[checkpoint], verbose=0)
>>> TrainingCheckpoint(folder, steps_per_epoch=4, epochs=2).restore(model)  # finished
(2, 0)
"""

import io
import json
import logging
import math
import os
import re

import keras
import numpy as np
import tensorflow as tf

from supcon_tf import checks
from supcon_tf.files import write_atomically

FORMAT_VERSION = 1
_NAME = re.compile(r"^ckpt-(\d+)\.npz$")


class NonFiniteTrainingError(FloatingPointError):
    """A NaN or Inf in the loss or the weights stopped training."""


class StopRequested(Exception):  # noqa: N818 -- a request, not a failure
    """Training stopped on request (SIGTERM) after saving a checkpoint; rerun to resume."""


def training_position(global_step, steps_per_epoch):
    """`(epoch, step in the epoch)` after `global_step` batches of `steps_per_epoch` each.

    Example:

    >>> training_position(23, steps_per_epoch=10)
    (2, 3)
    """
    if steps_per_epoch < 1:
        raise ValueError(f"`steps_per_epoch` must be a positive integer, got {steps_per_epoch!r}.")
    return divmod(int(global_step), int(steps_per_epoch))


class TrainingCheckpoint(keras.callbacks.Callback):
    """Saves and restores the complete training state of one `fit`, exactly, however often killed.

    Call `restore(model)` before training, start the data stream at the position it
    returns, then train with the callback. It saves every `save_every` batches (not
    counting an epoch's last) and at the end of every epoch.

    Args:
        directory: folder of the checkpoints (`ckpt-<batches done>.npz`; nothing else
            should write there).
        steps_per_epoch: batches per epoch (turns the batch count into a position).
        epochs: the run's epochs (a stop request at the end of the last one only saves).
        save_every: save every this many batches too (0: at the ends of epochs only).
        keep: checkpoints kept (at least 2, so that a damaged newest one has a fallback).
        name: what the run is called in messages (e.g. the phase).
        should_stop: optional callable; when it returns True, the state is saved at the
            next batch boundary and `StopRequested` is raised.
    """

    def __init__(
        self,
        directory,
        steps_per_epoch,
        epochs,
        save_every=0,
        keep=2,
        name="training",
        should_stop=None,
    ):
        super().__init__()
        for argument, value, lowest in (
            ("steps_per_epoch", steps_per_epoch, 1),
            ("epochs", epochs, 1),
            ("save_every", save_every, 0),
            ("keep", keep, 2),
        ):
            checks.integer(argument, value, minimum=lowest)
        self.directory = str(directory)
        self.steps_per_epoch = steps_per_epoch
        self.total_steps = epochs * steps_per_epoch
        self.save_every = save_every
        self.keep = keep
        self.name = name
        self.should_stop = should_stop or (lambda: False)
        self.global_step = 0
        self.last_saved = None

    # Restoring ---------------------------------------------------------------------

    def restore(self, model):
        """Loads the newest readable checkpoint into `model`; returns `(epoch, step)` to resume at.

        `model` must be built and compiled; its optimizer is built here if needed.
        Checkpoints that cannot be read are skipped with a warning; without any, the
        model is left as it is and `(0, 0)` is returned.
        """
        if model.optimizer is not None and not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)
        variables = _state_variables(model)
        for path in self.checkpoint_paths():
            try:
                global_step, values = _read(path, self.steps_per_epoch, variables)
            except CheckpointError as error:
                logging.warning("%s: skipping checkpoint %s: %s", self.name, path, error)
                continue
            for variable, value in zip(variables, values, strict=True):
                variable.assign(value)
            self.global_step = global_step
            self.last_saved = path
            logging.info("%s: resuming from %s (%d batches done)", self.name, path, global_step)
            return training_position(global_step, self.steps_per_epoch)
        self.global_step = 0
        return 0, 0

    def checkpoint_paths(self):
        """The checkpoint files, newest first."""
        if not tf.io.gfile.isdir(self.directory):
            return []
        found = []
        for name in tf.io.gfile.listdir(self.directory):
            match = _NAME.match(name.rstrip("/"))
            if match:
                found.append((int(match.group(1)), os.path.join(self.directory, name)))
        return [path for _, path in sorted(found, reverse=True)]

    # Saving ------------------------------------------------------------------------

    def on_train_batch_end(self, batch, logs=None):
        self.global_step += 1
        self._check_finite((logs or {}).get("loss"))
        if self.global_step % self.steps_per_epoch == 0:
            return  # The epoch's end saves (after its log row and validation).
        if self.should_stop():
            self._save_and_stop()
        if self.save_every and self.global_step % self.save_every == 0:
            self.save()

    def on_epoch_end(self, epoch, logs=None):
        self.save()
        if self.should_stop() and self.global_step < self.total_steps:
            self._save_and_stop()

    def _save_and_stop(self):
        if self.last_saved is None or not self.last_saved.endswith(_file_name(self.global_step)):
            self.save()
        epoch, step = training_position(self.global_step, self.steps_per_epoch)
        raise StopRequested(
            f"{self.name}: stopped on request at epoch {epoch}, step {step}; the state is "
            f"saved in {self.last_saved}. Run the same command again to resume."
        )

    def save(self):
        """Writes the current state as `ckpt-<global step>.npz`; removes all but the last `keep`."""
        variables = _state_variables(self.model)
        values = [keras.ops.convert_to_numpy(variable) for variable in variables]
        self._check_finite_weights(variables, values)
        position = {
            "format": FORMAT_VERSION,
            "global_step": self.global_step,
            "steps_per_epoch": self.steps_per_epoch,
        }
        arrays = {f"v{index:05d}": value for index, value in enumerate(values)}
        arrays["position"] = np.frombuffer(json.dumps(position).encode(), dtype=np.uint8)
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        path = os.path.join(self.directory, _file_name(self.global_step))
        write_atomically(path, buffer.getvalue())
        self.last_saved = path
        for old in self.checkpoint_paths()[self.keep :]:
            tf.io.gfile.remove(old)

    def _check_finite(self, loss):
        if loss is None or math.isfinite(float(loss)):
            return
        self._stop_non_finite(f"the loss is {float(loss)}")

    def _check_finite_weights(self, variables, values):
        for variable, value in zip(variables, values, strict=True):
            if np.issubdtype(value.dtype, np.floating) and not np.isfinite(value).all():
                self._stop_non_finite(f"the variable {variable.path} holds NaN or Inf")

    def _stop_non_finite(self, what):
        # The batch that produced it (0-based epoch and step).
        epoch, step = training_position(self.global_step - 1, self.steps_per_epoch)
        kept = (
            f"the last good checkpoint is {self.last_saved}"
            if self.last_saved
            else "no checkpoint was saved before it"
        )
        raise NonFiniteTrainingError(
            f"{self.name}: {what} at epoch {epoch}, step {step} (0-based; batch "
            f"{self.global_step} of the phase); training stopped and {kept}. Lower the learning rate, check the "
            "inputs for NaN/Inf, or use gradient clipping."
        )


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used (truncated, corrupt, or for another model)."""


def _file_name(global_step):
    return f"ckpt-{global_step:09d}.npz"


def _state_variables(model):
    """Every variable of the training state: the model's (with RNG states) and the optimizer's."""
    optimizer_variables = list(model.optimizer.variables) if model.optimizer is not None else []
    return list(model.variables) + optimizer_variables


def latest_position(directory, steps_per_epoch):
    """`(epoch, step)` of the newest readable checkpoint in `directory`; `(0, 0)` if none.

    Example:

    >>> import tempfile
    >>> latest_position(tempfile.mkdtemp(), steps_per_epoch=10)
    (0, 0)
    """
    checkpoint = TrainingCheckpoint(directory, steps_per_epoch, epochs=1)
    for path in checkpoint.checkpoint_paths():
        try:
            global_step, _ = _read(path, steps_per_epoch)
        except CheckpointError as error:
            logging.warning("skipping checkpoint %s: %s", path, error)
            continue
        return training_position(global_step, steps_per_epoch)
    return 0, 0


def _read(path, steps_per_epoch, variables=None):
    """`(global_step, values)` of a checkpoint file, checked against `variables` if given."""
    try:
        with tf.io.gfile.GFile(path, "rb") as file:
            data = file.read()
        with np.load(io.BytesIO(data), allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
        position = json.loads(arrays.pop("position").tobytes().decode())
        version = position["format"]
        global_step = int(position["global_step"])
        saved_steps_per_epoch = int(position["steps_per_epoch"])
    except Exception as error:  # BadZipFile, EOFError, KeyError, JSON, CRC, ...
        raise CheckpointError(f"unreadable ({type(error).__name__}: {error})") from error
    if version != FORMAT_VERSION:
        raise CheckpointError(f"format {version!r}, this version reads {FORMAT_VERSION}")
    if saved_steps_per_epoch != steps_per_epoch:
        raise CheckpointError(
            f"written with {saved_steps_per_epoch} steps per epoch, this run has "
            f"{steps_per_epoch} (another batch size or dataset)"
        )
    if variables is None:
        return global_step, None
    values = [arrays.get(f"v{index:05d}") for index in range(len(variables))]
    if len(arrays) != len(variables) or any(value is None for value in values):
        raise CheckpointError(f"holds {len(arrays)} variables, the model has {len(variables)}")
    for variable, value in zip(variables, values, strict=True):
        if tuple(value.shape) != tuple(variable.shape):
            raise CheckpointError(
                f"{variable.path} has shape {tuple(variable.shape)}, the checkpoint "
                f"{tuple(value.shape)}"
            )
    return global_step, values
