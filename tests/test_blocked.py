"""Tests of the dense and blocked loss kernels (`supcon_tf/kernels.py`).

Values come from the float64 oracle (tests/reference.py); gradients from central finite
differences of that oracle and from TensorFlow autodiff of a plain masked float64
transcription written here (no custom gradient, no shared code with the kernels).
"""

import itertools
import os
import subprocess
import sys
import zlib
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from supcon_tf import SupervisedContrastiveLoss, supervised_contrastive_loss
from supcon_tf.losses import kernel_choice, kernels, symmetric
from supcon_tf.losses.supcon import _per_sample_loss
from tests._kernel_choice_worker import TEST_BUDGET, count_kernel_runs
from tests.reference import npairs_reference, supcon_reference

LABEL_KINDS = ("int", "one_hot", "multi_hot", "none", "mask")


def make_batch(seed, batch, views, dim, label_kind, num_classes=3, dtype="float32"):
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(batch, views, dim)).astype(dtype)
    ints = rng.integers(0, num_classes, size=batch)
    labels, mask = None, None
    if label_kind == "int":
        labels = ints
    elif label_kind == "one_hot":
        labels = np.eye(num_classes)[ints]
    elif label_kind == "multi_hot":
        labels = (rng.random((batch, num_classes + 1)) < 0.35).astype("float32")
    elif label_kind == "mask":
        mask = rng.random((batch, batch)) < 0.3
    return features, labels, mask


def plain_masked_loss(labels, mask, features, temperature, contrast_mode, summation):
    """Per-sample loss written directly from Eq. 2/3 with full N x N masks (autodiff only)."""
    features = tf.math.l2_normalize(features, axis=-1)
    batch, views = features.shape[0], features.shape[1]
    if mask is not None:
        sample_positive = np.asarray(mask, bool) | np.eye(batch, dtype=bool)
    elif labels is None:
        sample_positive = np.eye(batch, dtype=bool)
    elif np.ndim(labels) == 2 and np.shape(labels)[1] != 1:
        hot = np.asarray(labels) > 0
        sample_positive = (hot.astype(int) @ hot.T.astype(int) > 0) | np.eye(batch, dtype=bool)
    else:
        flat = np.reshape(labels, [-1])
        sample_positive = flat[:, None] == flat[None, :]
    contrast = tf.reshape(tf.transpose(features, [1, 0, 2]), [batch * views, -1])
    anchor_views = views if contrast_mode == "all" else 1
    anchors = contrast[: anchor_views * batch]
    logits = tf.matmul(anchors, contrast, transpose_b=True) / temperature
    not_self = ~np.eye(anchor_views * batch, batch * views, dtype=bool)
    positive = np.tile(sample_positive, [anchor_views, views]) & not_self
    denominator = tf.reduce_logsumexp(tf.where(not_self, logits, -np.inf), axis=1)
    log_probability = logits - denominator[:, None]
    count = positive.sum(axis=1)
    if summation == "out":
        per_anchor = -tf.reduce_sum(tf.where(positive, log_probability, 0.0), 1) / np.maximum(
            count, 1
        )
    else:
        per_anchor = -tf.reduce_logsumexp(
            tf.where(positive, log_probability, -np.inf), axis=1
        ) + np.log(np.maximum(count, 1))
    per_anchor = tf.where(count > 0, per_anchor, tf.zeros_like(per_anchor))
    return tf.reduce_mean(tf.reshape(per_anchor, [anchor_views, batch]), axis=0)


def loss_and_gradient(function, features):
    variable = tf.constant(features)
    with tf.GradientTape() as tape:
        tape.watch(variable)
        per_sample = function(variable)
        # A non-uniform upstream gradient exercises the per-row scaling.
        total = tf.reduce_sum(
            per_sample * tf.range(1.0, per_sample.shape[0] + 1, dtype=per_sample.dtype)
        )
    return per_sample.numpy(), tape.gradient(total, variable).numpy()


