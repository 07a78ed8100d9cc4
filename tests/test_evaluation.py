"""Tests of `supcon_tf.evaluation` against hand-computed values and float64 NumPy oracles."""

import json
import re
import subprocess
import sys
import types
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from supcon_tf import evaluation
from supcon_tf.evaluation import (
    KNNMonitor,
    alignment_uniformity,
    calibration_bins,
    confusion_matrix,
    evaluate_classifier,
    evaluate_encoder,
    evaluate_run,
    expected_calibration_error,
    knn_accuracy,
    knn_scores,
    per_class_accuracy,
    plot_confusion_matrix,
    plot_reliability_diagram,
    plot_tsne,
    top_k_accuracy,
    update_report_json,
    write_report_md,
)
from supcon_tf.files import write_atomically

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def assert_png(path):
    path = Path(path)
    assert path.is_file(), path
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    assert len(data) > 1024


# ----------------------------------------------------------------------------- oracles


def ece_oracle(labels, probabilities, num_bins):
    """Float64 loop over bins (lo, hi] of the ECE definition (Guo et al. 2017)."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    total = 0.0
    for index in range(num_bins):
        low, high = index / num_bins, (index + 1) / num_bins
        members = []
        for label, row in zip(labels, probabilities, strict=True):
            confidence = max(row)
            if (low < confidence <= high) or (index == 0 and confidence == 0.0):
                members.append((float(int(np.argmax(row)) == label), confidence))
        if members:
            accuracy = sum(hit for hit, _ in members) / len(members)
            confidence = sum(value for _, value in members) / len(members)
            total += len(members) / len(labels) * abs(accuracy - confidence)
    return total


def knn_oracle(bank, bank_labels, queries, k, temperature, weighting, num_classes):
    """Brute force: full sort of the cosine similarities of every query, then weighted votes."""
    bank = [np.asarray(row, np.float64) / np.linalg.norm(row) for row in bank]
    votes = np.zeros((len(queries), num_classes))
    for row, query in enumerate(queries):
        query = np.asarray(query, np.float64) / np.linalg.norm(query)
        similarities = [float(query @ entry) for entry in bank]
        order = sorted(range(len(bank)), key=lambda index: -similarities[index])
        for index in order[: min(k, len(bank))]:
            similarity = similarities[index]
            if weighting == "exponential":
                weight = np.exp(similarity / temperature)
            elif weighting == "inverse_distance":
                weight = 1.0 / (np.linalg.norm(query - bank[index]) + 1e-6)
            else:
                weight = 1.0
            votes[row, bank_labels[index]] += weight
    return votes


def alignment_uniformity_oracle(embeddings, labels, alpha=2.0, t=2.0):
    """Double loops over pairs of Wang & Isola's alignment (per class) and uniformity."""
    z = [np.asarray(row, np.float64) / np.linalg.norm(row) for row in embeddings]
    per_class = {}
    for label in sorted(set(labels)):
        members = [z[i] for i in range(len(z)) if labels[i] == label]
        if len(members) < 2:
            continue
        pairs = [
            np.linalg.norm(members[i] - members[j]) ** alpha
            for i in range(len(members))
            for j in range(len(members))
            if i != j
        ]
        per_class[label] = float(np.mean(pairs))
    pairs = [
        np.exp(-t * np.linalg.norm(z[i] - z[j]) ** 2)
        for i in range(len(z))
        for j in range(len(z))
        if i != j
    ]
    return float(np.mean(list(per_class.values()))), per_class, float(np.log(np.mean(pairs)))


# ----------------------------------------------------------------------------- accuracy


