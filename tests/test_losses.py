"""Tests of `supcon_tf.losses` against independent float64 oracles (tests/reference.py)."""

import itertools
import math
import os
import zlib

import keras
import numpy as np
import pytest
import tensorflow as tf

from supcon_tf import (
    NPairsLoss,
    SupervisedContrastiveLoss,
    npairs_loss,
    supervised_contrastive_loss,
)
from tests.reference import npairs_reference, supcon_reference, variant_reference

RTOL = 2e-4
LABEL_KINDS = ("int", "int_column", "one_hot", "multi_hot", "none", "mask")


def make_batch(rng, batch, views, dim, label_kind, num_classes=3):
    """Random embeddings plus labels (or mask) of the requested kind."""
    if views == 1:
        features = rng.normal(size=(batch, dim))
    else:
        features = rng.normal(size=(batch, views, dim))
    ints = rng.integers(0, num_classes, size=batch)
    mask = None
    if label_kind == "int":
        labels = ints
    elif label_kind == "int_column":
        labels = ints[:, None]
    elif label_kind == "one_hot":
        labels = np.eye(num_classes)[ints]
    elif label_kind == "multi_hot":
        labels = (rng.random((batch, num_classes + 1)) < 0.35).astype("float32")
    elif label_kind == "none":
        labels = None
    elif label_kind == "mask":
        labels = None
        mask = rng.random((batch, batch)) < 0.3
    else:
        raise AssertionError(label_kind)
    return features.astype("float32"), labels, mask


def random_configs(seed, count):
    rng = np.random.default_rng(seed)
    for _ in range(count):
        yield (
            int(rng.choice([1, 2, 3, 5, 8, 17])),
            int(rng.choice([1, 2, 3])),
            int(rng.choice([2, 5, 16, 33])),
            float(rng.choice([0.01, 0.05, 0.07, 0.1, 0.5, 1.0])),
        )


class TestAgainstReference:
    @pytest.mark.parametrize(
        "contrast_mode,summation,label_kind",
        list(itertools.product(("all", "one"), ("out", "in"), LABEL_KINDS)),
    )
    def test_matches_float64_transcription(self, contrast_mode, summation, label_kind):
        seed = zlib.crc32(f"{contrast_mode}-{summation}-{label_kind}".encode()) % 2**16
        rng = np.random.default_rng(seed)
        checked = 0
        for batch, views, dim, temperature in random_configs(seed, 8):
            if label_kind == "none" and views == 1:
                views = 2
            features, labels, mask = make_batch(rng, batch, views, dim, label_kind)
            expected = supcon_reference(
                features, labels, temperature, None, contrast_mode, summation, mask=mask
            )
            got = supervised_contrastive_loss(
                labels,
                features,
                temperature=temperature,
                contrast_mode=contrast_mode,
                summation=summation,
                positive_mask=mask,
            ).numpy()
            assert got.shape == (batch,)
            np.testing.assert_allclose(got, expected, rtol=RTOL, atol=1e-5)
            checked += 1
        assert checked == 8

    @pytest.mark.parametrize("summation", ["out", "in"])
    def test_loss_class_equals_mean_of_reference(self, summation):
        rng = np.random.default_rng(3)
        features, labels, _ = make_batch(rng, 12, 2, 8, "int")
        loss = SupervisedContrastiveLoss(temperature=0.07, summation=summation)
        expected = supcon_reference(features, labels, 0.07, summation=summation).mean()
        np.testing.assert_allclose(float(loss(labels, features)), expected, rtol=RTOL)

    def test_simclr_class_call_without_labels(self):
        rng = np.random.default_rng(4)
        features = rng.normal(size=(6, 2, 8)).astype("float32")
        expected = supcon_reference(features, None, 0.5).mean()
        got = SupervisedContrastiveLoss(temperature=0.5)(None, features)
        np.testing.assert_allclose(float(got), expected, rtol=RTOL)

    def test_base_temperature_scales(self):
        rng = np.random.default_rng(5)
        features, labels, _ = make_batch(rng, 8, 2, 4, "int")
        plain = supervised_contrastive_loss(labels, features, temperature=0.1)
        scaled = supervised_contrastive_loss(
            labels, features, temperature=0.1, base_temperature=0.07
        )
        expected = supcon_reference(features, labels, 0.1, 0.07)
        np.testing.assert_allclose(scaled.numpy(), expected, rtol=RTOL)
        np.testing.assert_allclose(scaled.numpy(), plain.numpy() * 0.1 / 0.07, rtol=1e-6)

    def test_extra_trailing_dims_are_flattened(self):
        rng = np.random.default_rng(6)
        features = rng.normal(size=(5, 2, 3, 4)).astype("float32")
        labels = np.array([0, 1, 0, 1, 2])
        got = supervised_contrastive_loss(labels, features).numpy()
        expected = supcon_reference(features.reshape(5, 2, 12), labels, 0.1)
        np.testing.assert_allclose(got, expected, rtol=RTOL)

    def test_normalize_false_uses_raw_dot_products(self):
        rng = np.random.default_rng(7)
        features = rng.normal(size=(6, 2, 4)).astype("float32") * 0.3
        labels = np.array([0, 0, 1, 1, 2, 2])
        got = supervised_contrastive_loss(labels, features, temperature=0.5, normalize=False)
        expected = supcon_reference(features, labels, 0.5, normalize=False)
        np.testing.assert_allclose(got.numpy(), expected, rtol=RTOL)