class TestBlockedAgainstReference:
    @pytest.mark.parametrize(
        "contrast_mode,summation,label_kind",
        list(itertools.product(("all", "one"), ("out", "in"), LABEL_KINDS)),
    )
    def test_values_match_float64_oracle(self, contrast_mode, summation, label_kind):
        seed = zlib.crc32(f"{contrast_mode}{summation}{label_kind}".encode()) % 2**16
        for batch, views, block_size in [(7, 2, 3), (5, 3, 4), (9, 1, 5), (6, 2, 64)]:
            if label_kind == "none" and views == 1:
                views = 2
            features, labels, mask = make_batch(seed, batch, views, 6, label_kind)
            expected = supcon_reference(
                features, labels, 0.1, None, contrast_mode, summation, mask=mask
            )
            got = supervised_contrastive_loss(
                labels,
                features,
                temperature=0.1,
                contrast_mode=contrast_mode,
                summation=summation,
                positive_mask=mask,
                implementation="blocked",
                block_size=block_size,
            )
            np.testing.assert_allclose(got.numpy(), expected, rtol=2e-4, atol=1e-5)

    @pytest.mark.parametrize("summation", ["out", "in"])
    def test_small_temperature_is_exact_and_finite(self, summation):
        features, labels, _ = make_batch(1, 24, 2, 16, "int")
        for implementation in ("dense", "blocked"):
            per_sample, gradient = loss_and_gradient(
                lambda z, implementation=implementation: supervised_contrastive_loss(
                    labels,
                    z,
                    temperature=0.01,
                    summation=summation,
                    implementation=implementation,
                    block_size=5,
                ),
                features,
            )
            expected = supcon_reference(features, labels, 0.01, summation=summation)
            np.testing.assert_allclose(per_sample, expected, rtol=2e-4, atol=1e-5)
            assert np.all(np.isfinite(gradient))

    def test_npairs_variant_includes_self(self):
        rng = np.random.default_rng(2)
        z = rng.normal(size=(11, 8))
        labels = rng.integers(0, 4, size=11)
        unit = z / np.linalg.norm(z, axis=1, keepdims=True)
        expected = npairs_reference(labels, unit @ unit.T / 0.2)
        for implementation in ("dense", "blocked"):
            per_sample = _per_sample_loss(
                tf.constant(unit[:, None, :]),
                labels,
                None,
                0.2,
                "all",
                "out",
                include_self=True,
                implementation=implementation,
                block_size=4,
            )
            np.testing.assert_allclose(float(tf.reduce_mean(per_sample)), expected, rtol=1e-9)