class TestTopKAccuracy:
    def test_hand_made_case(self):
        scores = [
            [0.1, 0.2, 0.7],  # label 2: top-1 hit
            [0.5, 0.3, 0.2],  # label 1: second -> top-2 hit
            [0.6, 0.1, 0.3],  # label 1: last -> miss for k < 3
            [0.2, 0.5, 0.3],  # label 0: last
        ]
        labels = [2, 1, 1, 0]
        assert top_k_accuracy(labels, scores, k=1) == 0.25
        assert top_k_accuracy(labels, scores, k=2) == 0.5
        assert top_k_accuracy(labels, scores, k=3) == 1.0

    def test_ties_go_to_the_lower_class_index(self):
        assert top_k_accuracy([0], [[0.5, 0.5]], k=1) == 1.0
        assert top_k_accuracy([1], [[0.5, 0.5]], k=1) == 0.0

    def test_accepts_logits_and_column_labels(self):
        assert top_k_accuracy(np.array([[1], [0]]), [[-3.0, 2.0], [5.0, -1.0]]) == 1.0

    @pytest.mark.parametrize(
        "labels, scores, k, match",
        [
            ([0], [[0.5, 0.5]], 3, "exceeds the number of classes"),
            ([0], [[0.5, 0.5]], 0, "positive integer"),
            ([0, 1], [[0.5, 0.5]], 1, "same samples"),
            ([2], [[0.5, 0.5]], 1, "only 2 classes"),
            ([0], [0.5, 0.5], 1, r"shape \[N, num_classes\]"),
            ([0], [[np.nan, 0.5]], 1, "NaN"),
            ([-1], [[0.5, 0.5]], 1, "non-negative"),
            ([0.5], [[0.5, 0.5]], 1, "integer class indices"),
            ([], np.zeros((0, 2)), 1, "empty"),
        ],
    )
    def test_errors(self, labels, scores, k, match):
        with pytest.raises(ValueError, match=match):
            top_k_accuracy(labels, scores, k=k)


class TestPerClassAccuracy:
    def test_confusion_matrix_hand_made(self):
        matrix = confusion_matrix([0, 0, 1, 2, 2, 2], [0, 1, 1, 2, 0, 2], num_classes=3)
        np.testing.assert_array_equal(matrix, [[1, 1, 0], [0, 1, 0], [1, 0, 2]])

    def test_per_class_accuracy_hand_made(self):
        accuracy = per_class_accuracy([0, 0, 1, 2, 2, 2], [0, 1, 1, 2, 0, 2], num_classes=4)
        np.testing.assert_allclose(accuracy[:3], [0.5, 1.0, 2 / 3])
        assert np.isnan(accuracy[3])

    def test_errors(self):
        with pytest.raises(ValueError, match="same shape"):
            confusion_matrix([0, 1], [0], num_classes=2)
        with pytest.raises(ValueError, match="num_classes"):
            confusion_matrix([0, 3], [0, 1], num_classes=2)


# ----------------------------------------------------------------------------- calibration