class TestClosedForms:
    def test_two_samples_one_view_same_label_is_zero(self):
        # The only contrast is the only positive: log(1) = 0.
        features = np.array([[1.0, 0.0], [0.3, 0.7]], "float32")
        got = supervised_contrastive_loss([1, 1], features).numpy()
        np.testing.assert_allclose(got, [0.0, 0.0], atol=1e-6)

    def test_identical_embeddings_give_log_of_contrast_count(self):
        # All similarities equal: every log-probability is -log(N - 1).
        batch, views = 4, 3
        features = np.ones((batch, views, 5), "float32")
        for summation in ("out", "in"):
            got = supervised_contrastive_loss(np.zeros(batch), features, summation=summation)
            np.testing.assert_allclose(got.numpy(), math.log(batch * views - 1), rtol=1e-5)

    def test_orthogonal_two_class_simclr(self):
        # Sample a: e1 in both views, sample b: e2 in both views. An anchor sees its twin
        # (similarity 1) and two orthogonal views (similarity 0).
        tau = 0.2
        features = np.array([[[1, 0], [1, 0]], [[0, 1], [0, 1]]], "float32")
        expected = -(1 / tau - math.log(math.exp(1 / tau) + 2))
        got = supervised_contrastive_loss(None, features, temperature=tau)
        np.testing.assert_allclose(got.numpy(), [expected, expected], rtol=1e-5)

    def test_in_is_at_most_out(self):
        # Jensen: -log(mean p) <= -mean(log p).
        rng = np.random.default_rng(8)
        features, labels, _ = make_batch(rng, 16, 2, 8, "int")
        out = supervised_contrastive_loss(labels, features, summation="out").numpy()
        inside = supervised_contrastive_loss(labels, features, summation="in").numpy()
        assert np.all(inside <= out + 1e-5)
        assert np.any(inside < out - 1e-4)

    def test_batch_of_one_single_view_is_zero_not_nan(self):
        value = SupervisedContrastiveLoss()(np.array([3]), np.ones((1, 4), "float32"))
        assert float(value) == 0.0

    def test_anchor_without_positive_contributes_zero(self):
        rng = np.random.default_rng(9)
        features = tf.constant(rng.normal(size=(3, 4)).astype("float32"))
        with tf.GradientTape() as tape:
            tape.watch(features)
            per_sample = supervised_contrastive_loss([0, 1, 1], features)
        grads = tape.gradient(per_sample, features)
        assert per_sample.numpy()[0] == 0.0
        assert np.all(np.isfinite(grads.numpy()))


class TestGradients:
    @pytest.mark.parametrize(
        "summation,label_kind", itertools.product(("out", "in"), ("int", "none", "multi_hot"))
    )
    def test_gradient_matches_finite_differences_of_reference(self, summation, label_kind):
        rng = np.random.default_rng(10)
        features, labels, _ = make_batch(rng, 4, 2, 3, label_kind)
        features = features.astype("float64")
        temperature = 0.3
        variable = tf.constant(features)
        with tf.GradientTape() as tape:
            tape.watch(variable)
            total = tf.reduce_sum(
                supervised_contrastive_loss(
                    labels, variable, temperature=temperature, summation=summation
                )
            )
        grads = tape.gradient(total, variable).numpy()

        eps = 1e-6
        numeric = np.zeros_like(features)
        for index in np.ndindex(features.shape):
            plus, minus = features.copy(), features.copy()
            plus[index] += eps
            minus[index] -= eps
            numeric[index] = (
                supcon_reference(plus, labels, temperature, summation=summation).sum()
                - supcon_reference(minus, labels, temperature, summation=summation).sum()
            ) / (2 * eps)
        np.testing.assert_allclose(grads, numeric, rtol=1e-4, atol=1e-7)