class TestGradients:
    @pytest.mark.parametrize(
        "summation,label_kind", itertools.product(("out", "in"), ("int", "none", "mask"))
    )
    def test_blocked_gradient_matches_finite_differences(self, summation, label_kind):
        features, labels, mask = make_batch(3, 4, 2, 3, label_kind, dtype="float64")
        temperature = 0.3
        weights = np.arange(1.0, 5.0)
        _, gradient = loss_and_gradient(
            lambda z: supervised_contrastive_loss(
                labels,
                z,
                temperature=temperature,
                summation=summation,
                positive_mask=mask,
                implementation="blocked",
                block_size=3,
            ),
            features,
        )

        def total(values):
            per_sample = supcon_reference(
                values, labels, temperature, summation=summation, mask=mask
            )
            return float(np.sum(per_sample * weights))

        eps = 1e-6
        numeric = np.zeros_like(features)
        for index in np.ndindex(features.shape):
            plus, minus = features.copy(), features.copy()
            plus[index] += eps
            minus[index] -= eps
            numeric[index] = (total(plus) - total(minus)) / (2 * eps)
        np.testing.assert_allclose(gradient, numeric, rtol=1e-5, atol=1e-8)

    @pytest.mark.parametrize(
        "contrast_mode,summation,label_kind",
        list(itertools.product(("all", "one"), ("out", "in"), LABEL_KINDS)),
    )
    def test_both_kernels_match_plain_autodiff(self, contrast_mode, summation, label_kind):
        features, labels, mask = make_batch(4, 37, 2, 8, label_kind, dtype="float64")
        expected_loss, expected_gradient = loss_and_gradient(
            lambda z: plain_masked_loss(labels, mask, z, 0.1, contrast_mode, summation), features
        )
        for implementation, block_size in [("dense", None), ("blocked", 16), ("blocked", 5)]:
            per_sample, gradient = loss_and_gradient(
                lambda z, implementation=implementation, block_size=block_size: (
                    supervised_contrastive_loss(
                        labels,
                        z,
                        temperature=0.1,
                        contrast_mode=contrast_mode,
                        summation=summation,
                        positive_mask=mask,
                        implementation=implementation,
                        block_size=block_size,
                    )
                ),
                features,
            )
            np.testing.assert_allclose(per_sample, expected_loss, rtol=1e-10, atol=1e-10)
            np.testing.assert_allclose(gradient, expected_gradient, rtol=1e-9, atol=1e-11)

    def test_float32_blocked_equals_dense(self):
        features, labels, _ = make_batch(5, 300, 2, 32, "int", num_classes=10)
        dense = loss_and_gradient(
            lambda z: supervised_contrastive_loss(labels, z, implementation="dense"), features
        )
        blocked = loss_and_gradient(
            lambda z: supervised_contrastive_loss(
                labels, z, implementation="blocked", block_size=77
            ),
            features,
        )
        np.testing.assert_allclose(blocked[0], dense[0], rtol=1e-5, atol=1e-6)
        scale = np.abs(dense[1]).max()
        np.testing.assert_allclose(blocked[1], dense[1], rtol=1e-4, atol=1e-5 * scale)

    @pytest.mark.parametrize("mode", ("all", "one_positive", "only_negatives"))
    def test_float32_blocked_equals_dense_for_variants(self, mode):
        features, labels, _ = make_batch(6, 300, 2, 32, "int", num_classes=10)

        def run(implementation, block_size):
            return loss_and_gradient(
                lambda z: supervised_contrastive_loss(
                    labels,
                    z,
                    denominator_mode=mode,
                    positives_cap=10,
                    implementation=implementation,
                    block_size=block_size,
                ),
                features,
            )

        dense, blocked = run("dense", None), run("blocked", 77)
        np.testing.assert_allclose(blocked[0], dense[0], rtol=1e-5, atol=1e-6)
        scale = np.abs(dense[1]).max()
        np.testing.assert_allclose(blocked[1], dense[1], rtol=1e-4, atol=1e-5 * scale)


@pytest.fixture
def symmetric_runs(monkeypatch):
    """How many times the symmetric blocked kernel ran (not traced: a `tf.cond` traces both)."""
    original = symmetric.symmetric_terms
    runs = []

    def counting(*arguments, **options):
        terms = original(*arguments, **options)

        def record():
            runs.append("symmetric")
            return 0

        marker = tf.py_function(record, [], tf.int32)
        with tf.control_dependencies([marker]):
            return tuple(tf.identity(term) for term in terms)

    monkeypatch.setattr(symmetric, "symmetric_terms", counting)
    # A fresh graph function: one traced by an earlier test would hold the unpatched kernel.
    fresh = tf.function(kernels._anchor_losses, autograph=False)
    monkeypatch.setattr(kernels, "_graph_anchor_losses", fresh)
    return runs