class TestExpectedCalibrationError:
    # Six hand-made predictions, 10 bins (lo, hi]:
    #   conf 0.95 correct -> bin 9; conf 0.85 wrong -> bin 8; conf 0.55 correct -> bin 5;
    #   conf 0.70 correct -> bin 6 (0.7 closes (0.6, 0.7]);
    #   conf 0.75 correct and conf 0.78 wrong -> bin 7 (accuracy 0.5, confidence 0.765).
    # ECE = (0.05 + 0.85 + 0.45 + 0.30) / 6 + 2 / 6 * |0.5 - 0.765| = 2.18 / 6.
    LABELS = [0, 1, 0, 1, 1, 1]
    PROBABILITIES = [
        [0.95, 0.05],
        [0.85, 0.15],
        [0.55, 0.45],
        [0.30, 0.70],
        [0.25, 0.75],
        [0.78, 0.22],
    ]

    def test_hand_computed_answer(self):
        ece = expected_calibration_error(self.LABELS, self.PROBABILITIES, num_bins=10)
        assert ece == pytest.approx(2.18 / 6, abs=1e-12)

    def test_bins_hand_computed(self):
        bins = calibration_bins(self.LABELS, self.PROBABILITIES, num_bins=10)
        np.testing.assert_array_equal(bins["counts"], [0, 0, 0, 0, 0, 1, 1, 2, 1, 1])
        np.testing.assert_allclose(bins["accuracy"][5:], [1, 1, 0.5, 0, 1])
        np.testing.assert_allclose(bins["confidence"][5:], [0.55, 0.70, 0.765, 0.85, 0.95])

    def test_single_bin_is_the_gap_of_the_means(self):
        # One bin: |mean accuracy - mean confidence| = |4/6 - mean(max p)|.
        confidences = [0.95, 0.85, 0.55, 0.70, 0.75, 0.78]
        expected = abs(4 / 6 - np.mean(confidences))
        ece = expected_calibration_error(self.LABELS, self.PROBABILITIES, num_bins=1)
        assert ece == pytest.approx(expected, abs=1e-12)

    def test_perfectly_confident_and_right_is_zero(self):
        assert expected_calibration_error([0, 1], [[1.0, 0.0], [0.0, 1.0]]) == 0.0

    @pytest.mark.parametrize("num_bins", [1, 5, 15, 20])
    def test_matches_loop_oracle_on_random_softmax(self, num_bins):
        rng = np.random.default_rng(num_bins)
        probabilities = evaluation.softmax(rng.normal(scale=2.0, size=(300, 7)))
        labels = rng.integers(0, 7, size=300)
        expected = ece_oracle(labels, probabilities, num_bins)
        actual = expected_calibration_error(labels, probabilities, num_bins)
        assert actual == pytest.approx(expected, abs=1e-12)

    def test_errors(self):
        with pytest.raises(ValueError, match=r"lie in \[0, 1\]"):
            expected_calibration_error([0], [[3.0, -1.0]])
        with pytest.raises(ValueError, match="num_bins"):
            expected_calibration_error([0], [[1.0, 0.0]], num_bins=0)


# ----------------------------------------------------------------------------- kNN


class TestKnn:
    @pytest.mark.parametrize("weighting", evaluation.WEIGHTINGS)
    def test_separable_clusters_are_exact(self, weighting):
        rng = np.random.default_rng(0)
        centers = np.eye(4, 16) * 10
        bank_labels = np.repeat(np.arange(4), 25)
        bank = centers[bank_labels] + rng.normal(scale=0.5, size=(100, 16))
        query_labels = np.repeat(np.arange(4), 10)
        queries = centers[query_labels] + rng.normal(scale=0.5, size=(40, 16))
        accuracy = knn_accuracy(bank, bank_labels, queries, query_labels, k=20, weighting=weighting)
        assert accuracy == 1.0

    @pytest.mark.parametrize(
        "weighting, k, temperature",
        [
            ("exponential", 1, 0.1),
            ("exponential", 7, 0.07),
            ("exponential", 200, 0.5),
            ("inverse_distance", 5, 0.1),
            ("uniform", 9, 0.1),
        ],
    )
    def test_matches_brute_force_oracle(self, weighting, k, temperature):
        rng = np.random.default_rng(k)
        bank = rng.normal(size=(60, 5))
        bank_labels = rng.integers(0, 4, size=60)
        queries = rng.normal(size=(25, 5))
        query_labels = rng.integers(0, 4, size=25)
        expected = knn_oracle(bank, bank_labels, queries, k, temperature, weighting, 4)
        actual = knn_scores(
            bank,
            bank_labels,
            queries,
            k=k,
            temperature=temperature,
            weighting=weighting,
            num_classes=4,
            batch_size=7,
        )
        # The exponential weights are rescaled per query (a constant factor per row).
        np.testing.assert_allclose(
            actual / actual.sum(axis=1, keepdims=True),
            expected / expected.sum(axis=1, keepdims=True),
            rtol=1e-9,
        )
        expected_accuracy = float(np.mean(expected.argmax(axis=1) == query_labels))
        accuracy = knn_accuracy(bank, bank_labels, queries, query_labels, k, temperature, weighting)
        assert accuracy == expected_accuracy

    def test_is_invariant_to_embedding_scale(self):
        rng = np.random.default_rng(1)
        bank, queries = rng.normal(size=(30, 4)), rng.normal(size=(10, 4))
        labels = rng.integers(0, 3, size=30)
        scaled = knn_scores(bank * 7.0, labels, queries * 0.1, k=5, num_classes=3)
        np.testing.assert_allclose(scaled, knn_scores(bank, labels, queries, k=5, num_classes=3))

    @pytest.mark.parametrize(
        "kwargs, match",
        [
            ({"weighting": "gaussian"}, "Unknown `weighting`"),
            ({"temperature": 0.0}, "temperature"),
            ({"k": 0}, "`k`"),
            ({"num_classes": 1}, "num_classes"),
        ],
    )
    def test_errors(self, kwargs, match):
        with pytest.raises(ValueError, match=match):
            knn_scores([[1.0, 0.0], [0.0, 1.0]], [0, 1], [[1.0, 1.0]], **kwargs)

    def test_shape_errors(self):
        with pytest.raises(ValueError, match="dimension"):
            knn_scores([[1.0, 0.0]], [0], [[1.0, 0.0, 0.0]])
        with pytest.raises(ValueError, match="`train_labels` has 2 entries"):
            knn_scores([[1.0, 0.0]], [0, 1], [[1.0, 0.0]])
        with pytest.raises(ValueError, match="`test_labels` has 1 entries"):
            knn_accuracy([[1.0, 0.0]], [0], [[1.0, 0.0], [0.0, 1.0]], [0])
        with pytest.raises(ValueError, match="NaN"):
            knn_scores([[np.nan, 0.0]], [0], [[1.0, 0.0]])