class TestInvariances:
    def test_permutation_of_batch_permutes_losses(self):
        rng = np.random.default_rng(11)
        features, labels, _ = make_batch(rng, 10, 2, 6, "int")
        perm = rng.permutation(10)
        base = supervised_contrastive_loss(labels, features).numpy()
        permuted = supervised_contrastive_loss(labels[perm], features[perm]).numpy()
        np.testing.assert_allclose(permuted, base[perm], rtol=1e-5)

    def test_permutation_of_views_with_mode_all(self):
        rng = np.random.default_rng(12)
        features, labels, _ = make_batch(rng, 6, 3, 6, "int")
        base = supervised_contrastive_loss(labels, features).numpy()
        swapped = supervised_contrastive_loss(labels, features[:, ::-1]).numpy()
        np.testing.assert_allclose(swapped, base, rtol=1e-5)

    def test_label_renaming(self):
        rng = np.random.default_rng(13)
        features, labels, _ = make_batch(rng, 10, 2, 6, "int")
        renamed = np.array([17, -4, 1000])[labels]
        np.testing.assert_allclose(
            supervised_contrastive_loss(renamed, features).numpy(),
            supervised_contrastive_loss(labels, features).numpy(),
            rtol=1e-6,
        )

    def test_one_hot_equals_integer_labels(self):
        rng = np.random.default_rng(14)
        features, labels, _ = make_batch(rng, 9, 2, 6, "int")
        np.testing.assert_allclose(
            supervised_contrastive_loss(np.eye(3)[labels], features).numpy(),
            supervised_contrastive_loss(labels, features).numpy(),
            rtol=1e-6,
        )

    def test_scale_invariance_with_normalization(self):
        rng = np.random.default_rng(15)
        features, labels, _ = make_batch(rng, 8, 2, 6, "int")
        np.testing.assert_allclose(
            supervised_contrastive_loss(labels, features * 37.0).numpy(),
            supervised_contrastive_loss(labels, features).numpy(),
            rtol=1e-5,
        )


class TestNumerics:
    @pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
    def test_half_precision_inputs_computed_in_float32(self, dtype):
        rng = np.random.default_rng(16)
        features, labels, _ = make_batch(rng, 16, 2, 32, "int")
        half = tf.cast(features, dtype)
        expected = supcon_reference(tf.cast(half, tf.float32).numpy(), labels, 0.1)
        got = supervised_contrastive_loss(labels, half, temperature=0.1)
        assert got.dtype == tf.float32
        np.testing.assert_allclose(got.numpy(), expected, rtol=RTOL)
        value = SupervisedContrastiveLoss()(labels, half)
        assert np.isfinite(float(value))

    def test_small_temperature_stays_finite_and_exact(self):
        rng = np.random.default_rng(17)
        features, labels, _ = make_batch(rng, 32, 2, 16, "int")
        variable = tf.constant(features)
        with tf.GradientTape() as tape:
            tape.watch(variable)
            loss = supervised_contrastive_loss(labels, variable, temperature=0.01)
        grads = tape.gradient(loss, variable)
        assert np.all(np.isfinite(grads.numpy()))
        np.testing.assert_allclose(
            loss.numpy(), supcon_reference(features, labels, 0.01), rtol=RTOL
        )

    @pytest.mark.parametrize("summation", ["out", "in"])
    def test_jit_compile_matches_eager(self, summation):
        rng = np.random.default_rng(18)
        features, labels, _ = make_batch(rng, 8, 2, 16, "int")
        loss = SupervisedContrastiveLoss(summation=summation)

        @tf.function(jit_compile=True)
        def compiled(y, z):
            return loss(y, z)

        np.testing.assert_allclose(
            float(compiled(labels, features)), float(loss(labels, features)), rtol=1e-5
        )

    def test_sample_weight_is_applied_by_keras(self):
        rng = np.random.default_rng(19)
        features, labels, _ = make_batch(rng, 6, 2, 8, "int")
        weights = np.array([1.0, 0.0, 2.0, 0.5, 0.0, 1.0], "float32")
        per_sample = supcon_reference(features, labels, 0.1)
        got = SupervisedContrastiveLoss()(labels, features, sample_weight=weights)
        np.testing.assert_allclose(float(got), np.sum(per_sample * weights) / 6, rtol=RTOL)

    def test_reduction_none_returns_per_sample(self):
        rng = np.random.default_rng(20)
        features, labels, _ = make_batch(rng, 5, 2, 8, "int")
        got = SupervisedContrastiveLoss(reduction=None)(labels, features)
        np.testing.assert_allclose(got.numpy(), supcon_reference(features, labels, 0.1), rtol=RTOL)


