"""Tests of gradient caching in `SupConModel` (supcon_tf/gradient_cache.py).

The references are computed without the cache: Keras' own `train_step` on the whole
batch, or one tape over the chunked forward pass (for dropout and BatchNorm, whose
per-chunk draws and statistics are the documented behaviour), and float64 NumPy
transcriptions of BatchNorm and of the loss (tests/reference.py).
"""

import keras
import numpy as np
import pytest
import tensorflow as tf
from absl import flags

from supcon_tf import experiment
from supcon_tf.cli.flags import config_from_flags, define_flags
from supcon_tf.losses import SupervisedContrastiveLoss
from supcon_tf.models import SupConModel, gradient_cache
from supcon_tf.models.layers import ProjectionHead
from tests._gradient_cache_worker import build_model, fit_one_step, network_arrays
from tests._processes import run_module, run_on_replicas
from tests.reference import supcon_reference

SHAPE = (6, 6, 1)
BATCH = 20
LEARNING_RATE = 0.5
# Measured: the cached and the plain step differ by <= 2e-6 of the largest update
# (float32 round-off of summing the chunks' gradients in another order).
UPDATE_RTOL = 1e-4


def _data(num_samples=BATCH, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.random((num_samples, *SHAPE)).astype("float32")
    return images, (np.arange(num_samples) % 3).astype("int32")


def _encoder(dropout=0.0, batch_norm=False, regularizer=None):
    layers = [keras.Input(SHAPE), keras.layers.Conv2D(4, 3, activation="tanh")]
    layers.append(keras.layers.Flatten())
    if dropout:
        layers.append(keras.layers.Dropout(dropout, seed=5))
    layers.append(
        keras.layers.Dense(
            6, use_bias=not batch_norm, kernel_regularizer=regularizer, name="features"
        )
    )
    if batch_norm:
        layers.append(keras.layers.BatchNormalization(name="batch_norm"))
    layers.append(keras.layers.Activation("tanh"))
    return keras.Sequential(layers)


def _model(chunk_size, augmenter=None, loss=None, optimizer=None, **encoder_options):
    """A compiled, built model; the same arguments give the same initial state."""
    keras.utils.set_random_seed(0)
    model = SupConModel(
        _encoder(**encoder_options),
        ProjectionHead(output_units=8, num_hidden_layers=0),
        augmenter=augmenter,
        gradient_cache_chunk_size=chunk_size,
    )
    model.compile(
        optimizer=optimizer or keras.optimizers.SGD(LEARNING_RATE),
        loss=loss or SupervisedContrastiveLoss(temperature=0.1),
    )
    model.build((None, *SHAPE))
    return model


def _state(model):
    return [np.array(variable) for variable in model.variables]


def _fit_step(model, images, labels):
    history = model.fit(images, labels, batch_size=len(images), epochs=1, verbose=0, shuffle=False)
    return history.history["loss"][0]


def _direct_step(model, images, labels, chunk_size):
    """One SGD step with one tape over the chunked forward pass (no gradient cache)."""
    views = model.draw_views(images, training=True)
    with tf.GradientTape() as tape:
        chunks = [
            model.embed_views(views[:, start : start + chunk_size], training=True)
            for start in range(0, len(images), chunk_size)
        ]
        loss = model.compute_loss(y=labels, y_pred=tf.concat(chunks, axis=0))
    gradients = tape.gradient(loss, model.trainable_weights)
    for variable, gradient in zip(model.trainable_weights, gradients, strict=True):
        variable.assign(variable - LEARNING_RATE * gradient)
    return float(loss)


def assert_same_step(initial, got, expected, rtol=1e-5, update_rtol=UPDATE_RTOL):
    """Same weights (`rtol` of each tensor's largest entry) and same updates.

    Updates are compared relative to the largest update of the tensor, a stricter
    check than the weights when the updates are small.
    """
    for before, new, reference in zip(initial, got, expected, strict=True):
        scale = np.abs(reference).max()
        np.testing.assert_allclose(new, reference, rtol=0, atol=rtol * scale)
        update, reference_update = new - before, reference - before
        scale = np.abs(reference_update).max()
        np.testing.assert_allclose(update, reference_update, rtol=0, atol=update_rtol * scale)


class TestExactness:
    @pytest.mark.parametrize(
        "options",
        [
            {"chunk_size": 6},  # 20 = 6 + 6 + 6 + 2: a partial last chunk
            pytest.param({"chunk_size": 1}, marks=pytest.mark.slow),
            pytest.param({"chunk_size": 32}, marks=pytest.mark.slow),  # one chunk > batch
            pytest.param({"chunk_size": 7, "simclr": True}, marks=pytest.mark.slow),
            {"chunk_size": 5, "implementation": "blocked"},
            {"chunk_size": 4, "summation": "in", "contrast_mode": "one"},
            {"chunk_size": 6, "regularizer": "l2"},
        ],
        ids=lambda options: "-".join(f"{key}={value}" for key, value in options.items()),
    )
    def test_step_equals_the_plain_step(self, options):
        """Augmentation draws included: the views are drawn once, as the plain step does."""
        options = dict(options)
        chunk_size = options.pop("chunk_size")
        labels = None if options.pop("simclr", False) else _data()[1]
        regularizer = options.pop("regularizer", None)
        loss_options = {"temperature": 0.1, **options}
        if loss_options.get("implementation") == "blocked":
            loss_options["block_size"] = 7

        def model(size):
            return _model(
                size,
                augmenter=keras.layers.GaussianNoise(0.2, seed=3),
                loss=SupervisedContrastiveLoss(**loss_options),
                regularizer=regularizer,
            )

        cached, plain = model(chunk_size), model(None)
        initial = _state(plain)
        for left, right in zip(initial, _state(cached), strict=True):
            np.testing.assert_array_equal(left, right)
        images, _ = _data()
        cached_loss = _fit_step(cached, images, labels)
        plain_loss = _fit_step(plain, images, labels)
        np.testing.assert_allclose(cached_loss, plain_loss, rtol=1e-6)
        assert_same_step(initial, _state(cached), _state(plain))

    def test_dropout_replays_the_same_masks(self):
        cached = _model(6, dropout=0.5)
        reference = _model(6, dropout=0.5)
        initial = _state(cached)
        images, labels = _data()
        cached_loss = _fit_step(cached, images, labels)
        reference_loss = _direct_step(reference, images, labels, chunk_size=6)
        np.testing.assert_allclose(cached_loss, reference_loss, rtol=1e-6)
        assert_same_step(initial, _state(cached), _state(reference))

    def test_dropout_with_one_chunk_equals_the_plain_step(self):
        cached, plain = _model(BATCH, dropout=0.5), _model(None, dropout=0.5)
        initial = _state(plain)
        images, labels = _data()
        np.testing.assert_allclose(
            _fit_step(cached, images, labels), _fit_step(plain, images, labels), rtol=1e-6
        )
        assert_same_step(initial, _state(cached), _state(plain))

    def test_without_replaying_the_random_state_the_step_differs(self, monkeypatch):
        """The check above can fail: fresh dropout masks in pass 2 give another step."""
        monkeypatch.setattr(gradient_cache, "_replayed_state", lambda parts: [])
        cached = _model(6, dropout=0.5)
        reference = _model(6, dropout=0.5)
        images, labels = _data()
        _fit_step(cached, images, labels)
        _direct_step(reference, images, labels, chunk_size=6)
        differences = [
            np.abs(got - expected).max()
            for got, expected in zip(_state(cached), _state(reference), strict=True)
        ]
        assert max(differences) > 1e-3


def _numpy_batch_norm_step(model, images, labels, chunk_size):
    """float64 transcription of the documented per-chunk BatchNorm step.

    Each chunk's `V * c` rows (its images' views) are normalised by their own mean and
    (biased) variance; the moving statistics take one momentum update per chunk, in
    chunk order. Returns the loss and the moving mean and variance after the step.
    """
    kernel, bias = (np.array(weight, np.float64) for weight in model.encoder.layers[0].weights)
    dense = np.array(model.encoder.get_layer("features").kernel, np.float64)
    norm = model.encoder.get_layer("batch_norm")
    gamma, beta = np.array(norm.gamma, np.float64), np.array(norm.beta, np.float64)
    moving_mean = np.array(norm.moving_mean, np.float64)
    moving_variance = np.array(norm.moving_variance, np.float64)
    head = model.projection_head.output_layer
    head_kernel, head_bias = np.array(head.kernel, np.float64), np.array(head.bias, np.float64)

    def features(batch):  # Conv2D 3x3 valid + tanh, flatten, dense
        batch = np.asarray(batch, np.float64)
        height, width = batch.shape[1] - 2, batch.shape[2] - 2
        patches = np.stack(
            [batch[:, i : i + height, j : j + width, :] for i in range(3) for j in range(3)],
            axis=-2,
        )  # [N, h, w, 9, C]
        conv = np.tanh(np.einsum("nhwkc,kco->nhwo", patches, kernel.reshape(9, 1, -1)) + bias)
        return conv.reshape(len(batch), -1) @ dense

    embeddings = []
    for start in range(0, len(images), chunk_size):
        chunk = images[start : start + chunk_size]
        rows = features(np.concatenate([chunk, chunk]))  # two identical views, view-major
        mean, variance = rows.mean(0), rows.var(0)
        moving_mean = moving_mean * norm.momentum + mean * (1 - norm.momentum)
        moving_variance = moving_variance * norm.momentum + variance * (1 - norm.momentum)
        normalised = gamma * (rows - mean) / np.sqrt(variance + norm.epsilon) + beta
        projected = np.tanh(normalised) @ head_kernel + head_bias
        embeddings.append(projected.reshape(2, len(chunk), -1).transpose(1, 0, 2))
    loss = supcon_reference(np.concatenate(embeddings), labels, temperature=0.1).mean()
    return loss, moving_mean, moving_variance


class TestBatchNorm:
    def test_chunks_are_normalised_by_their_own_statistics(self):
        model = _model(6, batch_norm=True)
        images, labels = _data()
        expected_loss, moving_mean, moving_variance = _numpy_batch_norm_step(
            model, images, labels, chunk_size=6
        )
        full_batch_loss, _, _ = _numpy_batch_norm_step(model, images, labels, BATCH)
        assert abs(expected_loss - full_batch_loss) > 1e-2  # the definitions differ
        loss = _fit_step(model, images, labels)
        np.testing.assert_allclose(loss, expected_loss, rtol=1e-5)
        norm = model.encoder.get_layer("batch_norm")
        np.testing.assert_allclose(norm.moving_mean, moving_mean, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(norm.moving_variance, moving_variance, rtol=1e-5, atol=1e-6)

    def test_step_is_the_exact_gradient_of_the_per_chunk_loss(self):
        cached = _model(6, batch_norm=True)
        reference = _model(6, batch_norm=True)
        initial = _state(cached)
        images, labels = _data()
        np.testing.assert_allclose(
            _fit_step(cached, images, labels),
            _direct_step(reference, images, labels, chunk_size=6),
            rtol=1e-6,
        )
        assert_same_step(initial, _state(cached), _state(reference))


@pytest.fixture
def restore_dtype_policy():
    policy = keras.mixed_precision.global_policy()
    yield
    keras.mixed_precision.set_global_policy(policy)


# float16 round-off of one step against its float32 twin, relative to the largest entry
# of each weight tensor and of each update. Measured on TensorFlow's Eigen float16 path
# (an AMD EPYC with AVX2, the same with TF_ENABLE_ONEDNN_OPTS=0 and =1: oneDNN has float16
# kernels only on CPUs with AVX512-FP16 and falls back to Eigen elsewhere): the cached
# step 1.5e-3, the plain step 3.3e-3. On an AVX-512 AMD the cached and the plain float16
# steps were reported 7.5e-3 apart, on an Intel Xeon with oneDNN's float16 kernels 4e-4.
# Twice the worst: an unscaled update (256 times too large) or a scale applied twice
# still fails by orders of magnitude.
FLOAT16_RTOL = 1.5e-2


def _loss_scaled_model(chunk_size):
    # 2**8: the default 2**15 overflows this model's float16 gradients (the step would
    # be skipped and compare nothing).
    return _model(
        chunk_size,
        optimizer=keras.optimizers.LossScaleOptimizer(
            keras.optimizers.SGD(LEARNING_RATE), initial_scale=2.0**8
        ),
    )


def _loss_scaled_step(chunk_size, policy):
    """`(initial state, state after one step, loss, final scale)` under `policy`."""
    keras.mixed_precision.set_global_policy(policy)
    model = _loss_scaled_model(chunk_size)
    assert model.compute_dtype == keras.mixed_precision.global_policy().compute_dtype
    initial = _state(model)
    loss = _fit_step(model, *_data())
    return initial, _state(model), loss, float(model.optimizer.dynamic_scale)


@pytest.mark.usefixtures("restore_dtype_policy")
class TestMixedPrecision:
    """Loss scaling through the cached step.

    That the cache composes with loss scaling (scale the loss, unscale the gradients) is
    an exact claim, so it is tested in float32, where the cached and the plain step agree
    to float32 round-off. Under `mixed_float16` the chunks' float16 matmuls round
    differently from the whole batch's, and differently on each CPU kernel, so each
    float16 step is tested against its own float32 twin at float16 precision.
    """

    def test_loss_scaled_step_equals_the_plain_step(self):
        initial, cached, cached_loss, cached_scale = _loss_scaled_step(6, "float32")
        plain_initial, plain, plain_loss, plain_scale = _loss_scaled_step(None, "float32")
        for before, reference in zip(initial, plain_initial, strict=True):
            np.testing.assert_array_equal(before, reference)
        np.testing.assert_allclose(cached_loss, plain_loss, rtol=1e-6)
        # Neither step was skipped, and the gradients were unscaled (an update 256
        # times too large would fail the comparison).
        assert cached_scale == plain_scale == 2.0**8
        moved = [np.abs(new - before).max() for new, before in zip(cached, initial, strict=True)]
        assert max(moved) > 0.1
        assert_same_step(initial, cached, plain)

    @pytest.mark.parametrize("chunk_size", [6, None], ids=["cached", "plain"])
    def test_float16_step_is_its_float32_twin_to_float16_precision(self, chunk_size):
        initial, expected, expected_loss, _ = _loss_scaled_step(chunk_size, "float32")
        half_initial, got, loss, scale = _loss_scaled_step(chunk_size, "mixed_float16")
        for before, reference in zip(half_initial, initial, strict=True):
            np.testing.assert_array_equal(before, reference)
        assert scale == 2.0**8  # not skipped
        np.testing.assert_allclose(loss, expected_loss, rtol=FLOAT16_RTOL)
        assert_same_step(initial, got, expected, rtol=FLOAT16_RTOL, update_rtol=FLOAT16_RTOL)

    def test_overflowing_scale_skips_the_step_and_halves_the_scale(self):
        keras.mixed_precision.set_global_policy("mixed_float16")
        optimizer = keras.optimizers.LossScaleOptimizer(
            keras.optimizers.SGD(LEARNING_RATE), initial_scale=2.0**60
        )
        model = _model(6, optimizer=optimizer)
        weights = [np.array(weight) for weight in model.trainable_weights]
        _fit_step(model, *_data())
        for before, after in zip(weights, model.trainable_weights, strict=True):
            np.testing.assert_array_equal(before, np.array(after))
        assert float(optimizer.dynamic_scale) == 2.0**59


class TestMirroredStrategy:
    def test_one_replica_strategy_scope(self):
        """The default-suite twin: the cached step inside a strategy's replica context."""
        strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
        with strategy.scope():
            distributed = _model(6, batch_norm=True)
        single = _model(6, batch_norm=True)
        initial = _state(single)
        images, labels = _data()
        np.testing.assert_allclose(
            _fit_step(distributed, images, labels), _fit_step(single, images, labels), rtol=1e-6
        )
        assert_same_step(initial, _state(distributed), _state(single))

    @pytest.mark.slow
    def test_fit_step_on_two_replicas_equals_one_device(self, tmp_path):
        """The cached step under gathering is the global-batch step.

        Shards of 4 samples split into chunks of 2 normalise the same rows on two
        replicas as on one device, so the distributed cached step must equal the
        single-device cached step; the plain distributed step (BatchNorm per shard of
        4) equals the single-device cached step with chunks of 4.
        """
        rng = np.random.default_rng(2)
        arrays = network_arrays(rng, chunk_size=2)
        results = run_on_replicas("tests._gradient_cache_worker", arrays, tmp_path, timeout=300)
        assert int(results["num_replicas"]) == 2
        initial = [arrays["w1"], np.ones(10), np.zeros(10), arrays["w2"], arrays["b2"]]
        for name, chunk_size in (("cached", 2), ("plain", 4)):
            expected, loss = fit_one_step(build_model(arrays, chunk_size), arrays)
            got = [results[f"{name}_weight_{index}"] for index in range(len(expected))]
            np.testing.assert_allclose(results[f"{name}_loss"], loss, rtol=1e-5)
            assert_same_step(initial, got, expected)
        assert "Gradient caching cannot synchronise BatchNorm" in str(results["synchronized_error"])


class TestConfiguration:
    def test_get_config_round_trip(self):
        model = _model(6)
        config = model.get_config()
        assert config["gradient_cache_chunk_size"] == 6
        clone = SupConModel.from_config(config)
        assert clone.gradient_cache_chunk_size == 6
        assert SupConModel.from_config(_model(None).get_config()).gradient_cache_chunk_size is None

    def test_saving_round_trip(self, tmp_path):
        model = _model(4)
        images, labels = _data()
        _fit_step(model, images, labels)
        model.save(tmp_path / "cached.keras")
        loaded = keras.saving.load_model(tmp_path / "cached.keras")
        assert loaded.gradient_cache_chunk_size == 4
        np.testing.assert_allclose(loaded(images), model(images), rtol=1e-6, atol=1e-6)

    def test_flag_reaches_the_config_and_the_model(self, tmp_path, supcon_model_options):
        flag_values = flags.FlagValues()
        define_flags(flag_values)
        flag_values(["supcon-train", "--gradient_cache_chunk_size=16", f"--model_dir={tmp_path}"])
        config = config_from_flags(flag_values)
        assert config.gradient_cache_chunk_size == 16
        assert experiment.ExperimentConfig().gradient_cache_chunk_size is None

        assert supcon_model_options(config)["gradient_cache_chunk_size"] == 16

    def test_flag_and_config_reject_a_non_positive_chunk(self):
        flag_values = flags.FlagValues()
        define_flags(flag_values)
        with pytest.raises(flags.Error, match="gradient_cache_chunk_size"):
            flag_values(["supcon-train", "--gradient_cache_chunk_size=0"])
        with pytest.raises(ValueError, match="`gradient_cache_chunk_size` must be a positive"):
            experiment.ExperimentConfig(gradient_cache_chunk_size=0)

    def test_synchronised_batch_norm_is_refused(self):
        flag_values = flags.FlagValues()
        define_flags(flag_values)
        with pytest.raises(flags.Error, match="--sync_batchnorm cannot be combined"):
            flag_values(["supcon-train", "--gradient_cache_chunk_size=8", "--sync_batchnorm"])
        with pytest.raises(ValueError, match="`sync_batchnorm=True` cannot be combined"):
            experiment.ExperimentConfig(gradient_cache_chunk_size=8, sync_batchnorm=True)

    @pytest.mark.parametrize("value", [0, -3, 2.5, True, "64"])
    def test_invalid_chunk_size(self, value):
        with pytest.raises(
            ValueError, match="`gradient_cache_chunk_size` must be a positive integer"
        ):
            SupConModel(_encoder(), gradient_cache_chunk_size=value)


def test_benchmark_script_reports_the_memory_and_loss_of_each_configuration():
    # The small default twin of the slow test below: memory rows only (--timing_batch=0).
    result = run_module(
        "benchmarks.gradient_cache",
        [
            "--encoder=small_cnn",
            "--batch=16",
            "--chunk=8",
            "--memory_steps=2",
            "--timing_batch=0",
            "--no-append",
        ],
    )
    header, plain, cached = [line for line in result.stdout.splitlines() if line[:2] == "| "]
    assert header.endswith("| s per step, median | loss per step |")
    assert plain.startswith("| none (plain step) |") and cached.startswith("| 8 |")
    for row in (plain, cached):
        losses = [float(loss) for loss in row.rstrip(" |").split("|")[-1].split(",")]
        assert len(losses) == 2 and np.all(np.isfinite(losses))
    assert "Step-time ratio" not in result.stdout


@pytest.mark.slow
def test_benchmark_script_reports_memory_and_the_time_ratio():
    result = run_module(
        "benchmarks.gradient_cache",
        [
            "--encoder=small_cnn",
            "--batch=32",
            "--chunk=8",
            "--timing_batch=32",
            "--rounds=1",
            "--no-append",
        ],
        timeout=900,
    )
    assert "| none (plain step) |" in result.stdout and "| 8 |" in result.stdout
    assert "Step-time ratio cached / plain: **" in result.stdout
