"""Tests of supcon_tf.models.layers against NumPy transcriptions."""

import keras
import numpy as np
import pytest

from supcon_tf.models.layers import L2Normalize, ProjectionHead


def _round_trip(layer, inputs, tmp_path):
    model = keras.Sequential([keras.Input(inputs.shape[1:]), layer])
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(loaded(inputs), model(inputs), rtol=1e-6, atol=1e-6)
    return loaded.layers[-1]


class TestL2Normalize:
    def test_matches_numpy(self):
        inputs = np.random.default_rng(0).normal(size=(5, 7)).astype("float32")
        expected = inputs / np.linalg.norm(inputs.astype("float64"), axis=-1, keepdims=True)
        np.testing.assert_allclose(L2Normalize()(inputs), expected, rtol=1e-5)

    def test_other_axis(self):
        inputs = np.random.default_rng(1).normal(size=(3, 4, 2)).astype("float32")
        expected = inputs / np.linalg.norm(inputs.astype("float64"), axis=1, keepdims=True)
        np.testing.assert_allclose(L2Normalize(axis=1)(inputs), expected, rtol=1e-5)

    def test_zero_vector_stays_zero(self):
        outputs = L2Normalize()(np.zeros((2, 3), dtype="float32"))
        assert np.all(np.isfinite(outputs)) and np.all(outputs.numpy() == 0)

    def test_config_and_saving(self, tmp_path):
        layer = L2Normalize(axis=-1, epsilon=1e-6, name="norm")
        config = layer.get_config()
        assert config["epsilon"] == 1e-6 and config["axis"] == -1
        assert L2Normalize.from_config(config).get_config() == config
        inputs = np.random.default_rng(2).normal(size=(2, 3)).astype("float32")
        loaded = _round_trip(layer, inputs, tmp_path)
        assert isinstance(loaded, L2Normalize) and loaded.epsilon == 1e-6

    @pytest.mark.parametrize(
        ("kwargs", "match"),
        [({"axis": 1.5}, "`axis` must be an integer"), ({"epsilon": 0.0}, "`epsilon` must be")],
    )
    def test_errors(self, kwargs, match):
        with pytest.raises(ValueError, match=match):
            L2Normalize(**kwargs)


class TestProjectionHead:
    def test_matches_numpy_mlp(self):
        inputs = np.random.default_rng(0).normal(size=(4, 6)).astype("float32")
        head = ProjectionHead(output_units=3)
        outputs = head(inputs).numpy()
        hidden, output = head.hidden_layers[0], head.output_layer
        w1, b1 = (np.asarray(v, dtype="float64") for v in (hidden.kernel, hidden.bias))
        w2, b2 = (np.asarray(v, dtype="float64") for v in (output.kernel, output.bias))
        expected = np.maximum(inputs @ w1 + b1, 0.0) @ w2 + b2
        np.testing.assert_allclose(outputs, expected, rtol=1e-5, atol=1e-5)

    def test_hidden_width_defaults_to_input_width(self):
        head = ProjectionHead()
        head(np.zeros((2, 24), dtype="float32"))
        assert head.hidden_layers[0].units == 24
        assert head.output_layer.units == 128

    def test_linear_head_and_output_activation(self):
        head = ProjectionHead(output_units=5, num_hidden_layers=0, output_activation="relu")
        outputs = head(np.random.default_rng(0).normal(size=(8, 4)).astype("float32"))
        assert head.hidden_layers == [] and outputs.shape == (8, 5)
        assert float(np.min(outputs)) >= 0.0

    def test_batch_norm_uses_batch_statistics_in_training(self):
        head = ProjectionHead(output_units=2, batch_norm=True, num_hidden_layers=1)
        inputs = np.random.default_rng(0).normal(size=(16, 3)).astype("float32")
        head(inputs, training=True)
        normalization = head.normalization_layers[0]
        hidden = inputs @ np.asarray(head.hidden_layers[0].kernel)
        # The first training call moves the moving mean 1 % towards the batch mean.
        np.testing.assert_allclose(
            np.asarray(normalization.moving_mean), 0.01 * hidden.mean(axis=0), rtol=1e-4, atol=1e-6
        )
        assert head.hidden_layers[0].bias is None

    def test_config_and_saving(self, tmp_path):
        head = ProjectionHead(
            output_units=4, hidden_units=6, num_hidden_layers=2, batch_norm=True, name="head"
        )
        config = head.get_config()
        for key, value in {
            "output_units": 4,
            "hidden_units": 6,
            "num_hidden_layers": 2,
            "batch_norm": True,
            "activation": "relu",
            "output_activation": "linear",
        }.items():
            assert config[key] == value
        assert ProjectionHead.from_config(config).get_config() == config
        inputs = np.random.default_rng(3).normal(size=(3, 5)).astype("float32")
        loaded = _round_trip(head, inputs, tmp_path)
        assert isinstance(loaded, ProjectionHead) and len(loaded.hidden_layers) == 2

    @pytest.mark.parametrize(
        ("kwargs", "match"),
        [
            ({"output_units": 0}, "`output_units` must be a positive integer"),
            ({"hidden_units": -1}, "`hidden_units` must be a positive integer or None"),
            ({"num_hidden_layers": -1}, "`num_hidden_layers` must be a non-negative"),
        ],
    )
    def test_errors(self, kwargs, match):
        with pytest.raises(ValueError, match=match):
            ProjectionHead(**kwargs)
