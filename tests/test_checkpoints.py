"""Tests of supcon_tf.training.checkpoints: exact training state, atomic writes, fallback, NaN stop."""

import logging
import os
import uuid

import keras
import numpy as np
import pytest
import tensorflow as tf

from supcon_tf.training.checkpoints import (
    NonFiniteTrainingError,
    StopRequested,
    TrainingCheckpoint,
    latest_position,
    training_position,
    write_atomically,
)

STEPS, BATCH = 5, 4


def _model(optimizer=None):
    keras.utils.set_random_seed(7)
    model = keras.Sequential(
        [
            keras.Input((3,)),
            keras.layers.Dense(6, activation="relu"),
            keras.layers.BatchNormalization(),
            keras.layers.Dropout(0.3),
            keras.layers.Dense(1),
        ]
    )
    model.compile(optimizer=optimizer or keras.optimizers.SGD(0.05, momentum=0.9), loss="mse")
    model.build((None, 3))
    return model


def _data(epochs=2):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(STEPS * BATCH, 3)).astype("float32")
    y = (x @ np.array([1.0, -2.0, 0.5]) + 0.1).astype("float32")
    return x, y


def _fit_from(model, checkpoint, position, epochs, x, y, callbacks=()):
    """Trains from `position` on unshuffled batches (the rest of its epoch, then whole ones)."""
    epoch, step = position
    segments = [(epoch, epoch + 1, STEPS - step, step)] if step else []
    segments.append((epoch + (1 if step else 0), epochs, STEPS, 0))
    for first_epoch, end_epoch, steps, first_step in segments:
        if first_epoch >= end_epoch:
            continue
        start = first_step * BATCH
        repeats = end_epoch - first_epoch
        xs = np.concatenate([x] * repeats)[start:]
        ys = np.concatenate([y] * repeats)[start:]
        model.fit(
            xs,
            ys,
            batch_size=BATCH,
            shuffle=False,
            initial_epoch=first_epoch,
            epochs=end_epoch,
            steps_per_epoch=steps,
            callbacks=[checkpoint, *callbacks],
            verbose=0,
        )


class SimulatedKill(Exception):  # noqa: N818
    """Stands in for a killed process."""


class StopAt(keras.callbacks.Callback):
    """Raises (a stand-in for a kill) after the `checkpoint` has counted `step` batches."""

    def __init__(self, checkpoint, step):
        super().__init__()
        self.checkpoint, self.step = checkpoint, step

    def on_train_batch_end(self, batch, logs=None):
        if self.checkpoint.global_step == self.step:
            raise SimulatedKill(f"killed at batch {self.step}")


def _state(model):
    return [keras.ops.convert_to_numpy(v) for v in model.variables + model.optimizer.variables]


class TestTrainingPosition:
    @pytest.mark.parametrize(
        ("global_step", "expected"), [(0, (0, 0)), (4, (0, 4)), (5, (1, 0)), (23, (4, 3))]
    )
    def test_closed_form(self, global_step, expected):
        assert training_position(global_step, steps_per_epoch=5) == expected

    def test_bad_steps_per_epoch(self):
        with pytest.raises(ValueError, match="`steps_per_epoch` must be a positive integer, got 0"):
            training_position(3, 0)

    @pytest.mark.parametrize(
        ("arguments", "match"),
        [
            ({"steps_per_epoch": 0}, "`steps_per_epoch` must be an integer >= 1, got 0"),
            ({"epochs": 2.5}, "`epochs` must be an integer >= 1, got 2.5"),
            ({"save_every": -1}, "`save_every` must be an integer >= 0, got -1"),
            ({"keep": 1}, "`keep` must be an integer >= 2, got 1"),
        ],
    )
    def test_bad_arguments(self, tmp_path, arguments, match):
        settings = {"steps_per_epoch": 5, "epochs": 2, **arguments}
        with pytest.raises(ValueError, match=match):
            TrainingCheckpoint(tmp_path, **settings)


