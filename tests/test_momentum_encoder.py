"""Tests of the momentum (key) encoder: `SupConModel(momentum_encoder=True)` and
`supcon_tf.models.momentum_encoder.MomentumEncoder`.

Oracles: a float64 NumPy transcription of the EMA recursion
`key_t = m key_{t-1} + (1 - m) query_t` over the query weights recorded after every
step, a float64 NumPy forward pass of the tiny network (BatchNorm on batch statistics)
for the queued keys, and the float64 Eq. 2 of tests/reference.py for the loss.
"""

import json

import keras
import numpy as np
import pytest

from supcon_tf.losses import SupervisedContrastiveLoss
from supcon_tf.models import SupConModel
from supcon_tf.models.layers import ProjectionHead
from supcon_tf.models.momentum_encoder import MomentumEncoder
from tests._momentum_worker import LEARNING_RATE, build_momentum_model, fit_steps
from tests._processes import run_on_replicas
from tests.reference import supcon_reference

BATCH, VIEWS, WIDTH, DIM = 6, 2, 6, 4
IMAGE = (2, 2, 1)
# Keras' BatchNormalization default.
EPSILON = 1e-3
# Measured: after 4 float32 steps the key weights are within 2e-7 of the float64
# recursion (entries up to ~2), the queued keys within 2.3e-7 (entries up to ~1.8),
# the loss within 3e-8 relative.
WEIGHT_ATOL = 1e-6
EMBEDDING_ATOL = 1e-6
LOSS_RTOL = 1e-6


def _model(momentum=0.9, chunk_size=None, memory_size=2 * BATCH, seed=0):
    """Flatten -> Dense -> BatchNorm -> tanh encoder, linear head, momentum encoder, SGD."""
    keras.utils.set_random_seed(seed)
    encoder = keras.Sequential(
        [
            keras.Input(IMAGE),
            keras.layers.Flatten(),
            keras.layers.Dense(WIDTH, use_bias=False),
            keras.layers.BatchNormalization(),
            keras.layers.Activation("tanh"),
        ]
    )
    model = SupConModel(
        encoder,
        ProjectionHead(output_units=DIM, num_hidden_layers=0),
        gradient_cache_chunk_size=chunk_size,
        memory_size=memory_size,
        momentum_encoder=True,
        momentum=momentum,
    )
    model.compile(optimizer=keras.optimizers.SGD(0.5), loss=SupervisedContrastiveLoss(0.1))
    model.build((None, VIEWS, *IMAGE))
    return model


def _batches(count, seed=1):
    """`count` batches of views already drawn `[B, V, 2, 2, 1]` (no augmenter) and labels."""
    rng = np.random.default_rng(seed)
    views = [rng.normal(size=(BATCH, VIEWS, *IMAGE)).astype("float32") for _ in range(count)]
    labels = [rng.integers(0, 3, size=BATCH) for _ in range(count)]
    return views, labels


def _query_state(model):
    """Every query weight (float64), in the key network's order; and which are trainable."""
    weights = [*model.encoder.weights, *model.projection_head.weights]
    return [w.numpy().astype("float64") for w in weights], [w.trainable for w in weights]


def _key_state(model):
    return [w.numpy().astype("float64") for w in model.key_network.weights]


def _largest_difference(first, second):
    return max(np.abs(a - b).max() for a, b in zip(first, second, strict=True))


def _network_weights(part_weights):
    """`(kernel, gamma, beta, head kernel, head bias)` from a weight list in key order."""
    kernel, gamma, beta, _, _, head_kernel, head_bias = part_weights
    return kernel, gamma, beta, head_kernel, head_bias


def _forward(weights, views, chunk_size=None):
    """Float64 embeddings `[B, V, D]` of views `[B, V, 2, 2, 1]`, BatchNorm on the batch
    statistics of each chunk of images (all their views), as the training step."""
    kernel, gamma, beta, head_kernel, head_bias = _network_weights(weights)
    views = views.astype("float64")
    chunk_size = chunk_size or len(views)
    out = []
    for start in range(0, len(views), chunk_size):
        chunk = views[start : start + chunk_size]
        # View-major, as the model stacks them: [V * c, features].
        flat = np.transpose(chunk, (1, 0, 2, 3, 4)).reshape(VIEWS * len(chunk), -1)
        hidden = flat @ kernel
        mean, variance = hidden.mean(axis=0), hidden.var(axis=0)
        hidden = np.tanh((hidden - mean) / np.sqrt(variance + EPSILON) * gamma + beta)
        embeddings = (hidden @ head_kernel + head_bias).reshape(VIEWS, len(chunk), DIM)
        out.append(np.transpose(embeddings, (1, 0, 2)))
    return np.concatenate(out)