class TestKNNMonitor:
    def test_logged_in_history_and_tensorboard(self, tmp_path):
        rng = np.random.default_rng(0)
        images = rng.normal(size=(48, 6)).astype("float32")
        labels = (images[:, 0] > 0).astype("int32")
        encoder = keras.Sequential([keras.Input((6,)), keras.layers.Dense(4)], name="encoder")
        model = keras.Sequential([encoder, keras.layers.Dense(2)])
        model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        monitor = KNNMonitor(encoder, (images, labels), (images[:16], labels[:16]), k=5)
        monitor.every_n_epochs = 2
        history = model.fit(
            images,
            labels,
            epochs=4,
            batch_size=16,
            verbose=0,
            callbacks=[monitor, keras.callbacks.TensorBoard(tmp_path / "logs")],
        )
        values = history.history["val_knn_accuracy"]
        assert len(values) == 2  # after epochs 2 and 4
        final = knn_accuracy(
            encoder.predict(images, verbose=0),
            labels,
            encoder.predict(images[:16], verbose=0),
            labels[:16],
            k=5,
        )
        assert values[-1] == final
        tags = set()
        for event_file in (tmp_path / "logs" / "validation").glob("events.out.tfevents.*"):
            for record in tf.data.TFRecordDataset(str(event_file)):
                event = tf.compat.v1.Event.FromString(record.numpy())
                tags.update(value.tag for value in event.summary.value)
        assert "epoch_knn_accuracy" in tags

    @pytest.mark.parametrize(
        "kwargs, match",
        [
            ({"train_data": ([0.0],)}, "images, labels"),
            ({"validation_data": ([[0.0]], [0, 1])}, "1 images but 2 labels"),
            ({"k": 0}, "`k`"),
            ({"every_n_epochs": 0}, "every_n_epochs"),
            ({"temperature": -1.0}, "temperature"),
        ],
    )
    def test_errors(self, kwargs, match):
        arguments = {
            "encoder": lambda images: images,
            "train_data": ([[0.0]], [0]),
            "validation_data": ([[0.0]], [0]),
            **kwargs,
        }
        with pytest.raises(ValueError, match=match):
            KNNMonitor(**arguments)


# ----------------------------------------------------------------------------- geometry


