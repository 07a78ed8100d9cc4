"""Tests of the label-aware memory bank: the loss with memory contrasts, the FIFO queue
(`supcon_tf.models.memory_bank.MemoryBank`) and `SupConModel(memory_size=...)`.

The loss oracle is the float64 transcription of Eq. 2 / Eq. 3 in tests/reference.py,
with the bank entries as extra contrasts.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from supcon_tf.losses import SupervisedContrastiveLoss, supervised_contrastive_loss
from supcon_tf.models import SupConModel
from supcon_tf.models.layers import ProjectionHead
from supcon_tf.models.memory_bank import MemoryBank
from tests._gradient_cache_worker import build_memory_model, network_arrays
from tests._processes import run_on_replicas
from tests.reference import supcon_reference

# Measured: float32 kernels agree with the float64 oracle to ~1e-6 relative.
LOSS_RTOL = 1e-5


def _embeddings(batch, views, seed):
    return np.random.default_rng(seed).normal(size=(batch, views, 6)).astype("float32")


def _labels(kind, size, seed):
    rng = np.random.default_rng(seed)
    if kind == "integer":
        return rng.integers(0, 3, size=size)
    if kind == "multi_hot":
        hot = (rng.random((size, 4)) < 0.35).astype("float32")
        hot[np.arange(size), rng.integers(0, 4, size=size)] = 1.0
        return hot
    return None


class TestLossWithMemory:
    @pytest.mark.parametrize("labels", ["integer", "multi_hot", "none"])
    @pytest.mark.parametrize("summation", ["out", "in"])
    @pytest.mark.parametrize("contrast_mode", ["all", "one"])
    @pytest.mark.parametrize("implementation", ["dense", "blocked"])
    def test_equals_eq2_with_the_bank_as_extra_contrasts(
        self, labels, summation, contrast_mode, implementation
    ):
        batch, memory = _embeddings(6, 2, 0), _embeddings(5, 2, 1)
        batch_labels, memory_labels = _labels(labels, 6, 2), _labels(labels, 5, 3)
        options = {"temperature": 0.2, "summation": summation, "contrast_mode": contrast_mode}
        got = supervised_contrastive_loss(
            batch_labels,
            batch,
            memory_embeddings=memory,
            memory_labels=memory_labels,
            implementation=implementation,
            block_size=4 if implementation == "blocked" else None,
            **options,
        )
        expected = supcon_reference(
            batch, batch_labels, memory=memory, memory_labels=memory_labels, **options
        )
        np.testing.assert_allclose(got, expected, rtol=LOSS_RTOL)
        # The bank changes the loss (the test can fail).
        without = supcon_reference(batch, batch_labels, **options)
        assert np.abs(expected - without).max() > 1e-2

    def test_single_view_embeddings_and_a_single_view_bank(self):
        batch, memory = _embeddings(6, 1, 4)[:, 0], _embeddings(8, 1, 5)[:, 0]
        labels, memory_labels = _labels("integer", 6, 6), _labels("integer", 8, 7)
        got = supervised_contrastive_loss(
            labels, batch, memory_embeddings=memory, memory_labels=memory_labels
        )
        expected = supcon_reference(batch, labels, memory=memory, memory_labels=memory_labels)
        np.testing.assert_allclose(got, expected, rtol=LOSS_RTOL)

    def test_the_bank_gets_no_gradient_and_the_batch_the_right_one(self):
        batch, memory = tf.constant(_embeddings(4, 2, 8)), tf.constant(_embeddings(3, 2, 9))
        labels, memory_labels = _labels("integer", 4, 10), _labels("integer", 3, 11)
        with tf.GradientTape(persistent=True) as tape:
            tape.watch([batch, memory])
            loss = tf.reduce_mean(
                supervised_contrastive_loss(
                    labels, batch, memory_embeddings=memory, memory_labels=memory_labels
                )
            )
        assert tape.gradient(loss, memory) is None
        gradient = tape.gradient(loss, batch).numpy()
        # Central finite differences of the float64 oracle.
        step, base = 1e-5, batch.numpy().astype("float64")
        numeric = np.zeros_like(base)
        for index in np.ndindex(base.shape):
            plus, minus = base.copy(), base.copy()
            plus[index] += step
            minus[index] -= step
            numeric[index] = (
                supcon_reference(plus, labels, memory=memory.numpy(), memory_labels=memory_labels)
                - supcon_reference(
                    minus, labels, memory=memory.numpy(), memory_labels=memory_labels
                )
            ).mean() / (2 * step)
        np.testing.assert_allclose(gradient, numeric, rtol=1e-3, atol=1e-4)

    def test_loss_class_passes_the_bank_on(self):
        batch, memory = _embeddings(6, 2, 12), _embeddings(4, 2, 13)
        labels, memory_labels = _labels("integer", 6, 14), _labels("integer", 4, 15)
        loss = SupervisedContrastiveLoss(temperature=0.1)
        got = loss(labels, batch, memory_embeddings=memory, memory_labels=memory_labels)
        expected = supcon_reference(batch, labels, memory=memory, memory_labels=memory_labels)
        np.testing.assert_allclose(got, expected.mean(), rtol=LOSS_RTOL)

    @pytest.mark.parametrize(
        ("arguments", "match"),
        [
            ({"memory_labels": None}, "`memory_labels` must be given"),
            ({"memory_embeddings": np.zeros((4, 3, 6), "float32")}, "same views and width"),
            ({"memory_labels": np.zeros((2,), "int64")}, "`memory_labels` has 2 rows"),
        ],
    )
    def test_errors(self, arguments, match):
        memory = {
            "memory_embeddings": _embeddings(4, 2, 16),
            "memory_labels": np.zeros((4,), "int64"),
            **arguments,
        }
        with pytest.raises(ValueError, match=match):
            supervised_contrastive_loss(np.zeros(6, "int64"), _embeddings(6, 2, 17), **memory)

    def test_memory_labels_without_batch_labels_are_refused(self):
        with pytest.raises(ValueError, match="`memory_labels` without `y_true`"):
            supervised_contrastive_loss(
                None,
                _embeddings(6, 2, 18),
                memory_embeddings=_embeddings(4, 2, 19),
                memory_labels=np.zeros(4, "int64"),
            )


class TestMemoryBank:
    def test_holds_the_last_k_samples_in_order(self):
        bank = MemoryBank(size=5)
        bank.build((None, 2, 3))
        rng = np.random.default_rng(0)
        batches = [rng.normal(size=(size, 2, 3)).astype("float32") for size in (2, 3, 1, 4)]
        for step, batch in enumerate(batches):
            bank.enqueue(batch, np.arange(len(batch)) + 10 * step)
        embeddings, labels = bank.contents()
        all_embeddings = np.concatenate(batches)
        all_labels = np.concatenate([np.arange(len(b)) + 10 * s for s, b in enumerate(batches)])
        np.testing.assert_array_equal(embeddings, all_embeddings[-5:])
        np.testing.assert_array_equal(labels, all_labels[-5:])

    def test_partly_filled_and_oversized_batches(self):
        bank = MemoryBank(size=3)
        bank.build((None, 1, 2))
        assert bank.contents()[0].shape == (0, 1, 2)
        batch = np.arange(10, dtype="float32").reshape(5, 1, 2)
        bank.enqueue(batch[:1], [1])
        np.testing.assert_array_equal(bank.contents()[1], [1])
        bank.enqueue(batch, [1, 2, 3, 4, 5])
        np.testing.assert_array_equal(bank.contents()[0], batch[-3:])
        np.testing.assert_array_equal(bank.contents()[1], [3, 4, 5])

    def test_errors_and_config(self):
        with pytest.raises(ValueError, match="`size` must be a positive integer, got 0"):
            MemoryBank(0)
        assert MemoryBank.from_config(MemoryBank(7).get_config()).size == 7

    def test_multi_hot_rows_built_by_the_first_enqueue(self):
        bank = MemoryBank(size=4)
        rng = np.random.default_rng(1)
        batches = [rng.normal(size=(3, 2, 3)).astype("float32") for _ in range(2)]
        hot = [_labels("multi_hot", 3, seed) for seed in (2, 3)]
        for batch, labels in zip(batches, hot, strict=True):
            bank.enqueue(batch, labels)
        assert bank.labels_shape == (None, 4)
        embeddings, labels = bank.contents()
        np.testing.assert_array_equal(embeddings, np.concatenate(batches)[-4:])
        np.testing.assert_array_equal(labels, np.concatenate(hot)[-4:])
        bank.enqueue(batches[0][:1])  # no labels: an all-zero row (never a positive)
        np.testing.assert_array_equal(bank.contents()[1][-1], np.zeros(4))

    @pytest.mark.parametrize("labels_shape", [None, (None,), (None, 1)])
    def test_integer_layouts(self, labels_shape):
        bank = MemoryBank(size=2)
        bank.build((None, 1, 2), labels_shape)
        assert bank.labels_shape == (None,) and bank.labels.dtype == "int64"

    def test_layout_errors(self):
        bank = MemoryBank(size=2)
        with pytest.raises(ValueError, match=r"known number of classes; got .*\(None, None\)"):
            bank.build((None, 1, 2), (None, None))
        with pytest.raises(ValueError, match=r"integer labels \[batch\].*\(4, 2, 3\)"):
            bank.build((None, 1, 2), (4, 2, 3))
        bank.build((None, 1, 2), (None, 3))
        with pytest.raises(ValueError, match=r"stores labels of shape \(None, 3\).*\(1, 2\)"):
            bank.enqueue(np.zeros((1, 1, 2), "float32"), np.zeros((1, 2), "float32"))


def _supcon_model(memory_size):
    keras.utils.set_random_seed(0)
    encoder = keras.Sequential([keras.Input((5,)), keras.layers.Dense(6, activation="tanh")])
    model = SupConModel(
        encoder, ProjectionHead(output_units=4, num_hidden_layers=0), memory_size=memory_size
    )
    # Learning rate 0: the embeddings of every step are those of the initial weights.
    model.compile(optimizer=keras.optimizers.SGD(0.0), loss=SupervisedContrastiveLoss(0.1))
    model.build((None, 5))
    return model


class TestSupConModelQueue:
    def test_queue_after_several_steps_and_the_loss_that_uses_it(self):
        model = _supcon_model(memory_size=6)
        rng = np.random.default_rng(0)
        batches = [rng.normal(size=(4, 5)).astype("float32") for _ in range(3)]
        labels = [rng.integers(0, 3, size=4) for _ in range(3)]
        losses = [model.train_on_batch(x, y) for x, y in zip(batches, labels, strict=True)]
        embeddings = [model(x).numpy() for x in batches]  # no augmenter: views equal
        stored, stored_labels = model.memory_bank.contents()
        np.testing.assert_allclose(stored, np.concatenate(embeddings)[-6:], rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(stored_labels, np.concatenate(labels)[-6:])
        # Step 3 contrasted against the 6 samples stored after steps 1 and 2; step 1
        # against an empty bank.
        expected = supcon_reference(
            embeddings[2],
            labels[2],
            memory=np.concatenate(embeddings[:2])[-6:],
            memory_labels=np.concatenate(labels[:2])[-6:],
        ).mean()
        np.testing.assert_allclose(losses[2], expected, rtol=LOSS_RTOL)
        np.testing.assert_allclose(
            losses[0], supcon_reference(embeddings[0], labels[0]).mean(), rtol=LOSS_RTOL
        )

    def test_saving_keeps_the_queue(self, tmp_path):
        model = _supcon_model(memory_size=5)
        rng = np.random.default_rng(1)
        for _ in range(2):
            model.train_on_batch(rng.normal(size=(4, 5)).astype("float32"), rng.integers(0, 3, 4))
        model.save(tmp_path / "bank.keras")
        loaded = keras.saving.load_model(tmp_path / "bank.keras")
        assert loaded.memory_size == 5
        for got, expected in zip(
            loaded.memory_bank.contents(), model.memory_bank.contents(), strict=True
        ):
            np.testing.assert_array_equal(got, expected)

    def test_multi_hot_queue_and_the_loss_that_uses_it(self):
        """Positives in the bank are the entries sharing a class with the anchor (Eq. 2)."""
        model = _supcon_model(memory_size=6)
        rng = np.random.default_rng(2)
        batches = [rng.normal(size=(4, 5)).astype("float32") for _ in range(3)]
        labels = [_labels("multi_hot", 4, seed) for seed in (5, 6, 7)]
        losses = [model.train_on_batch(x, y) for x, y in zip(batches, labels, strict=True)]
        embeddings = [model(x).numpy() for x in batches]
        stored, stored_labels = model.memory_bank.contents()
        np.testing.assert_allclose(stored, np.concatenate(embeddings)[-6:], rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(stored_labels, np.concatenate(labels)[-6:])
        memory = np.concatenate(embeddings[:2])[-6:]
        memory_labels = np.concatenate(labels[:2])[-6:]
        expected = supcon_reference(
            embeddings[2], labels[2], memory=memory, memory_labels=memory_labels
        ).mean()
        np.testing.assert_allclose(losses[2], expected, rtol=LOSS_RTOL)
        # The test can fail: the bank's multi-hot positives change the loss (against a
        # bank of negatives only, and against one class per stored sample).
        for other_labels in (np.zeros_like(memory_labels), np.eye(4)[memory_labels.argmax(1)]):
            other = supcon_reference(
                embeddings[2], labels[2], memory=memory, memory_labels=other_labels
            ).mean()
            assert abs(other - expected) > 10 * LOSS_RTOL * abs(expected)

    def test_saving_keeps_a_multi_hot_queue(self, tmp_path):
        model = _supcon_model(memory_size=5)
        rng = np.random.default_rng(3)
        for seed in (8, 9):
            model.train_on_batch(
                rng.normal(size=(4, 5)).astype("float32"), _labels("multi_hot", 4, seed)
            )
        model.save(tmp_path / "hot.keras")
        loaded = keras.saving.load_model(tmp_path / "hot.keras")
        assert loaded.memory_bank.labels_shape == (None, 4)
        for got, expected in zip(
            loaded.memory_bank.contents(), model.memory_bank.contents(), strict=True
        ):
            np.testing.assert_array_equal(got, expected)

    def test_the_bank_is_built_before_a_checkpoint_is_restored(self):
        model = _supcon_model(memory_size=3)
        assert not model.memory_bank.built  # no labels seen yet
        model.build_memory_bank((None, 2))
        assert model.memory_bank.labels_shape == (None, 2)
        assert model.get_build_config()["labels_shape"] == (None, 2)
        # A model saved before banks had a label layout stored integer labels.
        legacy = _supcon_model(memory_size=3)
        legacy.build_from_config({"input_shape": (None, 5)})
        assert legacy.memory_bank.labels_shape == (None,)
        unbuilt = _supcon_model(memory_size=3)
        unbuilt.build_from_config(unbuilt.get_build_config())
        assert not unbuilt.memory_bank.built

    def test_errors(self):
        with pytest.raises(ValueError, match="`memory_size` must be a non-negative integer"):
            SupConModel(_supcon_model(0).encoder, memory_size=-1)
        model = _supcon_model(memory_size=4)
        model.train_on_batch(np.zeros((4, 5), "float32"), np.arange(4))
        hot = np.eye(3, dtype="float32")[[0, 1, 2, 0]]
        with pytest.raises(ValueError, match=r"stores labels of shape \(None,\).*\(4, 3\)"):
            model.train_on_batch(np.zeros((4, 5), "float32"), hot)


@pytest.mark.slow
def test_queue_under_mirrored_strategy_holds_the_gathered_batches(tmp_path):
    """Two replicas: every replica's queue is the global batches, in order.

    Also checks the loss of the second global batch against the single-device loss
    with the first batch in the bank.
    """
    rng = np.random.default_rng(3)
    arrays = {
        **network_arrays(rng, chunk_size=2),
        "memory_size": np.int64(12),
        "memory_x": rng.normal(size=(16, 6)).astype("float32"),
        "memory_labels": rng.integers(0, 3, size=16),
    }
    results = run_on_replicas("tests._gradient_cache_worker", arrays, tmp_path)
    single = build_memory_model(arrays, 12)
    losses = [
        single.train_on_batch(
            arrays["memory_x"][start : start + 8], arrays["memory_labels"][start : start + 8]
        )
        for start in (0, 8)
    ]
    expected_embeddings, expected_labels = single.memory_bank.contents()
    np.testing.assert_allclose(
        results["memory_embeddings"], expected_embeddings, rtol=1e-5, atol=1e-6
    )
    np.testing.assert_array_equal(results["memory_labels"], arrays["memory_labels"][-12:])
    np.testing.assert_array_equal(expected_labels, arrays["memory_labels"][-12:])
    np.testing.assert_allclose(results["memory_losses"], losses, rtol=LOSS_RTOL)


class TestConfiguration:
    def test_flag_reaches_the_config_and_the_model(self, tmp_path, supcon_model_options):
        from absl import flags

        from supcon_tf import experiment
        from supcon_tf.cli.flags import config_from_flags, define_flags

        flag_values = flags.FlagValues()
        define_flags(flag_values)
        flag_values(["supcon-train", "--memory_size=64", f"--model_dir={tmp_path}"])
        config = config_from_flags(flag_values)
        assert config.memory_size == 64 and experiment.ExperimentConfig().memory_size == 0

        assert supcon_model_options(config)["memory_size"] == 64
        with pytest.raises(ValueError, match="`memory_size` must be an integer >= 0, got -1"):
            experiment.ExperimentConfig(memory_size=-1)

    def test_get_config_round_trip(self):
        model = _supcon_model(memory_size=7)
        clone = SupConModel.from_config(model.get_config())
        assert clone.memory_size == 7 and clone.memory_bank.size == 7
