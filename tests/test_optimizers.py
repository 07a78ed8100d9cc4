"""LARS against a float64 NumPy transcription of its update rule; `build_optimizer` by name."""

import math

import keras
import numpy as np
import pytest

from supcon_tf.training.optimizers import LARS, OPTIMIZERS, build_optimizer
from supcon_tf.training.schedules import WarmupCosineDecay


def reference_lars(
    weights, gradients, learning_rates, momentum, weight_decay, eta, nesterov, excluded
):
    """Float64 NumPy transcription of the SimCLR/SupCon TF LARS ("classic momentum").

    weights: list of arrays; gradients: list (per step) of lists (per variable);
    learning_rates: one float per step; excluded: one bool per variable.
    """
    weights = [np.array(w, dtype=np.float64) for w in weights]
    velocities = [np.zeros_like(w) for w in weights]
    for step_gradients, rate in zip(gradients, learning_rates, strict=True):
        for index, gradient in enumerate(step_gradients):
            w = weights[index]
            g = np.array(gradient, dtype=np.float64)
            trust = 1.0
            if not excluded[index]:
                g = g + weight_decay * w
                weight_norm = math.sqrt(float(np.sum(w * w)))
                gradient_norm = math.sqrt(float(np.sum(g * g)))
                if weight_norm > 0 and gradient_norm > 0:
                    trust = eta * weight_norm / gradient_norm
            step = rate * trust * g
            velocities[index] = momentum * velocities[index] + step
            update = momentum * velocities[index] + step if nesterov else velocities[index]
            weights[index] = w - update
    return weights


def float32_rounded(value):
    """The optimizer keeps its learning rate in a float32 variable."""
    return float(np.float32(value))


def run_lars(optimizer, weights, gradients, dtype="float64"):
    variables = [keras.Variable(w, dtype=dtype) for w in weights]
    for step_gradients in gradients:
        optimizer.apply(
            [keras.ops.convert_to_tensor(g, dtype=dtype) for g in step_gradients], variables
        )
    return [keras.ops.convert_to_numpy(v) for v in variables]


def random_problem(seed, shapes, steps):
    rng = np.random.default_rng(seed)
    weights = [rng.normal(size=shape) for shape in shapes]
    gradients = [[rng.normal(size=shape) for shape in shapes] for _ in range(steps)]
    return weights, gradients