class RecordStates(keras.callbacks.Callback):
    """Records the query and key weights after every training batch of `fit`."""

    def __init__(self):
        super().__init__()
        self.queries, self.keys = [], []

    def on_train_batch_end(self, batch, logs=None):
        self.queries.append(_query_state(self.model)[0])
        self.keys.append(_key_state(self.model))


class TestMomentumUpdate:
    @pytest.mark.parametrize("chunk_size", [None, 2])
    def test_key_weights_follow_the_ema_recursion_of_the_query(self, chunk_size):
        momentum, steps = 0.9, 4
        model = _model(momentum, chunk_size)
        initial, trainable = _query_state(model)
        for key, query in zip(_key_state(model), initial, strict=True):
            np.testing.assert_array_equal(key, query)  # step 0: key == query
        views, labels = _batches(steps)
        record = RecordStates()
        model.fit(
            np.concatenate(views),
            np.concatenate(labels),
            batch_size=BATCH,
            epochs=1,
            shuffle=False,
            verbose=0,
            callbacks=[record],
        )
        assert len(record.keys) == steps
        expected = initial
        for step, (query, key) in enumerate(zip(record.queries, record.keys, strict=True)):
            expected = [
                momentum * old + (1 - momentum) * new if is_trainable else new
                for old, new, is_trainable in zip(expected, query, trainable, strict=True)
            ]
            for index, (got, want) in enumerate(zip(key, expected, strict=True)):
                np.testing.assert_allclose(
                    got, want, rtol=0, atol=WEIGHT_ATOL, err_msg=f"step {step}, weight {index}"
                )
        # The test can fail: the key lags the query by much more than the tolerance,
        # and BatchNorm's moving statistics (copied) moved.
        assert _largest_difference(record.keys[-1], record.queries[-1]) > 1e-2
        moved = [np.abs(record.keys[-1][i] - initial[i]).max() for i in (3, 4)]
        assert min(moved) > 1e-3

    def test_momentum_zero_makes_the_key_the_query_after_every_step(self):
        model = _model(momentum=0.0)
        views, labels = _batches(3, seed=2)
        for step_views, step_labels in zip(views, labels, strict=True):
            model.train_on_batch(step_views, step_labels)
            for key, query in zip(_key_state(model), _query_state(model)[0], strict=True):
                np.testing.assert_array_equal(key, query)

    def test_key_weights_are_not_trained(self):
        model = _model()
        key_ids = {id(w) for w in model.key_network.weights}
        assert len(model.trainable_weights) == 5  # kernel, gamma, beta, head kernel, bias
        assert not key_ids & {id(w) for w in model.trainable_weights}
        model.train_on_batch(*(batch[0] for batch in _batches(1)))
        optimized = {id(v) for v in model.optimizer.variables}
        assert not key_ids & optimized


class TestQueuedKeys:
    @pytest.mark.parametrize("chunk_size", [None, 3])
    def test_bank_holds_the_key_embeddings_and_the_loss_uses_them(self, chunk_size):
        model = _model(momentum=0.9, chunk_size=chunk_size)
        views, labels = _batches(2, seed=3)
        weights, losses = [], []
        for step_views, step_labels in zip(views, labels, strict=True):
            weights.append((_query_state(model)[0], _key_state(model)))
            losses.append(model.train_on_batch(step_views, step_labels))
        keys = [_forward(key, v, chunk_size) for (_, key), v in zip(weights, views, strict=True)]
        stored, stored_labels = model.memory_bank.contents()
        np.testing.assert_allclose(stored, np.concatenate(keys), rtol=0, atol=EMBEDDING_ATOL)
        np.testing.assert_array_equal(stored_labels, np.concatenate(labels))
        # Step 2's keys come from the key network, not the query (they differ by more
        # than the tolerance: the key lags after step 1).
        query_embeddings = _forward(weights[1][0], views[1], chunk_size)
        assert np.abs(query_embeddings - keys[1]).max() > 100 * EMBEDDING_ATOL
        # Step 2's loss: the query embeddings of the batch, step 1's keys as the bank.
        expected = supcon_reference(
            query_embeddings, labels[1], memory=keys[0], memory_labels=labels[0]
        ).mean()
        np.testing.assert_allclose(losses[1], expected, rtol=LOSS_RTOL)

    def test_compute_loss_in_training_needs_the_keys(self):
        model = _model()
        views, labels = _batches(1)
        embeddings = model(views[0])
        with pytest.raises(ValueError, match="pass `key_embeddings`"):
            model.compute_loss(y=labels[0], y_pred=embeddings, training=True)