class TestAlignmentUniformity:
    def test_matches_pairwise_oracle(self):
        rng = np.random.default_rng(3)
        embeddings = rng.normal(size=(40, 6))
        labels = rng.integers(0, 4, size=40)
        labels[0] = 5  # a singleton class has no pair and is left out of the alignment
        alignment, per_class, uniformity = alignment_uniformity_oracle(embeddings, labels)
        result = alignment_uniformity(embeddings, labels)
        assert result["alignment"] == pytest.approx(alignment, rel=1e-10)
        assert result["uniformity"] == pytest.approx(uniformity, rel=1e-10)
        assert set(result["per_class_alignment"]) == set(per_class)
        for label, value in per_class.items():
            assert result["per_class_alignment"][label] == pytest.approx(value, rel=1e-10)

    def test_other_powers_match_the_oracle(self):
        rng = np.random.default_rng(4)
        embeddings, labels = rng.normal(size=(20, 3)), rng.integers(0, 2, size=20)
        alignment, _, uniformity = alignment_uniformity_oracle(embeddings, labels, 1.0, 0.5)
        result = alignment_uniformity(embeddings, labels, alignment_power=1.0, uniformity_scale=0.5)
        assert result["alignment"] == pytest.approx(alignment, rel=1e-8)
        assert result["uniformity"] == pytest.approx(uniformity, rel=1e-10)

    def test_closed_form_antipodal_pairs(self):
        # Class 0 at +e1/-e1 (distance 2), class 1 at +e2/-e2: alignment 4; the 12 ordered
        # pairs have squared distances 4 (4 pairs) and 2 (8 pairs).
        embeddings = [[1, 0], [-1, 0], [0, 1], [0, -1]]
        result = alignment_uniformity(embeddings, [0, 0, 1, 1])
        assert result["alignment"] == pytest.approx(4.0)
        expected = np.log((4 * np.exp(-8) + 8 * np.exp(-4)) / 12)
        assert result["uniformity"] == pytest.approx(expected)

    def test_errors(self):
        with pytest.raises(ValueError, match="No class has two samples"):
            alignment_uniformity([[1.0, 0.0], [0.0, 1.0]], [0, 1])
        with pytest.raises(ValueError, match="`labels` has 1 entries"):
            alignment_uniformity([[1.0, 0.0], [0.0, 1.0]], [0])
        with pytest.raises(ValueError, match="alignment_power"):
            alignment_uniformity([[1.0, 0.0], [0.0, 1.0]], [0, 0], alignment_power=0)


# ----------------------------------------------------------------------------- plots


class TestPlots:
    def test_reliability_diagram(self, tmp_path):
        rng = np.random.default_rng(0)
        probabilities = evaluation.softmax(rng.normal(size=(50, 3)))
        path = plot_reliability_diagram(
            rng.integers(0, 3, 50), probabilities, tmp_path / "a" / "r.png"
        )
        assert_png(path)

    def test_confusion_matrix(self, tmp_path):
        path = plot_confusion_matrix(
            [0, 1, 2, 2], [0, 2, 2, 1], tmp_path / "c.png", class_names=["a", "b", "c"]
        )
        assert_png(path)

    def test_tsne(self, tmp_path):
        rng = np.random.default_rng(0)
        path = plot_tsne(
            rng.normal(size=(30, 4)), np.arange(30) % 3, tmp_path / "t.png", max_samples=24
        )
        assert_png(path)

    def test_tsne_errors(self, tmp_path):
        with pytest.raises(ValueError, match="at least 4"):
            plot_tsne([[1.0, 0.0]] * 3, [0, 1, 0], tmp_path / "t.png")
        with pytest.raises(ValueError, match="perplexity"):
            plot_tsne(np.eye(5), [0] * 5, tmp_path / "t.png", perplexity=0)


# ----------------------------------------------------------------------------- models and runs