class TestLARSUpdateRule:
    def test_single_step_matches_reference(self):
        weights, gradients = random_problem(0, [(4, 3)], steps=1)
        optimizer = LARS(learning_rate=0.5, momentum=0.9, weight_decay=1e-2)
        result = run_lars(optimizer, weights, gradients)
        expected = reference_lars(weights, gradients, [0.5], 0.9, 1e-2, 0.001, False, [False])
        np.testing.assert_allclose(result[0], expected[0], rtol=1e-12, atol=1e-14)

    def test_trust_ratio_closed_form_without_momentum(self):
        # w = 3 * ones(2, 2): ||w|| = 6; g = ones: ||g|| = 2; trust = 0.001 * 6 / 2 = 0.003.
        optimizer = LARS(learning_rate=1.0, momentum=0.0, weight_decay=0.0)
        result = run_lars(optimizer, [np.full((2, 2), 3.0)], [[np.ones((2, 2))]])
        np.testing.assert_allclose(result[0], np.full((2, 2), 3.0 - 0.003), rtol=1e-12)

    @pytest.mark.parametrize("nesterov", [False, True])
    def test_multi_step_with_momentum_and_excluded_bias(self, nesterov):
        shapes = [(3, 3, 2, 4), (5, 4), (4,)]  # conv kernel, dense kernel, bias
        weights, gradients = random_problem(1, shapes, steps=6)
        optimizer = LARS(learning_rate=0.3, momentum=0.9, weight_decay=1e-3, nesterov=nesterov)
        result = run_lars(optimizer, weights, gradients)
        expected = reference_lars(
            weights,
            gradients,
            [float32_rounded(0.3)] * 6,
            0.9,
            1e-3,
            0.001,
            nesterov,
            excluded=[False, False, True],
        )
        for got, want in zip(result, expected, strict=True):
            np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)

    def test_rank_one_variables_get_plain_momentum_sgd(self):
        # An excluded bias: no decay, trust 1, i.e. heavy-ball SGD with the lr inside.
        weights, gradients = random_problem(2, [(6,)], steps=3)
        optimizer = LARS(learning_rate=0.1, momentum=0.5, weight_decay=0.1)
        result = run_lars(optimizer, weights, gradients)
        rate = float32_rounded(0.1)
        velocity = np.zeros(6)
        w = weights[0].copy()
        for (g,) in gradients:
            velocity = 0.5 * velocity + rate * g
            w = w - velocity
        np.testing.assert_allclose(result[0], w, rtol=1e-12)

    def test_exclude_rank_one_false_adapts_biases_too(self):
        weights, gradients = random_problem(3, [(5,)], steps=3)
        optimizer = LARS(learning_rate=0.2, momentum=0.9, weight_decay=1e-2, exclude_rank_one=False)
        result = run_lars(optimizer, weights, gradients)
        expected = reference_lars(
            weights, gradients, [float32_rounded(0.2)] * 3, 0.9, 1e-2, 0.001, False, [False]
        )
        np.testing.assert_allclose(result[0], expected[0], rtol=1e-10)

    def test_explicitly_excluded_kernel(self):
        weights, gradients = random_problem(4, [(3, 2), (3, 2)], steps=4)
        variables = [keras.Variable(w, dtype="float64") for w in weights]
        optimizer = LARS(learning_rate=0.2, momentum=0.9, weight_decay=1e-2)
        optimizer.exclude_variables([variables[1]])
        assert optimizer.is_excluded(variables[1]) and not optimizer.is_excluded(variables[0])
        for step_gradients in gradients:
            optimizer.apply([keras.ops.convert_to_tensor(g) for g in step_gradients], variables)
        expected = reference_lars(
            weights, gradients, [float32_rounded(0.2)] * 4, 0.9, 1e-2, 0.001, False, [False, True]
        )
        for variable, want in zip(variables, expected, strict=True):
            np.testing.assert_allclose(keras.ops.convert_to_numpy(variable), want, rtol=1e-10)

    def test_zero_weights_and_zero_gradient_fall_back_to_trust_one(self):
        optimizer = LARS(learning_rate=0.5, momentum=0.0)
        weights = [np.zeros((2, 3)), np.ones((2, 3))]
        gradients = [[np.ones((2, 3)), np.zeros((2, 3))]]
        result = run_lars(optimizer, weights, gradients)
        np.testing.assert_allclose(result[0], np.full((2, 3), -0.5))  # trust 1: w - lr * g
        np.testing.assert_allclose(result[1], np.ones((2, 3)))  # zero gradient: no change
        assert np.all(np.isfinite(result[0]))

    def test_schedule_learning_rate_is_used_per_step(self):
        schedule = WarmupCosineDecay(0.4, total_steps=6, warmup_steps=2, final_learning_rate=0.01)
        weights, gradients = random_problem(5, [(4, 4)], steps=6)
        result = run_lars(LARS(schedule, momentum=0.9, weight_decay=1e-4), weights, gradients)

        def closed_form(step):
            if step < 2:
                return 0.4 * step / 2
            return 0.01 + 0.39 * 0.5 * (1 + math.cos(math.pi * (step - 2) / 4))

        rates = [closed_form(step) for step in range(6)]
        expected = reference_lars(weights, gradients, rates, 0.9, 1e-4, 0.001, False, [False])
        np.testing.assert_allclose(result[0], expected[0], rtol=1e-6)

    def test_float32_variables(self):
        weights, gradients = random_problem(6, [(8, 4), (4,)], steps=4)
        result = run_lars(LARS(0.3, weight_decay=1e-3), weights, gradients, dtype="float32")
        expected = reference_lars(
            weights, gradients, [0.3] * 4, 0.9, 1e-3, 0.001, False, [False, True]
        )
        for got, want in zip(result, expected, strict=True):
            np.testing.assert_allclose(got, want, rtol=2e-5, atol=1e-6)


class TestLARSSerialization:
    def test_get_config_round_trip(self):
        optimizer = LARS(
            learning_rate=0.7,
            momentum=0.8,
            weight_decay=1e-4,
            eta=0.002,
            nesterov=True,
            exclude_rank_one=False,
            clipnorm=1.0,
        )
        config = optimizer.get_config()
        assert config["weight_decay"] == 1e-4 and config["eta"] == 0.002
        restored = LARS.from_config(config)
        assert restored.get_config() == config
        assert restored.weight_decay is None  # no decoupled Keras decay on top of LARS'

    def test_keras_serialization_with_schedule(self):
        schedule = WarmupCosineDecay(1.2, total_steps=100, warmup_steps=10)
        optimizer = LARS(schedule, weight_decay=1e-6)
        restored = keras.optimizers.deserialize(keras.optimizers.serialize(optimizer))
        assert isinstance(restored, LARS)
        assert restored.get_config() == optimizer.get_config()


def toy_classification(seed=0, samples=64):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(samples, 6)).astype("float32")
    y = (x[:, 0] + x[:, 1] > 0).astype("int32")
    return x, y


def toy_model():
    keras.utils.set_random_seed(0)
    return keras.Sequential(
        [
            keras.Input((6,)),
            keras.layers.Dense(16, activation="relu"),
            keras.layers.BatchNormalization(),
            keras.layers.Dense(2),
        ]
    )