@pytest.mark.slow
def test_mirrored_strategy_keeps_the_replicas_keys_identical(tmp_path):
    """Two replicas: each holds the same key weights and queue as the single-device run."""
    rng = np.random.default_rng(4)
    arrays = {
        "x": rng.normal(size=(16, VIEWS, *IMAGE)).astype("float32"),
        "labels": rng.integers(0, 3, size=16),
        "w1": (0.5 * rng.normal(size=(4, WIDTH))).astype("float32"),
        "b1": (0.1 * rng.normal(size=WIDTH)).astype("float32"),
        "w2": (0.5 * rng.normal(size=(WIDTH, DIM))).astype("float32"),
        "b2": (0.1 * rng.normal(size=DIM)).astype("float32"),
        "chunk_size": np.int64(2),
        "memory_size": np.int64(12),
        "momentum": np.float64(0.8),
        "global_batch": np.int64(8),
    }
    results = run_on_replicas("tests._momentum_worker", arrays, tmp_path)
    assert int(results["num_replicas"]) == 2
    for name, chunk_size in (("plain", None), ("cached", 2)):
        single = build_momentum_model(arrays, chunk_size)
        initial = [w.numpy() for w in single.key_network.weights]
        fit_steps(single, arrays, int(arrays["global_batch"]))
        for index, weight in enumerate(single.key_network.weights):
            replicas = results[f"{name}_key_{index}"]
            np.testing.assert_array_equal(replicas[0], replicas[1])
            np.testing.assert_allclose(replicas[0], weight.numpy(), rtol=1e-5, atol=1e-6)
            assert np.abs(weight.numpy() - initial[index]).max() > 1e-3  # it moved
        embeddings, labels = single.memory_bank.contents()
        np.testing.assert_allclose(
            results[f"{name}_bank_embeddings"], embeddings, rtol=1e-5, atol=1e-6
        )
        np.testing.assert_array_equal(results[f"{name}_bank_labels"], arrays["labels"][-12:])
    assert LEARNING_RATE > 0  # the query (and so the key) moves in this test


class TestSavingAndConfiguration:
    def test_save_and_load_keep_the_key_weights_and_the_flag(self, tmp_path):
        model = _model(momentum=0.8)
        views, labels = _batches(2, seed=5)
        for step_views, step_labels in zip(views, labels, strict=True):
            model.train_on_batch(step_views, step_labels)
        model.save(tmp_path / "momentum.keras")
        loaded = keras.saving.load_model(tmp_path / "momentum.keras")
        assert loaded.momentum_encoder is True and loaded.momentum == 0.8
        for got, expected in zip(_key_state(loaded), _key_state(model), strict=True):
            np.testing.assert_array_equal(got, expected)
        # The key differs from the query, so a key rebuilt from the query would fail.
        assert _largest_difference(_key_state(loaded), _query_state(loaded)[0]) > 1e-3
        for got, expected in zip(
            loaded.memory_bank.contents(), model.memory_bank.contents(), strict=True
        ):
            np.testing.assert_array_equal(got, expected)

    def test_get_config_round_trip(self):
        model = _model(momentum=0.95)
        clone = SupConModel.from_config(model.get_config())
        assert clone.momentum_encoder is True and clone.momentum == 0.95
        assert clone.key_network.momentum == 0.95
        layer = MomentumEncoder.from_config(model.key_network.get_config())
        assert layer.momentum == 0.95
        assert layer.encoder.get_config() == model.key_network.encoder.get_config()
        plain = SupConModel.from_config(_model(0.9).get_config() | {"momentum_encoder": False})
        assert plain.key_network is None

    @pytest.mark.parametrize(
        ("arguments", "match"),
        [
            ({"momentum_encoder": True}, r"`momentum_encoder=True` needs a memory bank.*0"),
            ({"momentum": 1.0}, r"`momentum` of the key encoder must be in \[0, 1\).*1\.0"),
            ({"momentum": -0.1}, r"must be in \[0, 1\).*-0\.1"),
            ({"momentum": True}, r"must be a number in \[0, 1\), got True"),
            ({"momentum": "0.9"}, r"must be a number in \[0, 1\), got '0\.9'"),
            ({"momentum_encoder": 1, "memory_size": 4}, "must be True or False, got 1"),
        ],
    )
    def test_bad_arguments(self, arguments, match):
        encoder = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
        with pytest.raises(ValueError, match=match):
            SupConModel(encoder, **arguments)

    def test_momentum_encoder_copies_only_layers(self):
        with pytest.raises(ValueError, match="copies Keras layers; got function"):
            MomentumEncoder(keras.Sequential([keras.Input((3,))]), lambda x: x)