class TestAtomicWrite:
    def test_replaces_whole_and_leaves_no_temporary(self, tmp_path):
        path = tmp_path / "deep" / "file.json"
        write_atomically(path, "first")
        write_atomically(path, b"second")
        assert path.read_bytes() == b"second"
        assert os.listdir(path.parent) == ["file.json"]


class TestSaveAndRestore:
    def test_restores_weights_optimizer_batchnorm_and_rng_states(self, tmp_path):
        x, y = _data()
        model = _model()
        checkpoint = TrainingCheckpoint(tmp_path, STEPS, epochs=2, save_every=3)
        _fit_from(model, checkpoint, checkpoint.restore(model), 2, x, y)
        assert checkpoint.global_step == 10
        fresh = _model()
        restored = TrainingCheckpoint(tmp_path, STEPS, epochs=2)
        assert restored.restore(fresh) == (2, 0)
        assert restored.global_step == 10
        # Every variable, down to the dropout seed state and the momentum, comes back.
        paths = [v.path for v in model.variables + model.optimizer.variables]
        assert any("seed_generator_state" in path for path in paths)
        assert any("momentum" in path for path in paths)
        for path, got, want in zip(paths, _state(fresh), _state(model), strict=True):
            np.testing.assert_array_equal(got, want, err_msg=path)

    def test_keeps_the_last_two(self, tmp_path):
        x, y = _data()
        checkpoint = TrainingCheckpoint(tmp_path, STEPS, epochs=2, save_every=2)
        model = _model()
        _fit_from(model, checkpoint, checkpoint.restore(model), 2, x, y)
        assert sorted(os.listdir(tmp_path)) == ["ckpt-000000008.npz", "ckpt-000000010.npz"]

    @pytest.mark.parametrize(
        ("kills", "saved"), [([3], [0, 2]), ([7, 9], [0, 6, 8]), ([2, 6, 8], [0, 2, 6, 8])]
    )
    def test_resume_after_any_number_of_kills_gives_the_same_weights(self, tmp_path, kills, saved):
        # Defect: a second restart replayed epoch 0 (the epoch was never handed on).
        x, y = _data()
        reference = _model()
        straight = TrainingCheckpoint(tmp_path / "straight", STEPS, epochs=3, save_every=2)
        _fit_from(reference, straight, straight.restore(reference), 3, x, y)
        folder = tmp_path / "killed"
        positions = []
        for kill in kills:
            model = _model()
            checkpoint = TrainingCheckpoint(folder, STEPS, epochs=3, save_every=2)
            positions.append(checkpoint.restore(model))
            with pytest.raises(SimulatedKill):
                _fit_from(model, checkpoint, positions[-1], 3, x, y, [StopAt(checkpoint, kill)])
        model = _model()
        checkpoint = TrainingCheckpoint(folder, STEPS, epochs=3, save_every=2)
        positions.append(checkpoint.restore(model))
        _fit_from(model, checkpoint, positions[-1], 3, x, y)
        # Each life resumes at the last checkpoint (every 2 batches) before the previous kill.
        assert positions == [training_position(step, STEPS) for step in saved]
        assert checkpoint.global_step == 15
        for got, want in zip(_state(model), _state(reference), strict=True):
            np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)

    def test_loss_scale_optimizer_skips_do_not_shift_the_position(self, tmp_path):
        # A LossScaleOptimizer does not count the steps it skips (non-finite scaled
        # gradients), so optimizer.iterations falls behind the batches consumed.
        x, y = _data()
        optimizer = keras.optimizers.LossScaleOptimizer(keras.optimizers.SGD(0.01), 2.0**127)
        model = _model(optimizer)
        checkpoint = TrainingCheckpoint(tmp_path, STEPS, epochs=2, save_every=3)
        _fit_from(model, checkpoint, (0, 0), 2, x, y)
        iterations = int(keras.ops.convert_to_numpy(model.optimizer.iterations))
        assert iterations < checkpoint.global_step == 10
        assert latest_position(tmp_path, STEPS) == (2, 0)

    def test_works_on_a_non_local_gfile_file_system(self):
        # ram:// is TensorFlow's in-memory file system: no os.rename, no local paths.
        folder = f"ram://checkpoints-{uuid.uuid4().hex}/backup"
        x, y = _data()
        model = _model()
        checkpoint = TrainingCheckpoint(folder, STEPS, epochs=2, save_every=3)
        _fit_from(model, checkpoint, checkpoint.restore(model), 2, x, y)
        assert sorted(tf.io.gfile.listdir(folder)) == ["ckpt-000000009.npz", "ckpt-000000010.npz"]
        fresh = _model()
        assert TrainingCheckpoint(folder, STEPS, epochs=2).restore(fresh) == (2, 0)
        for got, want in zip(_state(fresh), _state(model), strict=True):
            np.testing.assert_array_equal(got, want)