def tiny_problem(num_samples=40, size=8):
    """Images whose class (0..3) sets their colour, plus tiny models (mean colour -> ...)."""
    rng = np.random.default_rng(0)
    labels = np.arange(num_samples) % 4
    colours = np.array([[0.8, 0, 0], [0, 0.8, 0], [0, 0, 0.8], [0.8, 0.8, 0]])
    noise = rng.random((num_samples, size, size, 3)) * 0.2
    images = (colours[labels][:, None, None, :] + noise).astype("float32")
    encoder = keras.Sequential(
        [keras.Input((size, size, 3)), keras.layers.GlobalAveragePooling2D()], name="encoder"
    )
    classifier = keras.Sequential(
        [
            keras.Input((size, size, 3)),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(4),
        ],
        name="classifier",
    )
    return images, labels, encoder, classifier


class TestEvaluateModels:
    def test_classifier_matches_metrics(self, tmp_path):
        images, labels, _, classifier = tiny_problem()
        result = evaluate_classifier(
            classifier, images, labels, run_dir=tmp_path, name="m", num_bins=5
        )
        probabilities = evaluation.softmax(classifier.predict(images, verbose=0))
        assert result["top1_accuracy"] == top_k_accuracy(labels, probabilities, k=1)
        assert "top5_accuracy" not in result  # 4 classes: top-5 is meaningless
        assert result["expected_calibration_error"] == pytest.approx(
            ece_oracle(labels, probabilities, 5), abs=1e-9
        )
        assert list(result["per_class_accuracy"]) == ["0", "1", "2", "3"]
        for path in result["plots"].values():
            assert_png(tmp_path / path)

    def test_encoder_on_separable_features(self, tmp_path):
        images, labels, encoder, _ = tiny_problem()
        result = evaluate_encoder(
            encoder, images, labels, images, labels, run_dir=tmp_path, k=3, tsne_samples=20
        )
        assert result["knn_accuracy"] == 1.0
        assert result["embedding_dim"] == 3
        assert_png(tmp_path / result["plots"]["tsne"])

    def test_class_name_count_is_checked(self):
        images, labels, encoder, classifier = tiny_problem()
        with pytest.raises(ValueError, match="2 `class_names` given for a 4-class"):
            evaluate_classifier(classifier, images, labels, class_names=["a", "b"])
        with pytest.raises(ValueError, match="A label .3. has no name"):
            evaluate_encoder(encoder, images, labels, images, labels, class_names=["a", "b"])

    def test_encoder_names_classes_absent_from_the_data(self):
        images, labels, encoder, _ = tiny_problem()
        keep = labels < 3  # class "d" has no sample: its name is still accepted
        result = evaluate_encoder(
            encoder,
            images[keep],
            labels[keep],
            images[keep],
            labels[keep],
            k=3,
            class_names=["a", "b", "c", "d"],
        )
        assert sorted(result["per_class_alignment"]) == ["a", "b", "c"]