class TestSymmetricKernel:
    """The blocked kernel's symmetric fast path (anchors = contrast / tau) and its fallbacks.

    600 views in blocks of 77 rows: 8 blocks, the last one of 61 rows. The tolerances are
    about three times the float32 differences measured against the dense kernel (3e-7
    relative in the losses, 4e-7 of the largest gradient entry).
    """

    def run_both(self, labels, features, **options):
        dense = loss_and_gradient(
            lambda z: supervised_contrastive_loss(labels, z, implementation="dense", **options),
            features,
        )
        blocked = loss_and_gradient(
            lambda z: supervised_contrastive_loss(
                labels, z, implementation="blocked", block_size=77, **options
            ),
            features,
        )
        return dense, blocked

    def assert_close(self, blocked, dense):
        np.testing.assert_allclose(blocked[0], dense[0], rtol=1e-6, atol=0)
        scale = np.abs(dense[1]).max()
        np.testing.assert_allclose(blocked[1], dense[1], rtol=0, atol=1e-6 * scale)

    @pytest.mark.parametrize("label_kind", ("int", "none"))
    def test_default_case_runs_symmetric_and_equals_dense(self, symmetric_runs, label_kind):
        features, labels, _ = make_batch(7, 300, 2, 32, label_kind, num_classes=10)
        dense, blocked = self.run_both(labels, features)
        assert symmetric_runs == ["symmetric"]
        self.assert_close(blocked, dense)

    def test_npairs_includes_self_in_symmetric_kernel(self, symmetric_runs):
        features, labels, _ = make_batch(8, 300, 2, 32, "int", num_classes=10)
        unit = tf.math.l2_normalize(features, axis=-1)

        def per_sample(implementation, block_size):
            return lambda z: _per_sample_loss(
                z,
                labels,
                None,
                0.1,
                "all",
                "out",
                include_self=True,
                implementation=implementation,
                block_size=block_size,
            )

        dense = loss_and_gradient(per_sample("dense", None), unit.numpy())
        blocked = loss_and_gradient(per_sample("blocked", 77), unit.numpy())
        assert symmetric_runs == ["symmetric"]
        self.assert_close(blocked, dense)

    def test_tiny_temperature_falls_back_to_row_blocks(self, symmetric_runs):
        # At tau = 0.01 a row's logits span 200 below the common shift 1/tau: one
        # shift for all rows could underflow a row, so the row-block kernel runs.
        features, labels, _ = make_batch(7, 300, 2, 32, "int", num_classes=10)
        dense, blocked = self.run_both(labels, features, temperature=0.01)
        assert symmetric_runs == []
        np.testing.assert_allclose(blocked[0], dense[0], rtol=1e-5, atol=1e-6)
        scale = np.abs(dense[1]).max()
        np.testing.assert_allclose(blocked[1], dense[1], rtol=1e-4, atol=1e-5 * scale)

    @pytest.mark.parametrize(
        "contrast_mode,summation,label_kind",
        [("one", "out", "int"), ("all", "in", "int"), ("all", "out", "multi_hot")],
    )
    def test_other_losses_use_row_blocks(
        self, symmetric_runs, contrast_mode, summation, label_kind
    ):
        features, labels, _ = make_batch(9, 40, 2, 8, label_kind)
        supervised_contrastive_loss(
            labels,
            features,
            contrast_mode=contrast_mode,
            summation=summation,
            implementation="blocked",
            block_size=7,
        )
        assert symmetric_runs == []

    def test_local_anchors_use_row_blocks(self, symmetric_runs):
        features, labels, _ = make_batch(10, 40, 2, 8, "int")
        unit = tf.math.l2_normalize(features, axis=-1)
        _per_sample_loss(
            unit,
            labels,
            None,
            0.1,
            "all",
            "out",
            anchor_start=0,
            local_batch=20,
            implementation="blocked",
            block_size=7,
        )
        assert symmetric_runs == []


class TestLocalAnchors:
    @pytest.mark.parametrize(
        "contrast_mode,summation,label_kind",
        list(itertools.product(("all", "one"), ("out", "in"), ("int", "none", "multi_hot"))),
    )
    def test_anchor_subset_against_global_batch(self, contrast_mode, summation, label_kind):
        features, labels, _ = make_batch(6, 10, 2, 5, label_kind)
        unit = tf.math.l2_normalize(features, axis=-1)
        expected = supcon_reference(features, labels, 0.2, None, contrast_mode, summation)
        for anchor_start, local_batch in [(0, 4), (4, 3), (7, 3)]:
            for implementation in ("dense", "blocked"):
                got = _per_sample_loss(
                    unit,
                    labels,
                    None,
                    0.2,
                    contrast_mode,
                    summation,
                    anchor_start=anchor_start,
                    local_batch=local_batch,
                    implementation=implementation,
                    block_size=3,
                )
                np.testing.assert_allclose(
                    got.numpy(),
                    expected[anchor_start : anchor_start + local_batch],
                    rtol=2e-4,
                    atol=1e-5,
                )

    def test_anchor_subset_gradients_agree(self):
        features, labels, _ = make_batch(7, 12, 2, 6, "int", dtype="float64")

        def run(implementation):
            return loss_and_gradient(
                lambda z: _per_sample_loss(
                    tf.math.l2_normalize(z, axis=-1),
                    labels,
                    None,
                    0.1,
                    "all",
                    "out",
                    anchor_start=tf.constant(5),
                    local_batch=4,
                    implementation=implementation,
                    block_size=3,
                ),
                features,
            )

        dense, blocked = run("dense"), run("blocked")
        np.testing.assert_allclose(blocked[0], dense[0], rtol=1e-12)
        np.testing.assert_allclose(blocked[1], dense[1], rtol=1e-10, atol=1e-13)
        assert np.any(blocked[1][:5] != 0)  # contrasts outside the anchors get gradients