class TestDamagedCheckpoints:
    def saved(self, tmp_path):
        """A model trained 2 epochs with checkpoints after batches 8 and 10."""
        x, y = _data()
        model = _model()
        checkpoint = TrainingCheckpoint(tmp_path, STEPS, epochs=2, save_every=4)
        _fit_from(model, checkpoint, (0, 0), 2, x, y)
        return tmp_path / "ckpt-000000010.npz", tmp_path / "ckpt-000000008.npz"

    @pytest.mark.parametrize(
        "damage",
        [
            lambda data: data[: len(data) // 2],  # truncated (a non-atomic copy, a full disk)
            lambda data: b"",
            lambda data: data[:100] + bytes(b ^ 0xFF for b in data[100:200]) + data[200:],
            lambda data: b"not a checkpoint",
        ],
        ids=["truncated", "empty", "flipped-bytes", "garbage"],
    )
    def test_falls_back_to_the_previous_one_and_says_so(self, tmp_path, caplog, damage):
        newest, previous = self.saved(tmp_path)
        newest.write_bytes(damage(newest.read_bytes()))
        model = _model()
        with caplog.at_level(logging.WARNING):
            position = TrainingCheckpoint(tmp_path, STEPS, epochs=2, name="pretrain").restore(model)
        assert position == (1, 3)
        assert f"pretrain: skipping checkpoint {newest}" in caplog.text
        assert latest_position(tmp_path, STEPS) == (1, 3)

    def test_no_readable_checkpoint_is_a_fresh_start(self, tmp_path, caplog):
        for path in self.saved(tmp_path):
            path.write_bytes(path.read_bytes()[:50])
        model = _model()
        before = [keras.ops.convert_to_numpy(v) for v in model.variables]
        with caplog.at_level(logging.WARNING):
            assert TrainingCheckpoint(tmp_path, STEPS, epochs=2).restore(model) == (0, 0)
        assert caplog.text.count("skipping checkpoint") == 2
        after = [keras.ops.convert_to_numpy(v) for v in model.variables]
        for got, want in zip(after, before, strict=True):
            np.testing.assert_array_equal(got, want)

    def test_a_checkpoint_of_another_run_shape_is_skipped(self, tmp_path, caplog):
        self.saved(tmp_path)
        with caplog.at_level(logging.WARNING):
            assert latest_position(tmp_path, steps_per_epoch=4) == (0, 0)
        assert "written with 5 steps per epoch, this run has 4" in caplog.text
        other = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
        other.compile(optimizer="sgd", loss="mse")
        with caplog.at_level(logging.WARNING):
            assert TrainingCheckpoint(tmp_path, STEPS, epochs=2).restore(other) == (0, 0)
        assert "variables, the model has" in caplog.text

    def test_a_temporary_file_left_by_a_kill_is_ignored(self, tmp_path):
        self.saved(tmp_path)
        (tmp_path / "ckpt-000000012.npz.tmp-999").write_bytes(b"half a checkpoint")
        assert latest_position(tmp_path, STEPS) == (2, 0)


class TestNonFinite:
    def test_nan_stops_with_phase_epoch_step_and_keeps_the_last_good_checkpoint(self, tmp_path):
        x, y = _data()
        y[1 * BATCH + 2] = np.nan  # batch 1 of every epoch
        model = _model()
        checkpoint = TrainingCheckpoint(tmp_path, STEPS, epochs=2, name="pretrain")
        with pytest.raises(NonFiniteTrainingError) as raised:
            _fit_from(model, checkpoint, (0, 0), 2, x, y)
        message = str(raised.value)
        assert "pretrain: the loss is nan at epoch 0, step 1" in message
        assert "no checkpoint was saved before it" in message
        assert latest_position(tmp_path, STEPS) == (0, 0)

    def test_nan_weights_behind_a_finite_loss_are_caught_at_the_next_save(self, tmp_path):
        # A NaN input makes the first kernel NaN; where ReLU maps NaN to 0 (oneDNN on
        # CPU) the loss stays finite, and the save refuses the state and stops the run.
        x, y = _data()
        x[1 * BATCH + 2] = np.nan
        model = _model()
        checkpoint = TrainingCheckpoint(tmp_path, STEPS, epochs=2, save_every=3, name="pretrain")
        with pytest.raises(
            NonFiniteTrainingError,
            match=r"kernel holds NaN or Inf at epoch 0, step 2|loss is nan at epoch 0, step 1",
        ):
            _fit_from(model, checkpoint, (0, 0), 2, x, y)
        assert latest_position(tmp_path, STEPS) == (0, 0)

    def test_nan_after_a_checkpoint_names_it_and_it_stays_finite(self, tmp_path):
        x, y = _data()
        model = _model()
        checkpoint = TrainingCheckpoint(tmp_path, STEPS, epochs=3, save_every=2, name="baseline")
        _fit_from(model, checkpoint, (0, 0), 1, x, y)  # epoch 0: checkpoints 2, 4, 5
        x[3 * BATCH] = np.inf  # batch 3 of epoch 1 is global batch 9; checkpoints 6, 8
        with pytest.raises(
            NonFiniteTrainingError, match=r"baseline: the loss is (nan|inf) at epoch 1, step 3"
        ):
            _fit_from(model, checkpoint, (1, 0), 3, x, y)
        assert str(checkpoint.last_saved).endswith("ckpt-000000008.npz")
        kept = sorted(os.listdir(tmp_path))
        assert kept == ["ckpt-000000006.npz", "ckpt-000000008.npz"]
        fresh = _model()
        assert TrainingCheckpoint(tmp_path, STEPS, epochs=3).restore(fresh) == (1, 3)
        assert all(np.isfinite(value).all() for value in _state(fresh))

    def test_non_finite_weights_are_never_saved(self, tmp_path):
        model = _model()
        checkpoint = TrainingCheckpoint(tmp_path, STEPS, epochs=1, name="classifier")
        checkpoint.set_model(model)
        checkpoint.global_step = 3
        model.layers[0].kernel.assign(np.full((3, 6), np.nan, "float32"))
        with pytest.raises(
            NonFiniteTrainingError, match="classifier: the variable .*kernel holds NaN"
        ):
            checkpoint.save()
        assert not tmp_path.exists() or not os.listdir(tmp_path)


class TestStopRequest:
    def test_saves_at_the_next_batch_and_resumes_there(self, tmp_path):
        x, y = _data()
        batches = []
        model = _model()
        checkpoint = TrainingCheckpoint(
            tmp_path, STEPS, epochs=2, save_every=0, should_stop=lambda: len(batches) >= 7
        )

        class Count(keras.callbacks.Callback):
            def on_train_batch_begin(self, batch, logs=None):
                batches.append(batch)

        with pytest.raises(StopRequested, match="stopped on request at epoch 1, step 2"):
            _fit_from(model, checkpoint, (0, 0), 2, x, y, [Count()])
        assert latest_position(tmp_path, STEPS) == (1, 2)

    def test_at_an_epoch_end_it_saves_after_the_epoch(self, tmp_path):
        x, y = _data()
        model = _model()
        checkpoint = TrainingCheckpoint(
            tmp_path, STEPS, epochs=2, should_stop=lambda: checkpoint.global_step >= 5
        )
        with pytest.raises(StopRequested, match="at epoch 1, step 0"):
            _fit_from(model, checkpoint, (0, 0), 2, x, y)
        assert latest_position(tmp_path, STEPS) == (1, 0)