class TestCommandLineAndExperiment:
    def test_flags_reach_the_config_and_the_model(self, tmp_path, supcon_model_options):
        from absl import flags

        from supcon_tf import experiment
        from supcon_tf.cli.flags import config_from_flags, define_flags

        flag_values = flags.FlagValues()
        define_flags(flag_values)
        flag_values(
            [
                "supcon-train",
                "--memory_size=64",
                "--momentum_encoder",
                "--encoder_momentum=0.99",
                "--momentum=0.5",
                f"--model_dir={tmp_path}",
            ]
        )
        config = config_from_flags(flag_values)
        assert (config.momentum_encoder, config.encoder_momentum, config.momentum) == (
            True,
            0.99,
            0.5,
        )
        defaults = experiment.ExperimentConfig()
        assert (defaults.momentum_encoder, defaults.encoder_momentum) == (False, 0.999)

        options = supcon_model_options(config)
        assert (options["momentum_encoder"], options["momentum"]) == (True, 0.99)

    @pytest.mark.parametrize(
        ("arguments", "match"),
        [
            (["--momentum_encoder"], "--momentum_encoder needs a memory bank"),
            (["--encoder_momentum=1"], "--encoder_momentum must be < 1"),
            (["--encoder_momentum=-0.5"], "encoder_momentum"),
        ],
    )
    def test_bad_flags(self, arguments, match):
        from absl import flags

        from supcon_tf.cli.flags import define_flags

        flag_values = flags.FlagValues()
        define_flags(flag_values)
        with pytest.raises(flags.Error, match=match):
            flag_values(["supcon-train", *arguments])

    @pytest.mark.parametrize(
        ("overrides", "match"),
        [
            ({"momentum_encoder": True}, r"`momentum_encoder=True` needs a memory bank.*=0"),
            ({"encoder_momentum": 1.0}, r"`encoder_momentum` must be in \[0, 1\), got 1\.0"),
            (
                {"encoder_momentum": "high"},
                r"`encoder_momentum` must be a (finite )?number.*'high'",
            ),
            ({"momentum_encoder": "yes"}, r"`momentum_encoder` must be True or False, got 'yes'"),
        ],
    )
    def test_bad_config(self, overrides, match):
        from supcon_tf.experiment import ExperimentConfig

        with pytest.raises(ValueError, match=match):
            ExperimentConfig(**overrides)

    @pytest.mark.slow
    def test_interrupted_pretraining_resumes_with_the_bank_and_the_key_network(
        self, tmp_path, monkeypatch
    ):
        """The checkpoint holds the bank and the key weights; resuming restores both,
        so the resumed epoch's loss is the uninterrupted run's."""
        from supcon_tf.experiment import run_experiment
        from tests.test_experiment import SimulatedKillError, _config, _interrupt_after

        settings = {
            "pretrain_epochs": 2,
            "classifier_epochs": 1,
            "baseline": False,
            "memory_size": 24,
            "momentum_encoder": True,
            "encoder_momentum": 0.9,
        }
        straight = run_experiment(_config(tmp_path, "straight", **settings))
        config = _config(tmp_path, "resumed", **settings)
        with monkeypatch.context() as patch:
            _interrupt_after(patch, "pretrain", epochs=1)
            with pytest.raises(SimulatedKillError):
                run_experiment(config)
        resumed = run_experiment(config)
        phases = json.loads((tmp_path / "resumed" / "phases" / "pretrain.json").read_text())
        assert phases["resumed_from_epoch"] == 1
        assert resumed["history"]["pretrain"]["loss"] == pytest.approx(
            straight["history"]["pretrain"]["loss"][1:], rel=1e-5
        )