class TestCompilation:
    @pytest.mark.parametrize(
        "jit_compile,summation,label_kind",
        [
            (False, "out", "int"),
            (True, "out", "int"),
            (True, "in", "int"),
            (True, "out", "multi_hot"),
            (True, "out", "none"),
            (True, "in", "mask"),
        ],
    )
    def test_tf_function_matches_eager(self, jit_compile, summation, label_kind):
        features, labels, mask = make_batch(8, 13, 2, 8, label_kind)
        for implementation in ("dense", "blocked"):

            def per_sample(z, implementation=implementation):
                return supervised_contrastive_loss(
                    labels,
                    z,
                    summation=summation,
                    positive_mask=mask,
                    implementation=implementation,
                    block_size=4,
                )

            eager = loss_and_gradient(per_sample, features)
            compiled = tf.function(
                lambda z, per_sample=per_sample: loss_and_gradient_graph(per_sample, z),
                jit_compile=jit_compile,
            )
            value, gradient = (tensor.numpy() for tensor in compiled(tf.constant(features)))
            np.testing.assert_allclose(value, eager[0], rtol=1e-5, atol=1e-6)
            # Relative to the largest gradient entry: XLA fuses and reorders the sums, so
            # an entry 1000 times smaller than the largest carries the largest's
            # round-off. Measured on oneDNN and Eigen (TF_ENABLE_ONEDNN_OPTS=1 and 0):
            # at most 3.9e-7 of the largest entry (an elementwise rtol of 1e-4 failed on
            # a 0.018 entry off by 3.5e-6, i.e. 1.4e-7 of the largest, 26).
            scale = np.abs(eager[1]).max()
            np.testing.assert_allclose(gradient, eager[1], rtol=0, atol=1e-6 * scale)

    def test_unknown_batch_size_in_graph(self):
        features, labels, _ = make_batch(9, 10, 2, 4, "int")
        expected = supcon_reference(features, labels, 0.1)

        @tf.function(
            input_signature=[
                tf.TensorSpec([None], tf.int64),
                tf.TensorSpec([None, 2, 4], tf.float32),
            ]
        )
        def blocked(y, z):
            return supervised_contrastive_loss(y, z, implementation="blocked", block_size=3)

        np.testing.assert_allclose(
            blocked(labels, features).numpy(), expected, rtol=2e-4, atol=1e-5
        )

    def test_keras_fit_with_blocked_loss(self):
        keras.utils.set_random_seed(0)
        rng = np.random.default_rng(0)
        x = rng.normal(size=(64, 8)).astype("float32")
        y = np.arange(64) % 4
        model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16)])
        model.compile(
            optimizer="sgd",
            loss=SupervisedContrastiveLoss(implementation="blocked", block_size=10),
            jit_compile=True,
        )
        history = model.fit(x, y, batch_size=32, epochs=2, verbose=0)
        assert np.all(np.isfinite(history.history["loss"]))


@pytest.fixture
def kernel_runs():
    """Kernels that ran (in order); the tests pass a budget of a few hundred logits."""
    runs, restore = count_kernel_runs(kernels)
    yield runs
    restore()


