"""Tests of supcon_tf.training.selection: the best validation epoch is kept, restored, and resumed."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from supcon_tf.files import read_text
from supcon_tf.training.selection import BestEpoch


class ScriptedValidation(keras.callbacks.Callback):
    """Replaces the epoch's validation metrics with scripted values and keeps the weights.

    It runs before `BestEpoch`, which therefore sees the scripted values; the weights
    recorded here are the ones each epoch ended with.
    """

    def __init__(self, accuracies, losses):
        super().__init__()
        self.accuracies, self.losses = accuracies, losses
        self.weights_by_epoch = {}

    def on_epoch_end(self, epoch, logs=None):
        logs["val_accuracy"] = self.accuracies[epoch]
        logs["val_loss"] = self.losses[epoch]
        self.weights_by_epoch[epoch] = [np.array(weight) for weight in self.model.get_weights()]


def _model_and_data(seed=0):
    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(64, 4)).astype("float32")
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype("int32")
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    model.compile(
        keras.optimizers.SGD(0.1),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
    )
    return model, x, y


def _fit(model, x, y, callbacks, epochs, initial_epoch=0):
    return model.fit(
        x,
        y,
        validation_data=(x, y),
        epochs=epochs,
        initial_epoch=initial_epoch,
        batch_size=16,
        shuffle=False,
        verbose=0,
        callbacks=callbacks,
    )


class TestBestEpoch:
    @pytest.mark.parametrize("monitor", ["val_loss", "val_accuracy"])
    def test_restore_returns_the_best_validation_weights(self, tmp_path, monitor):
        # Epoch 2 (1-based) has the best accuracy and loss; epoch 4 ties its accuracy
        # with a higher loss.
        scripted = ScriptedValidation([0.5, 0.9, 0.7, 0.9, 0.6], [0.9, 0.3, 0.5, 0.4, 0.8])
        best = BestEpoch(tmp_path, monitor=monitor)
        model, x, y = _model_and_data()
        _fit(model, x, y, [scripted, best], epochs=5)
        last = model.get_weights()
        assert best.restore(model) == 2
        for restored, expected in zip(
            model.get_weights(), scripted.weights_by_epoch[1], strict=True
        ):
            np.testing.assert_array_equal(restored, expected)
        assert not np.array_equal(last[0], scripted.weights_by_epoch[1][0])
        state = json.loads((tmp_path / "best.json").read_text())
        assert state == {"epoch": 1, "val_accuracy": 0.9, "val_loss": 0.3, "monitor": monitor}

    def test_equal_accuracy_lower_loss_wins(self, tmp_path):
        scripted = ScriptedValidation([0.8, 0.8, 0.8], [0.5, 0.2, 0.2])
        best = BestEpoch(tmp_path, monitor="val_accuracy")
        model, x, y = _model_and_data()
        _fit(model, x, y, [scripted, best], epochs=3)
        assert best.restore(model) == 2  # epoch 3 ties epoch 2 exactly: the earlier stays

    def test_equal_loss_higher_accuracy_wins(self, tmp_path):
        scripted = ScriptedValidation([0.7, 0.8, 0.8], [0.4, 0.4, 0.4])
        best = BestEpoch(tmp_path, monitor="val_loss")
        model, x, y = _model_and_data()
        _fit(model, x, y, [scripted, best], epochs=3)
        assert best.restore(model) == 2

    @pytest.mark.parametrize("monitor, expected", [("val_loss", 3), ("val_accuracy", 1)])
    def test_the_monitor_decides_when_loss_and_accuracy_disagree(self, tmp_path, monitor, expected):
        # Epoch 1: one validation image more, but an over- or under-confident head.
        scripted = ScriptedValidation([0.90, 0.88, 0.89], [0.60, 0.35, 0.30])
        best = BestEpoch(tmp_path, monitor=monitor)
        model, x, y = _model_and_data()
        _fit(model, x, y, [scripted, best], epochs=3)
        assert best.restore(model) == expected

    def test_the_default_monitor_is_the_validation_loss(self, tmp_path):
        assert BestEpoch(tmp_path).monitor == "val_loss"

    @pytest.mark.parametrize("monitor", ["val_loss", "val_accuracy"])
    def test_an_epoch_with_a_nan_loss_is_never_the_best(self, tmp_path, monitor):
        scripted = ScriptedValidation([0.9, 0.5, 0.6], [float("nan"), 0.7, float("nan")])
        best = BestEpoch(tmp_path, monitor=monitor)
        model, x, y = _model_and_data()
        _fit(model, x, y, [scripted, best], epochs=3)
        assert best.restore(model) == 2

    @pytest.mark.parametrize("monitor, pick", [("val_loss", min), ("val_accuracy", max)])
    def test_the_restored_model_has_the_best_real_validation_figure(self, tmp_path, monitor, pick):
        best = BestEpoch(tmp_path, monitor=monitor)
        model, x, y = _model_and_data(seed=1)
        history = _fit(model, x, y, [best], epochs=6).history
        epoch = best.restore(model)
        loss, accuracy = model.evaluate(x, y, verbose=0)
        restored = {"val_loss": loss, "val_accuracy": accuracy}[monitor]
        assert restored == pytest.approx(pick(history[monitor]), rel=1e-6)
        assert history[monitor][epoch - 1] == pick(history[monitor])

    def test_early_stopping_after_patience_epochs_without_improvement(self, tmp_path):
        scripted = ScriptedValidation([0.5, 0.9, 0.7, 0.8, 0.95, 0.99], [1.0] * 6)
        best = BestEpoch(tmp_path, patience=2, monitor="val_accuracy")
        model, x, y = _model_and_data()
        history = _fit(model, x, y, [scripted, best], epochs=6)
        assert len(history.history["loss"]) == 4  # epochs 3 and 4 do not beat epoch 2
        assert best.restore(model) == 2

    def test_a_resumed_fit_keeps_the_earlier_best(self, tmp_path):
        accuracies, losses = [0.5, 0.9, 0.7, 0.8, 0.6, 0.95, 0.99], [1.0] * 7
        model, x, y = _model_and_data()
        first = ScriptedValidation(accuracies, losses)
        _fit(
            model, x, y, [first, BestEpoch(tmp_path, patience=3, monitor="val_accuracy")], epochs=3
        )
        # A new process resumes at epoch 4 (index 3): the best (epoch 2) and the
        # patience count carry over, so epoch 5 is the third without improvement (a
        # fresh count would take epoch 4 as the best and run to epoch 7).
        resumed = BestEpoch(tmp_path, patience=3, monitor="val_accuracy")
        history = _fit(
            model, x, y, [ScriptedValidation(accuracies, losses), resumed], 7, initial_epoch=3
        )
        assert len(history.history["loss"]) == 2
        assert resumed.restore(model) == 2
        for restored, expected in zip(model.get_weights(), first.weights_by_epoch[1], strict=True):
            np.testing.assert_array_equal(restored, expected)

    def test_a_record_of_an_epoch_run_again_is_discarded(self, tmp_path):
        model, x, y = _model_and_data()
        _fit(model, x, y, [ScriptedValidation([0.99], [0.1]), BestEpoch(tmp_path)], epochs=1)
        # The run restarts from epoch 1 (its backup was lost): the old record is stale.
        best = BestEpoch(tmp_path)
        _fit(model, x, y, [ScriptedValidation([0.5, 0.6], [0.5, 0.5]), best], epochs=2)
        assert best.restore(model) == 2

    def test_nothing_recorded(self, tmp_path):
        model, _, _ = _model_and_data()
        before = model.get_weights()
        assert BestEpoch(tmp_path / "empty").restore(model) is None
        np.testing.assert_array_equal(model.get_weights()[0], before[0])

    def test_needs_validation_data(self, tmp_path):
        model, x, y = _model_and_data()
        with pytest.raises(ValueError, match="needs validation data"):
            model.fit(x, y, epochs=1, verbose=0, callbacks=[BestEpoch(tmp_path)])

    def test_a_resume_with_another_monitor_is_refused(self, tmp_path):
        model, x, y = _model_and_data()
        scripted = ScriptedValidation([0.5, 0.9, 0.7], [0.9, 0.3, 0.5])
        _fit(model, x, y, [scripted, BestEpoch(tmp_path, monitor="val_accuracy")], epochs=2)
        with pytest.raises(ValueError, match="chosen by val_accuracy but this run monitors"):
            _fit(model, x, y, [scripted, BestEpoch(tmp_path)], epochs=3, initial_epoch=2)

    def test_unknown_monitor(self, tmp_path):
        with pytest.raises(ValueError, match="Unknown `monitor` 'accuracy'"):
            BestEpoch(tmp_path, monitor="accuracy")

    @pytest.mark.parametrize("patience", [-1, 1.5, True, "2"])
    def test_bad_patience(self, tmp_path, patience):
        with pytest.raises(ValueError, match="`patience` must be an integer >= 0"):
            BestEpoch(tmp_path, patience=patience)

    def test_on_a_gfile_folder(self, ram_dir):
        # ram:// (TensorFlow's in-memory file system) stands in for gs://.
        scripted = ScriptedValidation([0.5, 0.9, 0.7], [0.9, 0.3, 0.5])
        model, x, y = _model_and_data()
        _fit(model, x, y, [scripted, BestEpoch(f"{ram_dir}/best", patience=1)], epochs=3)
        assert json.loads(read_text(f"{ram_dir}/best/best.json"))["epoch"] == 1
        assert sorted(tf.io.gfile.listdir(f"{ram_dir}/best")) == ["best.json", "best.weights.h5"]
        assert BestEpoch(f"{ram_dir}/best").restore(model) == 2
        for restored, expected in zip(
            model.get_weights(), scripted.weights_by_epoch[1], strict=True
        ):
            np.testing.assert_array_equal(restored, expected)