class TestInputDefects:
    """Labels stay exact, self-exclusion is not a finite stand-in, bad label dtypes raise."""

    LARGE_LABELS = np.array([16777216, 16777217, 5, 6])  # 2**24 and 2**24 + 1 merge in float32

    def test_labels_from_two_to_the_24_stay_distinct(self):
        features = np.random.default_rng(40).normal(size=(4, 2, 8)).astype("float32")
        expected = supcon_reference(features, self.LARGE_LABELS, 0.1)
        per_sample = SupervisedContrastiveLoss(reduction=None)(self.LARGE_LABELS, features)
        np.testing.assert_allclose(per_sample.numpy(), expected, rtol=RTOL)
        loss = SupervisedContrastiveLoss()
        compiled = tf.function(lambda y, z: loss(y, z), jit_compile=True)
        np.testing.assert_allclose(
            float(compiled(self.LARGE_LABELS, features)), expected.mean(), rtol=RTOL
        )
        # Beyond float64's 2**53 as well, in model.evaluate (Keras' compile path).
        huge = np.array([2**60, 2**60 + 1, 2**60, 7], dtype="int64")
        model = keras.Sequential([keras.Input((2, 8)), keras.layers.Identity()])
        model.compile(loss=SupervisedContrastiveLoss())
        value = model.evaluate(features, huge, batch_size=4, verbose=0)
        expected_huge = supcon_reference(features, [1, 2, 1, 7], 0.1).mean()
        np.testing.assert_allclose(value, expected_huge, rtol=RTOL)

    def test_npairs_labels_from_two_to_the_24_stay_distinct(self):
        z = np.random.default_rng(41).normal(size=(4, 8)).astype("float32")
        unit = z / np.linalg.norm(z, axis=1, keepdims=True)
        expected = npairs_reference(self.LARGE_LABELS, unit.astype("float64") @ unit.T / 1.0)
        got = NPairsLoss(temperature=1.0)(self.LARGE_LABELS, z)
        np.testing.assert_allclose(float(got), expected, rtol=RTOL)
        assert float(got) != pytest.approx(
            npairs_reference([0, 0, 5, 6], unit.astype("float64") @ unit.T / 1.0), rel=1e-3
        )

    def test_self_exclusion_holds_against_large_logits(self):
        # All dot products of anchor 0 are -1e10: a finite mask value (-1e9) on its self
        # logit would dominate its denominator (a loss near 9e9 instead of log 2).
        # Closed form (one positive each, so "out" = "in"): anchor 0 has logits -1e10 to
        # its positive and its negative (log 2); anchor 1 has -1e10 to its positive and
        # +1e10 to its negative (2e10); sample 2 has no positive (0).
        features = np.array([[1e5, 0.0], [-1e5, 0.0], [-1e5, 0.0]], "float32")
        labels = [0, 0, 1]
        closed_form = [math.log(2), 2e10, 0.0]
        np.testing.assert_allclose(
            supcon_reference(features, labels, 1.0, normalize=False), closed_form, rtol=1e-5
        )
        for summation in ("out", "in"):
            for implementation in ("dense", "blocked"):
                got = supervised_contrastive_loss(
                    labels,
                    features,
                    temperature=1.0,
                    summation=summation,
                    normalize=False,
                    implementation=implementation,
                    block_size=2,
                )
                np.testing.assert_allclose(got.numpy(), closed_form, rtol=RTOL)

    @pytest.mark.parametrize("label_kind", ["int", "multi_hot"])
    def test_unnormalised_large_embeddings_match_reference(self, label_kind):
        rng = np.random.default_rng(42)
        features, labels, _ = make_batch(rng, 6, 2, 4, label_kind)
        features = features * 300.0  # logits up to about 1e6: exp() overflows without a shift
        expected = supcon_reference(features, labels, 1.0, normalize=False)
        variable = tf.constant(features)
        with tf.GradientTape() as tape:
            tape.watch(variable)
            got = supervised_contrastive_loss(labels, variable, temperature=1.0, normalize=False)
        np.testing.assert_allclose(got.numpy(), expected, rtol=RTOL)
        assert np.all(np.isfinite(tape.gradient(got, variable).numpy()))

    def test_string_labels_raise_value_error(self):
        features = np.ones((2, 2, 3), "float32")
        for loss in (
            SupervisedContrastiveLoss(),
            NPairsLoss(),
            supervised_contrastive_loss,
            npairs_loss,
        ):
            with pytest.raises(ValueError, match="`y_true`.*dtype string"):
                loss(np.array(["cat", "dog"]), features if loss is not npairs_loss else np.eye(2))


class TestNPairs:
    def test_functional_equals_tfa_definition(self):
        rng = np.random.default_rng(21)
        logits = rng.normal(size=(10, 10)) * 3
        labels = rng.integers(0, 3, size=10)
        np.testing.assert_allclose(
            float(npairs_loss(labels, logits)), npairs_reference(labels, logits), rtol=1e-6
        )

    @pytest.mark.parametrize("temperature", [0.05, 0.5])
    def test_class_reproduces_keras_example(self, temperature):
        # The Keras example: npairs_loss(labels, normalize(z) normalize(z)^T / tau).
        rng = np.random.default_rng(22)
        z = rng.normal(size=(12, 16)).astype("float32")
        labels = rng.integers(0, 4, size=(12, 1))
        unit = z / np.linalg.norm(z, axis=1, keepdims=True)
        expected = npairs_reference(labels, unit.astype("float64") @ unit.T / temperature)
        got = NPairsLoss(temperature=temperature)(labels, z)
        np.testing.assert_allclose(float(got), expected, rtol=RTOL)

    def test_differs_from_supcon(self):
        rng = np.random.default_rng(23)
        z = rng.normal(size=(8, 4)).astype("float32")
        labels = np.array([0, 0, 1, 1, 2, 2, 3, 3])
        assert (
            abs(
                float(NPairsLoss(0.1)(labels, z)) - float(SupervisedContrastiveLoss(0.1)(labels, z))
            )
            > 1e-3
        )

    def test_config_round_trip(self):
        loss = NPairsLoss(temperature=0.2, normalize=False, name="np")
        clone = NPairsLoss.from_config(loss.get_config())
        assert clone.get_config() == loss.get_config()