class TestReports:
    def test_update_report_json_keeps_other_keys(self, tmp_path):
        (tmp_path / "report.json").write_text(json.dumps({"supcon": {"test_accuracy": 0.9}}))
        update_report_json(tmp_path, {"evaluation": {"a": 1}})
        update_report_json(tmp_path, {"evaluation": {"b": 2}})
        report = json.loads((tmp_path / "report.json").read_text())
        assert report == {"supcon": {"test_accuracy": 0.9}, "evaluation": {"b": 2}}

    def test_update_report_json_rejects_corrupt_file(self, tmp_path):
        (tmp_path / "report.json").write_text("{not json")
        with pytest.raises(ValueError, match="not valid JSON"):
            update_report_json(tmp_path, {})

    def test_write_report_md_rejects_non_dict(self, tmp_path):
        with pytest.raises(ValueError, match="must be a dict"):
            write_report_md([1], tmp_path)

    def test_evaluate_run_writes_reports_with_existing_links(self, tmp_path):
        images, labels, encoder, classifier = tiny_problem()
        classifier.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        classifier.fit(images, labels, epochs=2, verbose=0)
        classifier.save(tmp_path / "classifier.keras")
        classifier.save(tmp_path / "baseline.keras")
        encoder.save(tmp_path / "encoder.keras")
        (tmp_path / "report.json").write_text(
            json.dumps({"supcon": {"test_accuracy": 0.5}, "flags": {"seed": 0}})
        )
        splits = types.SimpleNamespace(
            x_train=images,
            y_train=labels,
            x_test=images,
            y_test=labels,
            class_names=["a", "b", "c", "d"],
            name="tiny",
        )
        result = evaluate_run(
            tmp_path,
            splits,
            knn_k=3,
            corruptions=["contrast", "gaussian_noise"],
            corruption_samples=16,
            tsne_samples=20,
        )
        report = json.loads((tmp_path / "report.json").read_text())
        assert report["supcon"] == {"test_accuracy": 0.5}  # training results kept
        assert report["flags"] == {"seed": 0}
        assert report["evaluation"] == json.loads(json.dumps(result))
        assert sorted(result["classifiers"]) == ["cross_entropy", "supcon"]
        assert result["encoders"]["supcon"]["knn_accuracy"] == 1.0
        corruption = result["corruptions"]
        assert corruption["baseline"] == "cross_entropy"
        assert corruption["num_samples"] == 16
        # The same model as baseline: every corruption error is exactly 1.
        assert corruption["models"]["supcon"]["mean_corruption_error"] == pytest.approx(1.0)

        markdown = (tmp_path / "report.md").read_text()
        links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", markdown)
        assert len(links) == 6  # 2 reliability, 2 confusion, t-SNE, corruptions
        for link in links:
            assert_png(tmp_path / link)
        assert "mCE (vs cross_entropy)" in markdown
        assert "| a |" in markdown  # per-class table uses the class names

    def test_evaluate_run_errors(self, tmp_path):
        splits = types.SimpleNamespace(x_train=0, y_train=0, x_test=0, y_test=0)
        with pytest.raises(FileNotFoundError, match="does not exist"):
            evaluate_run(tmp_path / "missing", splits)
        with pytest.raises(FileNotFoundError, match="classifier.keras"):
            evaluate_run(tmp_path, splits)
        (tmp_path / "classifier.keras").write_text("not a model")
        with pytest.raises(ValueError, match="has no `x_test`"):
            evaluate_run(tmp_path, types.SimpleNamespace(x_train=0, y_train=0, y_test=0))
        splits = types.SimpleNamespace(
            x_train=np.zeros((2, 2)), y_train=[0, 1], x_test=np.zeros((2, 2)), y_test=[0, 1]
        )
        with pytest.raises(ValueError, match="Could not load the Keras model"):
            evaluate_run(tmp_path, splits)


# ----------------------------------------------------------------------------- supcon-eval

ROOT = Path(__file__).resolve().parents[1]


