"""Model selection on the validation split: keep the best epoch, optionally stop early.

`BestEpoch` is a Keras callback for classifier training with validation data. After
every epoch it compares the monitored validation figure with the best so far: the
validation loss by default (a proper scoring rule, which rewards calibrated
probabilities and rarely ties on a small split), or the validation accuracy
(`monitor="val_accuracy"`); the other figure breaks ties. An improvement writes the
weights to `<directory>/best.weights.h5` and the epoch to `<directory>/best.json`.
With `patience > 0` it stops training once `patience` epochs have passed without one.
`restore(model)` then loads the best epoch's weights. The same rule serves the
SupCon classifier and the cross-entropy baseline of an experiment, so both arms are
chosen alike, and never by the test split.

The state lives in files, not in the callback, so an interrupted run that resumes
(`supcon_tf.experiment.runs`) still knows its best epoch and its patience counter.

Example:

>>> import tempfile, keras, numpy as np
>>> x = np.random.default_rng(0).normal(size=(64, 4)).astype("float32")
>>> y = (x[:, 0] > 0).astype("int32")
>>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
>>> model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True),
...               metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")])
>>> best = BestEpoch(tempfile.mkdtemp(), patience=2, monitor="val_loss")
>>> history = model.fit(x, y, validation_data=(x, y), epochs=4, verbose=0, callbacks=[best])
>>> best.restore(model) in range(1, 5)  # the 1-based epoch whose weights are loaded
True
"""

import json
import math
import os

import keras
import tensorflow as tf

from supcon_tf import checks
from supcon_tf.files import is_file, join, read_text, write_atomically

MONITORS = ("val_loss", "val_accuracy")


class BestEpoch(keras.callbacks.Callback):
    """Saves the weights of the epoch with the best validation loss or accuracy.

    "Best" with `monitor="val_loss"`: the lowest `val_loss`; among equal losses, the
    highest `val_accuracy`. With `monitor="val_accuracy"`: the highest `val_accuracy`;
    among equal accuracies, the lowest `val_loss`. Among equal both, the earliest epoch.
    An epoch with a NaN loss is never the best.

    Args:
        directory: folder for `best.weights.h5` and `best.json` (created when needed); a
            local path or a `tf.io.gfile` URL (`gs://...`).
        patience: stop training after this many epochs without a better one (0: never).
        monitor: `"val_loss"` or `"val_accuracy"`.
    """

    def __init__(self, directory, patience=0, monitor="val_loss"):
        super().__init__()
        checks.integer("patience", patience, minimum=0)  # 0: no early stopping
        if monitor not in MONITORS:
            raise ValueError(f"Unknown `monitor` {monitor!r}. Expected one of {MONITORS}.")
        self.directory = os.fspath(directory)
        self.patience = patience
        self.monitor = monitor
        self.best = None
        self._first_epoch = None

    @property
    def weights_path(self):
        return join(self.directory, "best.weights.h5")

    @property
    def state_path(self):
        return join(self.directory, "best.json")

    def on_epoch_begin(self, epoch, logs=None):
        if self._first_epoch is None:
            self._first_epoch = epoch
            # A record of an epoch this fit runs again (a resumed run that restarts
            # before it) is stale; one of an earlier epoch is still the best so far.
            state = self._read_state()
            self.best = state if state and state["epoch"] < epoch else None
            # Records from before the monitor was recorded were chosen by accuracy.
            chosen_by = self.best and self.best.get("monitor", "val_accuracy")
            if chosen_by and chosen_by != self.monitor:
                raise ValueError(
                    f"{self.state_path} was chosen by {chosen_by} but this run monitors "
                    f"{self.monitor}; resume with the same setting."
                )

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        missing = [name for name in MONITORS if name not in logs]
        if missing:
            raise ValueError(
                f"BestEpoch needs validation data: the epoch logs lack {missing} "
                f"(got {sorted(logs)}); fit with validation_data."
            )
        accuracy, loss = float(logs["val_accuracy"]), float(logs["val_loss"])
        if self._is_better(accuracy, loss):
            self.best = {
                "epoch": epoch,
                "val_accuracy": accuracy,
                "val_loss": loss,
                "monitor": self.monitor,
            }
            self._write_best()
        if self.patience and epoch - self.best["epoch"] >= self.patience:
            self.model.stop_training = True

    def _is_better(self, accuracy, loss):
        if self.best is None:
            return True
        if math.isnan(loss):
            return False
        best_accuracy, best_loss = self.best["val_accuracy"], self.best["val_loss"]
        if math.isnan(best_loss):
            return True
        if self.monitor == "val_loss":
            return loss < best_loss or (loss == best_loss and accuracy > best_accuracy)
        return accuracy > best_accuracy or (accuracy == best_accuracy and loss < best_loss)

    def _write_best(self):
        # Weights first, then the record that points at them, each replaced atomically.
        tf.io.gfile.makedirs(self.directory)
        temporary = join(self.directory, "best.tmp.weights.h5")
        self.model.save_weights(temporary)
        tf.io.gfile.rename(temporary, self.weights_path, overwrite=True)
        write_atomically(self.state_path, json.dumps(self.best, indent=2) + "\n")

    def _read_state(self):
        if is_file(self.state_path) and is_file(self.weights_path):
            return json.loads(read_text(self.state_path))
        return None

    def restore(self, model):
        """Loads the best epoch's weights into `model`; returns that epoch (1-based).

        Returns `None` (and leaves `model` as it is) when no epoch was recorded.
        """
        state = self._read_state()
        if state is None:
            return None
        model.load_weights(self.weights_path)
        return state["epoch"] + 1