class TestSerialization:
    def test_get_config_round_trip(self):
        loss = SupervisedContrastiveLoss(
            temperature=0.2,
            base_temperature=0.07,
            contrast_mode="one",
            summation="in",
            normalize=False,
            reduction="sum",
            name="custom",
        )
        clone = SupervisedContrastiveLoss.from_config(loss.get_config())
        assert clone.get_config() == loss.get_config()
        assert clone.summation == "in" and clone.contrast_mode == "one"

    def test_keras_serialize_round_trip(self):
        loss = SupervisedContrastiveLoss(temperature=0.3, summation="in")
        clone = keras.losses.deserialize(keras.losses.serialize(loss))
        assert isinstance(clone, SupervisedContrastiveLoss)
        assert clone.get_config() == loss.get_config()

    def test_saved_keras_model_keeps_loss(self, tmp_path):
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8)])
        model.compile(
            optimizer="sgd", loss=SupervisedContrastiveLoss(temperature=0.25, summation="in")
        )
        x = np.random.default_rng(0).normal(size=(16, 4)).astype("float32")
        y = np.arange(16) % 4
        model.fit(x, y, batch_size=8, epochs=1, verbose=0)
        path = os.path.join(tmp_path, "model.keras")
        model.save(path)
        restored = keras.models.load_model(path)
        assert isinstance(restored.loss, SupervisedContrastiveLoss)
        assert restored.loss.temperature == 0.25 and restored.loss.summation == "in"
        np.testing.assert_allclose(
            restored.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-6
        )

    def test_compile_and_fit_reduces_loss(self):
        keras.utils.set_random_seed(1)
        rng = np.random.default_rng(1)
        centers = rng.normal(size=(4, 8)) * 2
        y = np.repeat(np.arange(4), 32)
        x = (centers[y] + rng.normal(size=(128, 8))).astype("float32")
        model = keras.Sequential(
            [keras.Input((8,)), keras.layers.Dense(32, activation="relu"), keras.layers.Dense(16)]
        )
        model.compile(
            optimizer=keras.optimizers.Adam(1e-2), loss=SupervisedContrastiveLoss(temperature=0.1)
        )
        history = model.fit(x, y, batch_size=64, epochs=8, verbose=0, shuffle=True)
        losses = history.history["loss"]
        assert losses[-1] < losses[0] * 0.9


class TestErrors:
    @pytest.mark.parametrize("shape", [(), (4,)])
    def test_low_rank_embeddings(self, shape):
        with pytest.raises(ValueError, match="rank"):
            supervised_contrastive_loss([0], np.ones(shape, "float32"))

    @pytest.mark.parametrize("shape", [(0, 2, 3), (0, 3), (4, 0, 3)])
    @pytest.mark.parametrize("implementation", ["dense", "blocked", "auto"])
    def test_empty_batch_or_views(self, shape, implementation):
        with pytest.raises(ValueError, match="no samples or no views"):
            supervised_contrastive_loss(
                np.zeros(shape[0], "int32"),
                np.ones(shape, "float32"),
                implementation=implementation,
            )

    def test_label_count_mismatch(self):
        with pytest.raises(ValueError, match="rows but `y_pred` has a batch of 4"):
            supervised_contrastive_loss([0, 1, 2], np.ones((4, 2, 3), "float32"))

    def test_label_count_mismatch_in_class(self):
        with pytest.raises(ValueError, match="batch"):
            SupervisedContrastiveLoss()(np.array([0, 1, 2]), np.ones((4, 2, 3), "float32"))

    def test_label_rank_too_high(self):
        with pytest.raises(ValueError, match="Labels"):
            supervised_contrastive_loss(np.zeros((4, 2, 2)), np.ones((4, 2, 3), "float32"))

    @pytest.mark.parametrize(
        "option,value,match",
        [
            ("contrast_mode", "some", "contrast_mode"),
            ("summation", "inside", "summation"),
            ("temperature", 0.0, "temperature"),
            ("temperature", -0.1, "temperature"),
            ("temperature", "hot", "temperature"),
            ("base_temperature", 0.0, "base_temperature"),
        ],
    )
    def test_bad_options(self, option, value, match):
        with pytest.raises(ValueError, match=match):
            SupervisedContrastiveLoss(**{option: value})
        with pytest.raises(ValueError, match=match):
            supervised_contrastive_loss([0, 1], np.ones((2, 2, 3), "float32"), **{option: value})

    @pytest.mark.parametrize("shape", [(4, 3), (4, 1, 3)])
    def test_single_view_without_labels(self, shape):
        with pytest.raises(ValueError, match="at least 2 views"):
            SupervisedContrastiveLoss()(None, np.ones(shape, "float32"))
        with pytest.raises(ValueError, match="at least 2 views"):
            supervised_contrastive_loss(None, np.ones(shape, "float32"))

    def test_integer_embeddings(self):
        with pytest.raises(ValueError, match="floating-point"):
            supervised_contrastive_loss([0, 1], np.ones((2, 3), "int32"))

    def test_labels_and_mask_together(self):
        with pytest.raises(ValueError, match="not both"):
            supervised_contrastive_loss(
                [0, 1], np.ones((2, 2, 3), "float32"), positive_mask=np.eye(2)
            )

    def test_mask_wrong_shape(self):
        with pytest.raises(ValueError, match="positive_mask"):
            supervised_contrastive_loss(
                None, np.ones((3, 2, 3), "float32"), positive_mask=np.eye(2)
            )

    def test_npairs_bad_logits(self):
        with pytest.raises(ValueError, match="logit matrix"):
            npairs_loss([0, 1], np.ones((2,), "float32"))