class TestCli:
    def test_run_settings(self, tmp_path):
        from supcon_tf.cli.evaluate import run_settings

        (tmp_path / "flags.json").write_text(
            json.dumps({"dataset": "digits", "validation_fraction": 0.2, "seed": 4, "x": 1})
        )
        assert run_settings(tmp_path) == {
            "dataset": "digits",
            "data_dir": None,
            "validation_fraction": 0.2,
            "seed": 4,
        }
        settings = run_settings(tmp_path, dataset="data.npz", data_dir="d", seed=1)
        assert settings == {
            "dataset": "data.npz",
            "data_dir": "d",
            "validation_fraction": 0.2,
            "seed": 1,
        }

    def test_run_settings_of_a_gfile_run(self, ram_dir):
        from supcon_tf.cli.evaluate import run_settings

        write_atomically(f"{ram_dir}/flags.json", json.dumps({"dataset": "digits", "seed": 2}))
        assert run_settings(ram_dir)["seed"] == 2
        with pytest.raises(FileNotFoundError, match="does not exist"):
            run_settings(f"{ram_dir}/missing")

    def test_run_settings_errors(self, tmp_path):
        from supcon_tf.cli.evaluate import run_settings

        with pytest.raises(FileNotFoundError, match="does not exist"):
            run_settings(tmp_path / "missing")
        with pytest.raises(ValueError, match="holds no supcon-train run .* or --dataset"):
            run_settings(tmp_path)
        (tmp_path / "config.json").write_text("{}")
        with pytest.raises(ValueError, match="has no flags.json naming its dataset"):
            run_settings(tmp_path)
        (tmp_path / "flags.json").write_text("{")
        with pytest.raises(ValueError, match="not valid JSON"):
            run_settings(tmp_path)

    @pytest.mark.parametrize(
        "arguments, match",
        [
            (["--corruptions=fog,spatter"], "--corruptions must name corruptions"),
            (["--knn_k=0"], "knn_k"),
            ([], "model_dir"),
        ],
    )
    def test_flag_errors(self, arguments, match):
        from absl import flags

        from supcon_tf.cli.evaluate import define_flags

        flag_values = flags.FlagValues()
        define_flags(flag_values)
        model_dir = [] if not arguments else ["--model_dir=runs/x"]
        with pytest.raises(flags.Error, match=match):
            flag_values(["supcon-eval", *model_dir, *arguments])

    def test_train_then_evaluate_a_real_run(self, tmp_path):
        """supcon-train's library call (tiny epochs, evaluation on), then supcon-eval."""
        from supcon_tf.experiment import ExperimentConfig, run_experiment

        config = ExperimentConfig(
            pretrain_epochs=2,
            classifier_epochs=1,
            baseline_epochs=1,
            width_multiplier=0.25,
            knn_monitor_every=2,
            model_dir=str(tmp_path),
            verbose=0,
        )
        report = run_experiment(config)
        (tmp_path / "flags.json").write_text(json.dumps({"dataset": "digits", "seed": 0}))
        # The kNN monitor logged once (after epoch 2) into the pretraining history.
        assert len(report["history"]["pretrain"]["val_knn_accuracy"]) == 1
        evaluated = report["evaluation"]
        # Independent cross-check: Keras' own evaluate() during training.
        for name in ("supcon", "cross_entropy"):
            assert evaluated["classifiers"][name]["top1_accuracy"] == pytest.approx(
                report[name]["test_accuracy"], abs=1e-6
            )
        markdown = (tmp_path / "report.md").read_text()
        for link in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", markdown):
            assert_png(tmp_path / link)

        completed = subprocess.run(
            [
                sys.executable,
                "-m",
                "supcon_tf.cli.evaluate",
                f"--model_dir={tmp_path}",
                "--corruptions=contrast,fog",
                "--corruption_samples=40",
                "--tsne_samples=0",
                "--knn_k=10",
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert completed.returncode == 0, completed.stderr[-3000:]
        assert "mCE" in completed.stdout
        # The retrieval section, printed: the standard split's test set, both encoders.
        retrieval = report["retrieval"]
        assert "Retrieval on the test set of classes 0, 1, 2" in completed.stdout
        for name in ("supcon", "cross_entropy"):
            recall = retrieval["models"][name]["recall_at_1"]
            assert f"  {name}: R@1 {recall:.4f}, R@2" in completed.stdout
        saved = json.loads((tmp_path / "report.json").read_text())
        assert saved["retrieval"] == json.loads(json.dumps(retrieval))
        assert saved["supcon"] == report["supcon"]  # the training results are kept
        assert saved["evaluation"]["corruptions"]["corruptions"] == ["contrast", "fog"]
        assert saved["evaluation"]["corruptions"]["num_samples"] == 40
        assert saved["evaluation"]["encoders"]["supcon"]["knn_k"] == 10
        assert saved["evaluation"]["encoders"]["supcon"]["plots"] == {}
        assert (
            saved["evaluation"]["classifiers"]["supcon"]["top1_accuracy"]
            == evaluated["classifiers"]["supcon"]["top1_accuracy"]
        )