class TestDefaultBudgetByKernel:
    """The default budget is smaller where the blocked kernel can use the symmetry."""

    def test_symmetric_case_goes_blocked_from_2048_by_2_views(self, kernel_runs):
        # 1024 x 2 views: 3 x 2048^2 x 4 bytes = 50 MB, within 64 MiB: dense;
        # 2048 x 2 views: 201 MB: blocked (the symmetric kernel), though within 1 GiB.
        assert kernel_choice.SYMMETRIC_DENSE_MEMORY_BUDGET == 64 * 2**20
        for batch, kernel in ((1024, "dense"), (2048, "blocked")):
            features, labels, _ = make_batch(30, batch, 2, 4, "int")
            del kernel_runs[:]
            supervised_contrastive_loss(labels, features, temperature=0.1)
            assert kernel_runs == [kernel]

    @pytest.mark.parametrize(
        "options", [{"summation": "in"}, {"contrast_mode": "one"}], ids=["in", "one"]
    )
    def test_row_block_cases_keep_the_1_gib_budget(self, kernel_runs, options):
        features, labels, _ = make_batch(31, 2048, 2, 4, "int")
        supervised_contrastive_loss(labels, features, temperature=0.1, **options)
        assert kernel_runs == ["dense"]

    def test_an_explicit_budget_wins(self, kernel_runs):
        features, labels, _ = make_batch(32, 1024, 2, 4, "int")
        supervised_contrastive_loss(labels, features, temperature=0.1, dense_memory_budget=0)
        assert kernel_runs == ["blocked"]


class TestRunTimeChoice:
    """With the size unknown when the graph is built, "auto" decides from the actual size."""

    def test_fit_with_unknown_batch_size_picks_by_actual_size(self, kernel_runs):
        # 26 samples in batches of 12: 24 x 24 logits (above 400: blocked) twice, then a
        # partial last batch of 2 (4 x 4: dense); the traced batch dimension is None.
        features, labels, _ = make_batch(20, 26, 2, 8, "int")
        model = keras.Sequential([keras.Input((2, 8)), keras.layers.Dense(8)])
        loss = SupervisedContrastiveLoss(dense_memory_budget=TEST_BUDGET)
        model.compile(optimizer="sgd", loss=loss, jit_compile=False)
        model.evaluate(features, labels, batch_size=12, verbose=0)
        assert kernel_runs == ["blocked", "blocked", "dense"]
        del kernel_runs[:]
        model.fit(features, labels, batch_size=12, epochs=1, verbose=0)
        assert kernel_runs == ["blocked", "blocked", "dense"]

    def test_values_and_gradients_equal_reference_on_both_sides(self, kernel_runs):
        @tf.function(
            input_signature=[
                tf.TensorSpec([None], tf.int64),
                tf.TensorSpec([None, 2, 8], tf.float64),
            ]
        )
        def auto(y, z):
            return loss_and_gradient_graph(
                lambda z: supervised_contrastive_loss(
                    y, z, temperature=0.1, dense_memory_budget=TEST_BUDGET
                ),
                z,
            )

        for batch, kernel in [(12, "blocked"), (5, "dense")]:
            features, labels, _ = make_batch(21, batch, 2, 8, "int", dtype="float64")
            del kernel_runs[:]
            per_sample, gradient = (tensor.numpy() for tensor in auto(labels, features))
            assert kernel_runs == [kernel]
            expected_loss, expected_gradient = loss_and_gradient(
                lambda z, labels=labels: plain_masked_loss(labels, None, z, 0.1, "all", "out"),
                features,
            )
            np.testing.assert_allclose(
                per_sample, supcon_reference(features, labels, 0.1), rtol=1e-10
            )
            np.testing.assert_allclose(gradient, expected_gradient, rtol=1e-9, atol=1e-11)

    def test_eager_call_above_threshold_is_blocked_and_exact(self, kernel_runs):
        features, labels, _ = make_batch(22, 12, 2, 8, "int")
        loss = SupervisedContrastiveLoss(reduction=None, dense_memory_budget=TEST_BUDGET)
        np.testing.assert_allclose(
            loss(labels, features).numpy(),
            supcon_reference(features, labels, 0.1),
            rtol=2e-4,
        )
        assert kernel_runs == ["blocked"]

    def test_gathered_global_batch_picks_by_actual_size(self, tmp_path):
        # Two logical CPU devices under MirroredStrategy (a fresh process), shard sizes
        # known only at run time: 16 x 2 anchors per replica against the gathered 32 x 2
        # contrasts is above the lowered threshold, 3 x 2 against 6 x 2 below it.
        arrays = {}
        for name, batch in (("large", 32), ("small", 6)):
            features, labels, _ = make_batch(23 + batch, batch, 2, 8, "int", num_classes=5)
            arrays[f"{name}_features"], arrays[f"{name}_labels"] = features, labels
        np.savez(tmp_path / "inputs.npz", **arrays)
        root = Path(__file__).resolve().parents[1]
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "tests._kernel_choice_worker",
                f"--input={tmp_path / 'inputs.npz'}",
                f"--output={tmp_path / 'results.npz'}",
            ],
            cwd=root,
            env={**os.environ, "PYTHONPATH": str(root)},
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert result.returncode == 0, result.stderr[-4000:]
        results = np.load(tmp_path / "results.npz")
        for name, kernel in (("large", "blocked"), ("small", "dense")):
            assert list(results[f"{name}_runs"]) == [kernel, kernel]  # one per replica
            features = arrays[f"{name}_features"].astype("float64")
            labels = arrays[f"{name}_labels"]
            np.testing.assert_allclose(
                results[f"{name}_loss"], supcon_reference(features, labels, 0.1), rtol=2e-4
            )
            variable = tf.constant(features)
            with tf.GradientTape() as tape:
                tape.watch(variable)
                total = tf.reduce_sum(plain_masked_loss(labels, None, variable, 0.1, "all", "out"))
            np.testing.assert_allclose(
                results[f"{name}_gradient"], tape.gradient(total, variable), rtol=1e-3, atol=1e-5
            )