# google-research/google-research, supcon/losses_test.py,
# testLossForSummationLocationsAndDenominatorModes: hand-checked per-sample values for
# these three samples of two views (not normalised, temperature 1, labels (0, 0, 1), or
# (0, 0, 0) for the cap of 2): (summation, denominator mode, positives cap, expected).
GOOGLE_FEATURES = [
    [[0.01, 0.02, 0.14], [0.38, 0.61, 0.50]],
    [[0.86, 0.97, 0.33], [0.26, 0.68, 0.45]],
    [[0.32, 0.64, 0.28], [0.45, 0.74, 0.73]],
]
GOOGLE_VALUES = [
    ("out", "all", None, [1.6755852, 1.7973773, 1.58471]),
    ("out", "one_positive", None, [1.1782627, 1.3435497, 1.58471]),
    ("out", "only_negatives", None, [0.79652834, 1.0154991, 1.3529458]),
    ("out", "all", 4, [1.6755852, 1.7973773, 1.58471]),
    ("out", "all", 2, [1.1385298, 1.1824025, 1.1557417]),
    ("out", "all", 0, [1.3769293, 1.0785717, 1.58471]),
    ("in", "all", None, [1.6356678, 1.7135872, 1.58471]),
    ("in", "one_positive", None, [1.1571673, 1.2941568, 1.58471]),
    ("in", "only_negatives", None, [0.756611, 0.93170905, 1.3529458]),
    ("in", "all", 4, [1.6356678, 1.7135872, 1.58471]),
    ("in", "all", 2, [1.0986123, 1.0986123, 1.0986123]),
    ("in", "all", 0, [1.3769293, 1.0785717, 1.58471]),
]
DENOMINATOR_MODES = ("all", "one_positive", "only_negatives")
VARIANT_KERNELS = [("dense", None), ("blocked", 3)]
# float32 against the float64 transcription: at most 4.1e-6 relative measured (temperature
# 0.2, both kernels, every mode and cap); the bound leaves a factor of 5.
VARIANT_RTOL, VARIANT_ATOL = 2e-5, 2e-6