class TestLARSInTraining:
    def test_fit_reduces_loss(self):
        x, y = toy_classification()
        model = toy_model()
        model.compile(
            optimizer=LARS(learning_rate=5.0, momentum=0.9, weight_decay=1e-4),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
        history = model.fit(x, y, batch_size=16, epochs=8, verbose=0, shuffle=False)
        losses = history.history["loss"]
        assert losses[-1] < losses[0] * 0.9, losses

    def test_saved_keras_model_restores_optimizer_state(self, tmp_path):
        x, y = toy_classification()
        model = toy_model()
        model.compile(
            optimizer=LARS(learning_rate=2.0, momentum=0.9, weight_decay=1e-4, nesterov=True),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
        model.fit(x, y, batch_size=16, epochs=1, verbose=0, shuffle=False)
        path = tmp_path / "lars_model.keras"
        model.save(path)
        restored = keras.saving.load_model(path)
        assert isinstance(restored.optimizer, LARS)
        assert restored.optimizer.get_config() == model.optimizer.get_config()
        for original, loaded in zip(
            model.optimizer.variables, restored.optimizer.variables, strict=True
        ):
            np.testing.assert_array_equal(
                keras.ops.convert_to_numpy(original), keras.ops.convert_to_numpy(loaded)
            )
        # Continuing training from the file follows the same trajectory as the original.
        model.fit(x, y, batch_size=16, epochs=1, verbose=0, shuffle=False)
        restored.fit(x, y, batch_size=16, epochs=1, verbose=0, shuffle=False)
        for original, loaded in zip(model.weights, restored.weights, strict=True):
            np.testing.assert_allclose(
                keras.ops.convert_to_numpy(original),
                keras.ops.convert_to_numpy(loaded),
                rtol=1e-5,
                atol=1e-6,
            )


class TestLARSErrors:
    @pytest.mark.parametrize(
        ("arguments", "match"),
        [
            ({"momentum": 1.0}, r"`momentum` must be in \[0, 1\)"),
            ({"momentum": -0.1}, r"`momentum` must be in \[0, 1\)"),
            ({"momentum": "high"}, "`momentum` must be a number"),
            ({"weight_decay": -1e-4}, "`weight_decay` must be >= 0"),
            ({"weight_decay": float("nan")}, "`weight_decay` must be a finite number"),
            ({"eta": 0.0}, "`eta` must be > 0"),
            ({"nesterov": "yes"}, "`nesterov` must be a bool"),
            ({"exclude_rank_one": 1}, "`exclude_rank_one` must be a bool"),
        ],
    )
    def test_bad_arguments(self, arguments, match):
        with pytest.raises(ValueError, match=match):
            LARS(**arguments)

    def test_exclude_variables_needs_variables(self):
        with pytest.raises(ValueError, match="takes Keras variables, got str"):
            LARS().exclude_variables(["dense/kernel"])


class TestBuildOptimizer:
    @pytest.mark.parametrize(
        ("name", "class_name"),
        [
            ("adam", "Adam"),
            ("adamw", "AdamW"),
            ("sgd", "SGD"),
            ("rmsprop", "RMSprop"),
            ("lamb", "Lamb"),
            ("lars", "LARS"),
        ],
    )
    def test_names(self, name, class_name):
        optimizer = build_optimizer(name, learning_rate=0.01, weight_decay=1e-4, momentum=0.8)
        assert type(optimizer).__name__ == class_name
        assert math.isclose(
            float(keras.ops.convert_to_numpy(optimizer.learning_rate)), 0.01, rel_tol=1e-6
        )
        if name == "lars":
            assert optimizer.lars_weight_decay == 1e-4 and optimizer.momentum == 0.8
        else:
            assert math.isclose(optimizer.weight_decay, 1e-4)
        if name in ("sgd", "rmsprop"):
            assert optimizer.momentum == 0.8
        assert set(OPTIMIZERS) == {"adam", "adamw", "sgd", "rmsprop", "lamb", "lars"}

    def test_zero_weight_decay_disables_decay(self):
        assert build_optimizer("sgd", weight_decay=0.0).weight_decay is None

    def test_accepts_schedule(self):
        schedule = WarmupCosineDecay(0.1, total_steps=10)
        optimizer = build_optimizer("lars", learning_rate=schedule)
        assert optimizer.get_config()["learning_rate"]["class_name"] == "WarmupCosineDecay"

    @pytest.mark.parametrize(
        ("arguments", "match"),
        [
            ({"name": "adagrad"}, r"Unknown optimizer 'adagrad'. Expected one of \('adam'"),
            ({"weight_decay": -1.0}, "`weight_decay` must be >= 0"),
            ({"momentum": 1.5}, r"`momentum` must be in \[0, 1\)"),
            ({"learning_rate": -0.1}, "`learning_rate` must be >= 0"),
        ],
    )
    def test_errors(self, arguments, match):
        with pytest.raises(ValueError, match=match):
            build_optimizer(**arguments)
