"""Warmup + cosine schedule against its closed form; batch scaling; serialisation; PNG plot."""

import math

import keras
import numpy as np
import pytest

from supcon_tf.training.schedules import (
    SCHEDULES,
    WarmupCosineDecay,
    build_schedule,
    plot_schedule,
    scale_learning_rate,
)


def closed_form(step, peak, total, warmup, floor, start):
    """The recipe written out by hand in float64."""
    if step < warmup:
        return start + (peak - start) * step / warmup
    if step >= total:
        return floor
    return floor + (peak - floor) * 0.5 * (
        1.0 + math.cos(math.pi * (step - warmup) / (total - warmup))
    )


def evaluate(schedule, step):
    return float(keras.ops.convert_to_numpy(schedule(step)))


class TestWarmupCosineDecay:
    @pytest.mark.parametrize(
        ("peak", "total", "warmup", "floor", "start"),
        [
            (0.5, 1000, 100, 0.0, 0.0),
            (0.5, 1000, 100, 0.5 * 0.1**3, 0.01),  # SupContrast: floor lr * 0.001, start 0.01
            (9.6, 350, 12, 0.0, 0.0),
            (0.1, 50, 0, 0.001, 0.0),
        ],
    )
    def test_matches_closed_form(self, peak, total, warmup, floor, start):
        schedule = WarmupCosineDecay(peak, total, warmup, floor, start)
        steps = sorted(
            {0, 1, max(warmup - 1, 0), warmup, warmup + 1, (warmup + total) // 2, total - 1, total}
            | {total + 7, 3 * total}
        )
        for step in steps:
            expected = closed_form(step, peak, total, warmup, floor, start)
            assert math.isclose(evaluate(schedule, step), expected, rel_tol=2e-6, abs_tol=1e-7), (
                step
            )

    def test_boundaries(self):
        schedule = WarmupCosineDecay(
            0.8, total_steps=100, warmup_steps=10, final_learning_rate=0.05
        )
        assert evaluate(schedule, 0) == 0.0
        assert math.isclose(evaluate(schedule, 10), 0.8, rel_tol=1e-6)  # peak at end of warmup
        assert math.isclose(evaluate(schedule, 55), (0.8 + 0.05) / 2, rel_tol=1e-6)  # midpoint
        assert math.isclose(evaluate(schedule, 100), 0.05, rel_tol=1e-6)
        assert math.isclose(evaluate(schedule, 10_000), 0.05, rel_tol=1e-6)  # stays at floor

    def test_monotone_up_then_down(self):
        schedule = WarmupCosineDecay(1.0, total_steps=60, warmup_steps=15)
        values = np.array([evaluate(schedule, step) for step in range(61)])
        assert np.all(np.diff(values[:16]) > 0)
        assert np.all(np.diff(values[15:]) <= 1e-7)

    def test_works_on_a_step_tensor_inside_an_optimizer(self):
        schedule = WarmupCosineDecay(0.2, total_steps=4, warmup_steps=2)
        optimizer = keras.optimizers.SGD(schedule)
        variable = keras.Variable(np.zeros(3, dtype="float32"))
        rates = []
        for _ in range(4):
            rates.append(float(keras.ops.convert_to_numpy(optimizer.learning_rate)))
            optimizer.apply([keras.ops.ones(3)], [variable])
        expected = [closed_form(step, 0.2, 4, 2, 0.0, 0.0) for step in range(4)]
        np.testing.assert_allclose(rates, expected, rtol=1e-6, atol=1e-8)
        np.testing.assert_allclose(
            keras.ops.convert_to_numpy(variable), -sum(expected) * np.ones(3), rtol=1e-6
        )

    def test_serialization_round_trip(self):
        schedule = WarmupCosineDecay(0.5, 1000, 100, 0.0005, 0.01, name="supcon")
        config = schedule.get_config()
        assert WarmupCosineDecay.from_config(config).get_config() == config
        restored = keras.optimizers.schedules.deserialize(
            keras.optimizers.schedules.serialize(schedule)
        )
        assert isinstance(restored, WarmupCosineDecay)
        assert restored.get_config() == config
        for step in (0, 50, 100, 600, 1000):
            assert evaluate(restored, step) == evaluate(schedule, step)

    def test_saved_in_optimizer_of_keras_model(self, tmp_path):
        model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
        model.compile(optimizer=keras.optimizers.SGD(WarmupCosineDecay(0.1, 20, 2)), loss="mse")
        model.save(tmp_path / "model.keras")
        restored = keras.saving.load_model(tmp_path / "model.keras")
        saved = restored.optimizer.get_config()["learning_rate"]
        assert saved["class_name"] == "WarmupCosineDecay"
        assert saved["config"] == WarmupCosineDecay(0.1, 20, 2).get_config()

    @pytest.mark.parametrize(
        ("arguments", "match"),
        [
            ({"learning_rate": -0.1, "total_steps": 10}, "`learning_rate` must be a finite number"),
            ({"learning_rate": "0.1", "total_steps": 10}, "`learning_rate` must be a number"),
            ({"learning_rate": 0.1, "total_steps": 0}, "`total_steps` must be an integer >= 1"),
            ({"learning_rate": 0.1, "total_steps": 10.0}, "`total_steps` must be an integer"),
            (
                {"learning_rate": 0.1, "total_steps": 10, "warmup_steps": 11},
                "`warmup_steps`=11 must not exceed `total_steps`=10",
            ),
            (
                {"learning_rate": 0.1, "total_steps": 10, "final_learning_rate": 0.2},
                "`final_learning_rate`=0.2 must not exceed the peak",
            ),
            (
                {"learning_rate": 0.1, "total_steps": 10, "warmup_start_learning_rate": -1.0},
                "`warmup_start_learning_rate` must be a finite number",
            ),
        ],
    )
    def test_errors(self, arguments, match):
        with pytest.raises(ValueError, match=match):
            WarmupCosineDecay(**arguments)


class TestScaleLearningRate:
    @pytest.mark.parametrize(
        ("base", "batch", "expected"),
        [(0.3, 4096, 4.8), (0.4, 6144, 9.6), (0.5, 256, 0.5), (0.1, 128, 0.05)],
    )
    def test_linear_rule(self, base, batch, expected):
        assert math.isclose(scale_learning_rate(base, batch), expected, rel_tol=1e-12)

    def test_reference_batch(self):
        assert math.isclose(scale_learning_rate(0.1, 1024, reference_batch_size=512), 0.2)

    @pytest.mark.parametrize(
        ("arguments", "match"),
        [
            ((0.1, 0), "`batch_size` must be an integer >= 1"),
            ((-0.1, 256), "`base_learning_rate` must be > 0.0, got -0.1"),
            ((float("nan"), 256), "`base_learning_rate` must be a finite number"),
            ((0.1, 256.0), "`batch_size` must be an integer"),
        ],
    )
    def test_errors(self, arguments, match):
        with pytest.raises(ValueError, match=match):
            scale_learning_rate(*arguments)


class TestBuildSchedule:
    def test_constant_without_warmup_is_a_float(self):
        assert build_schedule("constant", 0.25) == 0.25

    def test_constant_with_warmup(self):
        schedule = build_schedule("constant", 0.3, total_steps=100, warmup_steps=10)
        assert evaluate(schedule, 5) == pytest.approx(0.15, rel=1e-6)
        for step in (10, 50, 99, 100, 500):
            assert evaluate(schedule, step) == pytest.approx(0.3, rel=1e-6)

    def test_cosine(self):
        schedule = build_schedule(
            "cosine", 0.5, total_steps=200, warmup_steps=20, final_learning_rate=0.001
        )
        for step in (0, 20, 110, 200):
            assert evaluate(schedule, step) == pytest.approx(
                closed_form(step, 0.5, 200, 20, 0.001, 0.0), rel=2e-6, abs=1e-7
            )

    def test_names(self):
        assert SCHEDULES == ("constant", "cosine")

    @pytest.mark.parametrize(
        ("arguments", "match"),
        [
            ({"name": "step"}, r"Unknown learning-rate schedule 'step'. Expected one of"),
            ({"name": "cosine", "learning_rate": 0.1}, "`total_steps` is needed for schedule"),
            ({"name": "constant", "warmup_steps": -1}, "`warmup_steps` must be an integer >= 0"),
        ],
    )
    def test_errors(self, arguments, match):
        with pytest.raises(ValueError, match=match):
            build_schedule(**arguments)


class TestPlotSchedule:
    def test_writes_png(self, tmp_path):
        path = plot_schedule(WarmupCosineDecay(0.5, 100, 10), 100, tmp_path / "plots" / "lr.png")
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    def test_constant_float(self, tmp_path):
        path = plot_schedule(0.1, 10, tmp_path / "constant.png")
        assert path.stat().st_size > 0

    @pytest.mark.parametrize(
        ("steps", "name", "match"),
        [(0, "lr.png", "`steps` must be an integer >= 1"), (10, "lr.pdf", "must name a .png file")],
    )
    def test_errors(self, tmp_path, steps, name, match):
        with pytest.raises(ValueError, match=match):
            plot_schedule(0.1, steps, tmp_path / name)