class TestVariants:
    @pytest.mark.parametrize("summation,mode,cap,expected", GOOGLE_VALUES)
    @pytest.mark.parametrize("implementation,block_size", VARIANT_KERNELS)
    def test_google_research_hand_checked_values(
        self, summation, mode, cap, expected, implementation, block_size
    ):
        labels = [0, 0, 0] if cap == 2 else [0, 0, 1]
        loss = SupervisedContrastiveLoss(
            temperature=1.0,
            normalize=False,
            summation=summation,
            denominator_mode=mode,
            positives_cap=cap,
            implementation=implementation,
            block_size=block_size,
            reduction=None,
        )
        got = loss(np.eye(2)[labels], np.array(GOOGLE_FEATURES, "float32")).numpy()
        # Their test checks 5 decimal places; float32 here is within 3e-7 of them.
        np.testing.assert_allclose(got, expected, atol=1e-6)

    @pytest.mark.parametrize(
        "mode,summation,cap,label_kind",
        list(itertools.product(DENOMINATOR_MODES, ("out", "in"), (None, 1), ("int", "mask")))
        + [(mode, "out", 1, "multi_hot") for mode in DENOMINATOR_MODES],
    )
    def test_matches_float64_transcription(self, mode, summation, cap, label_kind):
        seed = zlib.crc32(f"{mode}-{summation}-{cap}-{label_kind}".encode()) % 2**16
        rng = np.random.default_rng(seed)
        for contrast_mode, batch, views in [("all", 7, 2), ("one", 6, 2), ("all", 9, 1)]:
            features, labels, mask = make_batch(rng, batch, views, 5, label_kind)
            view_cap = None if cap is None else cap * views
            expected = variant_reference(
                features, labels, 0.2, contrast_mode, summation, mode, view_cap, mask=mask
            )
            for implementation, block_size in VARIANT_KERNELS:
                got = supervised_contrastive_loss(
                    labels,
                    features,
                    temperature=0.2,
                    contrast_mode=contrast_mode,
                    summation=summation,
                    positive_mask=mask,
                    denominator_mode=mode,
                    positives_cap=view_cap,
                    implementation=implementation,
                    block_size=block_size,
                ).numpy()
                np.testing.assert_allclose(got, expected, rtol=VARIANT_RTOL, atol=VARIANT_ATOL)

    def test_default_variant_equals_paper_reference(self):
        rng = np.random.default_rng(31)
        features, labels, _ = make_batch(rng, 8, 2, 5, "int")
        np.testing.assert_allclose(
            variant_reference(features, labels, 0.2),
            supcon_reference(features, labels, 0.2),
            rtol=1e-12,
        )

    @pytest.mark.parametrize(
        "mode,summation,cap", itertools.product(DENOMINATOR_MODES, ("out", "in"), (None, 2))
    )
    @pytest.mark.parametrize("implementation,block_size", VARIANT_KERNELS)
    def test_gradient_matches_finite_differences(
        self, mode, summation, cap, implementation, block_size
    ):
        rng = np.random.default_rng(32)
        features, labels, _ = make_batch(rng, 5, 2, 3, "int", num_classes=2)
        features = features.astype("float64")
        row_weights = np.arange(1.0, 6.0)
        options = dict(summation=summation, denominator_mode=mode, positives_cap=cap)
        variable = tf.constant(features)
        with tf.GradientTape() as tape:
            tape.watch(variable)
            per_sample = supervised_contrastive_loss(
                labels,
                variable,
                temperature=0.3,
                implementation=implementation,
                block_size=block_size,
                **options,
            )
            total = tf.reduce_sum(per_sample * row_weights)
        grads = tape.gradient(total, variable).numpy()

        def reference_total(values):
            return float(
                np.sum(
                    variant_reference(values, labels, 0.3, "all", summation, mode, cap)
                    * row_weights
                )
            )

        eps = 1e-6
        numeric = np.zeros_like(features)
        for index in np.ndindex(features.shape):
            plus, minus = features.copy(), features.copy()
            plus[index] += eps
            minus[index] -= eps
            numeric[index] = (reference_total(plus) - reference_total(minus)) / (2 * eps)
        np.testing.assert_allclose(grads, numeric, rtol=1e-5, atol=1e-8)

    @pytest.mark.parametrize("mode", ("one_positive", "only_negatives"))
    @pytest.mark.parametrize("implementation,block_size", VARIANT_KERNELS)
    def test_anchor_without_negative_is_zero_not_nan(self, mode, implementation, block_size):
        # Every sample has the same label: no anchor has a negative.
        features = tf.constant(np.random.default_rng(33).normal(size=(4, 2, 3)), tf.float32)
        with tf.GradientTape() as tape:
            tape.watch(features)
            per_sample = supervised_contrastive_loss(
                [5, 5, 5, 5],
                features,
                denominator_mode=mode,
                implementation=implementation,
                block_size=block_size,
            )
        grads = tape.gradient(per_sample, features).numpy()
        np.testing.assert_array_equal(per_sample.numpy(), np.zeros(4))
        np.testing.assert_array_equal(grads, np.zeros_like(grads))

    def test_huge_cap_is_no_cap(self):
        rng = np.random.default_rng(34)
        features, labels, _ = make_batch(rng, 10, 2, 5, "int")
        np.testing.assert_allclose(
            supervised_contrastive_loss(labels, features, positives_cap=40).numpy(),
            supervised_contrastive_loss(labels, features).numpy(),
            rtol=1e-5,
        )

    def test_get_config_round_trip(self):
        loss = SupervisedContrastiveLoss(denominator_mode="one_positive", positives_cap=4)
        clone = SupervisedContrastiveLoss.from_config(loss.get_config())
        assert (clone.denominator_mode, clone.positives_cap) == ("one_positive", 4)
        restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(loss))
        assert restored.get_config() == loss.get_config()

    @pytest.mark.parametrize(
        "option,value,match",
        [
            ("denominator_mode", "negatives", "Unknown `denominator_mode`='negatives'"),
            ("positives_cap", -2, "`positives_cap` must be None .* got -2"),
            ("positives_cap", 1.5, "`positives_cap` must be None .* got 1.5"),
            ("positives_cap", True, "`positives_cap` must be None .* got True"),
        ],
    )
    def test_bad_options(self, option, value, match):
        with pytest.raises(ValueError, match=match):
            SupervisedContrastiveLoss(**{option: value})
        with pytest.raises(ValueError, match=match):
            supervised_contrastive_loss([0, 1], np.ones((2, 2, 3), "float32"), **{option: value})

    def test_cap_not_multiple_of_views(self):
        with pytest.raises(ValueError, match=r"multiple of the number of views \(2\).*got 3"):
            supervised_contrastive_loss([0, 1], np.ones((2, 2, 3), "float32"), positives_cap=3)