def loss_and_gradient_graph(function, features):
    with tf.GradientTape() as tape:
        tape.watch(features)
        per_sample = function(features)
        weights = tf.cast(tf.range(1, tf.shape(per_sample)[0] + 1), per_sample.dtype)
        total = tf.reduce_sum(per_sample * weights)
    return per_sample, tape.gradient(total, features)


def graph_and_functions(graph, seen=None):
    """`graph` and every function graph it calls (while-loop bodies, gradients), once each."""
    seen = set() if seen is None else seen
    yield graph
    for function in graph._functions.values():
        inner = getattr(function, "graph", None)
        if inner is not None and id(inner) not in seen:
            seen.add(id(inner))
            yield from graph_and_functions(inner, seen)


class TestOptions:
    def test_auto_picks_dense_within_the_memory_budget(self):
        # 4096 x 2 views: three float32 [8192, 8192] matrices, 805 MB, within 1 GiB;
        # 8192 x 2 views (3.2 GB) or float64 at 4096 x 2 (1.6 GB) beyond it.
        assert kernel_choice.DEFAULT_DENSE_MEMORY_BUDGET == 2**30
        assert kernels.choose_implementation("auto", 100, 100) == "dense"
        assert kernels.choose_implementation("auto", 8192, 8192) == "dense"
        assert kernels.choose_implementation("auto", 16384, 16384) == "blocked"
        assert kernels.choose_implementation("auto", 8192, 8192, itemsize=8) == "blocked"
        assert kernels.choose_implementation("auto", None, 8192) == "run time"
        assert kernels.choose_implementation("auto", 8192, None, in_xla=True) == "blocked"
        assert kernels.choose_implementation("blocked", 4, 4) == "blocked"
        assert kernels.choose_implementation("dense", 10**5, 10**5) == "dense"

    def test_budget_is_the_dense_working_set_in_bytes(self):
        working_set = kernel_choice.dense_working_set(300, 600)
        assert working_set == 3 * 300 * 600 * 4
        choose = kernels.choose_implementation
        assert choose("auto", 300, 600, memory_budget=working_set) == "dense"
        assert choose("auto", 300, 600, memory_budget=working_set - 1) == "blocked"
        assert choose("auto", 300, 600, memory_budget=0) == "blocked"
        assert bool(kernel_choice.dense_fits(300, 600, 4, working_set))
        assert not bool(kernel_choice.dense_fits(300, 600, 4, working_set - 1))

    @pytest.mark.parametrize("budget,kernel", [(1200, "dense"), (1199, "blocked")])
    def test_budget_argument_picks_the_kernel_that_runs(self, kernel_runs, budget, kernel):
        # 5 x 2 views: 10 anchor rows against 10 contrasts, 100 float32 logits in each of
        # three matrices: 1200 bytes.
        features, labels, _ = make_batch(24, 5, 2, 8, "int")
        loss = supervised_contrastive_loss(labels, features, dense_memory_budget=budget)
        assert kernel_runs == [kernel]
        np.testing.assert_allclose(loss.numpy(), supcon_reference(features, labels, 0.1), rtol=2e-4)

    @pytest.mark.parametrize("implementation,largest", [("blocked", 8 * 64), ("dense", 64 * 64)])
    def test_blocked_graph_holds_no_matrix_larger_than_a_block(self, implementation, largest):
        # 32 x 2 views of width 4 (N = 64) in blocks of 8 rows: no tensor of the forward
        # or backward graph (while-loop bodies included) exceeds one [8, 64] block; the
        # dense kernel's [64, 64] matrix shows the check can fail.
        features, labels, _ = make_batch(25, 32, 2, 4, "int")

        @tf.function
        def step(z):
            with tf.GradientTape() as tape:
                tape.watch(z)
                loss = supervised_contrastive_loss(
                    labels, z, implementation=implementation, block_size=8
                )
            return tape.gradient(tf.reduce_sum(loss), z)

        sizes = [
            tensor.shape.num_elements()
            for graph in graph_and_functions(
                step.get_concrete_function(tf.constant(features)).graph
            )
            for operation in graph.get_operations()
            for tensor in operation.outputs
            if tensor.shape.is_fully_defined()
        ]
        assert max(sizes) == largest

    def test_default_block_size_bounds_the_block(self):
        for columns in (1, 100, 8192, 131072, 10**7):
            rows = kernels.default_block_size(columns)
            assert rows % 8 == 0 and rows >= kernels.MIN_BLOCK_ROWS
            assert rows * columns <= max(
                kernels.DEFAULT_BLOCK_ELEMENTS, kernels.MIN_BLOCK_ROWS * columns
            )

    def test_get_config_round_trip(self):
        loss = SupervisedContrastiveLoss(
            implementation="blocked", block_size=128, dense_memory_budget=2**32
        )
        config = loss.get_config()
        assert config["implementation"] == "blocked" and config["block_size"] == 128
        assert config["dense_memory_budget"] == 2**32
        clone = SupervisedContrastiveLoss.from_config(config)
        assert clone.get_config() == config
        restored = keras.losses.deserialize(keras.losses.serialize(loss))
        assert restored.implementation == "blocked" and restored.block_size == 128
        assert restored.dense_memory_budget == 2**32

    @pytest.mark.parametrize(
        "options,match",
        [
            ({"implementation": "tiled"}, "Unknown `implementation`='tiled'"),
            ({"implementation": None}, "implementation"),
            ({"block_size": 0}, "`block_size` must be None .* got 0"),
            ({"block_size": -3}, "`block_size`.*got -3"),
            ({"block_size": 2.5}, "`block_size`.*got 2.5"),
            ({"block_size": True}, "`block_size`.*got True"),
            ({"dense_memory_budget": -1}, "`dense_memory_budget` must be an integer >= 0, got -1"),
            ({"dense_memory_budget": "1GB"}, "`dense_memory_budget` must be an integer.*'1GB'"),
            ({"dense_memory_budget": 1.5e9}, "`dense_memory_budget` must be an integer.*float"),
            ({"dense_memory_budget": True}, "`dense_memory_budget` must be an integer.*True"),
        ],
    )
    def test_bad_options(self, options, match):
        with pytest.raises(ValueError, match=match):
            SupervisedContrastiveLoss(**options)
        with pytest.raises(ValueError, match=match):
            supervised_contrastive_loss([0, 1], np.ones((2, 2, 3), "float32"), **options)