def soft_weights(rng, batch):
    """A symmetric non-negative pair-weight matrix with some zero (negative) pairs."""
    weights = rng.random((batch, batch)) * (rng.random((batch, batch)) < 0.5)
    return (weights + weights.T) / 2


class TestPairWeights:
    @pytest.mark.parametrize(
        "mode,summation", list(itertools.product(DENOMINATOR_MODES, ("out", "in")))
    )
    def test_matches_float64_transcription(self, mode, summation):
        rng = np.random.default_rng(zlib.crc32(f"{mode}{summation}".encode()) % 2**16)
        features = rng.normal(size=(7, 2, 5)).astype("float32")
        weights = soft_weights(rng, 7)
        for cap in (None, 2):
            expected = variant_reference(
                features, None, 0.2, "all", summation, mode, cap, weights=weights
            )
            for implementation, block_size in VARIANT_KERNELS:
                got = supervised_contrastive_loss(
                    weights.astype("float32"),
                    features,
                    temperature=0.2,
                    summation=summation,
                    denominator_mode=mode,
                    positives_cap=cap,
                    pair_weights=True,
                    implementation=implementation,
                    block_size=block_size,
                ).numpy()
                np.testing.assert_allclose(got, expected, rtol=VARIANT_RTOL, atol=VARIANT_ATOL)

    @pytest.mark.parametrize("implementation,block_size", VARIANT_KERNELS)
    def test_gradient_matches_finite_differences(self, implementation, block_size):
        rng = np.random.default_rng(41)
        features = rng.normal(size=(5, 2, 3))
        weights = soft_weights(rng, 5)
        variable = tf.constant(features)
        with tf.GradientTape() as tape:
            tape.watch(variable)
            total = tf.reduce_sum(
                supervised_contrastive_loss(
                    weights,
                    variable,
                    temperature=0.3,
                    pair_weights=True,
                    implementation=implementation,
                    block_size=block_size,
                )
            )
        grads = tape.gradient(total, variable).numpy()
        eps = 1e-6
        numeric = np.zeros_like(features)
        for index in np.ndindex(features.shape):
            plus, minus = features.copy(), features.copy()
            plus[index] += eps
            minus[index] -= eps
            numeric[index] = (
                variant_reference(plus, None, 0.3, weights=weights).sum()
                - variant_reference(minus, None, 0.3, weights=weights).sum()
            ) / (2 * eps)
        np.testing.assert_allclose(grads, numeric, rtol=1e-5, atol=1e-8)

    def test_zero_one_weights_equal_integer_labels(self):
        rng = np.random.default_rng(42)
        features, labels, _ = make_batch(rng, 9, 2, 6, "int")
        same = (labels[:, None] == labels[None, :]).astype("float32")
        for shape in (same.shape, (9, 1, 9, 1)):
            loss = SupervisedContrastiveLoss(pair_weights=True, reduction=None)
            np.testing.assert_allclose(
                loss(same.reshape(shape), features).numpy(),
                supervised_contrastive_loss(labels, features).numpy(),
                rtol=1e-5,
            )

    @pytest.mark.parametrize(
        "weights,match",
        [
            (np.ones((4, 3)), r"square \[batch, batch\].*got shape \(4, 3\)"),
            (np.ones((4,)), r"square \[batch, batch\].*got shape \(4,\)"),
            (np.ones((3, 3)), "has 3 rows but `y_pred` has a batch of 4"),
            (-np.eye(4), "non-negative.*smallest entry of -1.0"),
        ],
    )
    def test_bad_weights(self, weights, match):
        with pytest.raises(ValueError, match=match):
            supervised_contrastive_loss(weights, np.ones((4, 2, 3), "float32"), pair_weights=True)

    def test_pair_weights_flag_must_be_bool(self):
        with pytest.raises(ValueError, match="`pair_weights` must be True or False, got 'yes'"):
            SupervisedContrastiveLoss(pair_weights="yes")
