"""The class-disjoint protocol: train on some classes, measure retrieval on the others.

The split itself (`supcon_tf.data.class_split.split_classes`), its checks (the configuration,
preflight, the command line), and a tiny run on digits whose retrieval section and
linear probes are recomputed here from the saved models.
"""

import json
from pathlib import Path

import keras
import numpy as np
import pytest

from supcon_tf.data import load_dataset
from supcon_tf.data.class_split import check_unseen_classes, split_classes
from supcon_tf.evaluation.retrieval_section import classifier_encoder
from supcon_tf.experiment import ExperimentConfig, run_experiment
from supcon_tf.experiment.inputs import DataSource, open_inputs, unseen_inputs
from supcon_tf.experiment.preflight import preflight
from supcon_tf.retrieval import retrieval_metrics
from tests._processes import run_as_user

DIGITS_UNSEEN = (5, 6, 7, 8, 9)


def _npz(path, num_classes, per_class=(6, 3)):
    """A dataset of `num_classes` classes, `per_class` (train, test) images each."""
    rng = np.random.default_rng(0)

    def split(count):
        labels = np.repeat(np.arange(num_classes), count)
        return rng.random((labels.size, 8, 8, 1)).astype("float32"), labels

    x_train, y_train = split(per_class[0])
    x_test, y_test = split(per_class[1])
    np.savez(path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    return str(path)


# ----------------------------------------------------------------------------- the split


class TestSplitClasses:
    @pytest.mark.parametrize("unseen_classes", [None, [0, 3, 9]])
    def test_class_sets_are_disjoint_and_every_image_is_kept_once(self, unseen_classes):
        splits = load_dataset("digits", seed=3)
        seen, unseen = split_classes(splits, unseen_classes)
        unseen_ids = list(DIGITS_UNSEEN) if unseen_classes is None else unseen_classes
        seen_ids = [label for label in range(10) if label not in unseen_ids]
        assert seen.class_names == tuple(str(label) for label in seen_ids)
        assert unseen.class_names == tuple(str(label) for label in unseen_ids)
        for part in ("train", "val", "test"):
            images, labels = getattr(splits, f"x_{part}"), getattr(splits, f"y_{part}")
            for kept, ids in ((seen, seen_ids), (unseen, unseen_ids)):
                mask = np.isin(labels, ids)
                # Exactly the images of those classes, in their order, labels renumbered.
                np.testing.assert_array_equal(getattr(kept, f"x_{part}"), images[mask])
                expected = np.searchsorted(ids, labels[mask])
                np.testing.assert_array_equal(getattr(kept, f"y_{part}"), expected)
            assert len(getattr(seen, f"y_{part}")) + len(getattr(unseen, f"y_{part}")) == len(
                labels
            )
        # digits' fixed, stratified 20 % test set: 180 images of classes 5-9.
        if unseen_classes is None:
            assert len(unseen.y_test) == 180 and len(seen.y_test) == 180

    def test_seeded(self):
        first = split_classes(load_dataset("digits", seed=1))[1]
        again = split_classes(load_dataset("digits", seed=1))[1]
        other = split_classes(load_dataset("digits", seed=2))[1]
        np.testing.assert_array_equal(first.x_train, again.x_train)
        np.testing.assert_array_equal(first.y_val, again.y_val)
        # Another seed draws another validation split of the same classes and test set.
        assert not np.array_equal(first.x_val, other.x_val)
        np.testing.assert_array_equal(first.x_test, other.x_test)
        assert first.class_names == other.class_names

    def test_an_odd_number_of_classes_trains_on_the_extra_one(self, tmp_path):
        splits = load_dataset(_npz(tmp_path / "five.npz", 5), validation_fraction=0)
        seen, unseen = split_classes(splits)
        assert (seen.class_names, unseen.class_names) == (("0", "1", "2"), ("3", "4"))
        assert (len(seen.y_train), len(unseen.y_train), len(unseen.y_test)) == (18, 12, 6)

    @pytest.mark.parametrize(
        ("unseen_classes", "match"),
        [
            ([], r"`unseen_classes` is empty"),
            ([5, 5], "lists class 5 twice"),
            ([-1], r"`unseen_classes` must be an integer >= 0, got -1"),
            (["5"], r"`unseen_classes` must be an integer >= 0, got '5'"),
            ("5,6", "must be a list of class ids"),
            (5, "must be a list of class ids"),
        ],
    )
    def test_form_errors(self, unseen_classes, match):
        with pytest.raises(ValueError, match=match):
            check_unseen_classes(unseen_classes)

    @pytest.mark.parametrize(
        ("unseen_classes", "match"),
        [
            (
                [9, 10, 12],
                r"`unseen_classes` \[10, 12\] are not class ids of digits, which has "
                r"10 classes \(0\.\.9\)",
            ),
            (list(range(10)), "leaves 0 seen \\(trained\\) class"),
            ([0, 1, 2, 3, 4, 5, 6, 7, 8], "leaves 1 seen \\(trained\\) class"),
            ([4], "leaves 1 unseen class"),
        ],
    )
    def test_errors_that_need_the_dataset(self, unseen_classes, match):
        with pytest.raises(ValueError, match=match):
            split_classes(load_dataset("digits"), unseen_classes)

    def test_too_few_classes_for_the_default_split(self, tmp_path):
        splits = load_dataset(_npz(tmp_path / "three.npz", 3), validation_fraction=0)
        with pytest.raises(ValueError, match="leaves 1 unseen class"):
            split_classes(splits)


# ------------------------------------------------------------------ where the split enters


class TestChecks:
    @pytest.mark.parametrize(
        ("overrides", "match"),
        [
            ({"split": "disjoint"}, r"`split` must be one of 'standard', 'class_disjoint'"),
            ({"unseen_classes": [5, 6]}, "`unseen_classes` applies to split='class_disjoint'"),
            ({"split": "class_disjoint", "unseen_classes": []}, "`unseen_classes` is empty"),
            ({"split": "class_disjoint", "unseen_classes": [5, 5]}, "lists class 5 twice"),
        ],
    )
    def test_config_errors(self, overrides, match):
        with pytest.raises(ValueError, match=match):
            ExperimentConfig(**overrides)

    def test_config_stores_the_classes_sorted(self):
        config = ExperimentConfig(split="class_disjoint", unseen_classes=(9, 5, 7))
        assert config.unseen_classes == [5, 7, 9]
        assert config.data_source().unseen_classes == (5, 7, 9)

    @pytest.mark.parametrize(
        ("unseen_classes", "match"),
        [([3, 11], r"\[11\] are not class ids of digits"), (list(range(10)), "leaves 0 seen")],
    )
    def test_preflight_refuses_before_anything_is_written(self, tmp_path, unseen_classes, match):
        config = ExperimentConfig(
            split="class_disjoint", unseen_classes=unseen_classes, model_dir=str(tmp_path / "r")
        )
        with pytest.raises(ValueError, match=match):
            preflight(config)
        with pytest.raises(ValueError, match=match):
            run_experiment(config)
        assert not (tmp_path / "r").exists()

    def test_the_probe_batch_must_fit_the_unseen_training_images(self, tmp_path):
        config = ExperimentConfig(
            # 3 seen classes (30 training images), 2 unseen (20).
            dataset=_npz(tmp_path / "five.npz", 5, per_class=(10, 3)),
            split="class_disjoint",
            batch_size=25,
            pretrain_epochs=1,
            classifier_epochs=1,
            validation_fraction=0,
            model_dir=str(tmp_path / "r"),
        )
        with pytest.raises(
            ValueError,
            match="unseen classes trains on their 20 training images of .*five.npz, fewer than its batch size 25; set --batch_size to at most 20",
        ):
            run_experiment(config)
        assert not (tmp_path / "r").exists()

    def test_streamed_datasets_are_refused_for_now(self, tmp_path):
        folder = tmp_path / "images"
        for split in ("train", "test"):
            (folder / split / "a").mkdir(parents=True)
        source = DataSource(str(folder), image_size=8, split="class_disjoint")
        with pytest.raises(ValueError, match="--split=class_disjoint is not supported yet for"):
            open_inputs(source)

    def test_inputs_train_on_the_seen_classes(self):
        inputs = open_inputs(DataSource("digits", split="class_disjoint", unseen_classes=(0, 1)))
        assert inputs.num_classes == 8 and inputs.class_names[0] == "2"
        assert set(np.unique(inputs.splits.y_train)) == set(range(8))
        assert unseen_inputs(inputs).class_names == ("0", "1")
        assert unseen_inputs(open_inputs(DataSource("digits"))) is None

    def test_the_command_line_says_it_in_one_line(self, tmp_path):
        result, _ = run_as_user(
            "supcon_tf.train",
            ["--split=class_disjoint", "--unseen_classes=5,10", f"--model_dir={tmp_path}/r"],
        )
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert result.returncode == 2, result.stderr[-3000:]
        assert lines[-1] == (
            "supcon-train: error: `unseen_classes` [10] are not class ids of digits, which "
            "has 10 classes (0..9); list ids in that range."
        )
        assert "Traceback" not in result.stderr and not (tmp_path / "r").exists()
        wrong, _ = run_as_user("supcon_tf.train", ["--unseen_classes=5,6"])
        assert wrong.returncode == 2
        assert "--unseen_classes applies to --split=class_disjoint only" in wrong.stderr


# ------------------------------------------------------------------------- a tiny run


@pytest.fixture(scope="module")
def disjoint_run(tmp_path_factory):
    """digits, trained on classes 0-4 for a few epochs; retrieval on classes 5-9."""
    model_dir = tmp_path_factory.mktemp("disjoint") / "run"
    config = ExperimentConfig(
        split="class_disjoint",
        pretrain_epochs=2,
        classifier_epochs=1,
        baseline_epochs=1,
        width_multiplier=0.25,
        knn_monitor=False,
        evaluate=False,
        model_dir=str(model_dir),
        verbose=0,
    )
    return config, run_experiment(config)


def _unseen_test_set():
    splits = load_dataset("digits", validation_fraction=0.1, seed=0)
    mask = np.isin(splits.y_test, DIGITS_UNSEEN)
    return splits, splits.x_test[mask], splits.y_test[mask]


def _load(model_dir, name):
    return keras.saving.load_model(Path(model_dir, name), compile=False)


def test_the_run_trains_on_the_seen_classes_only(disjoint_run):
    config, report = disjoint_run
    splits, _, _ = _unseen_test_set()
    assert report["dataset"]["num_classes"] == 5
    assert report["dataset"]["train"] == int(np.isin(splits.y_train, range(5)).sum())
    assert report["dataset"]["test"] == int(np.isin(splits.y_test, range(5)).sum())
    for name in ("classifier.keras", "baseline.keras"):
        assert _load(config.model_dir, name).output_shape == (None, 5)


def test_retrieval_equals_the_metrics_of_the_saved_encoders(disjoint_run):
    config, report = disjoint_run
    _, images, labels = _unseen_test_set()
    section = report["retrieval"]
    assert section["split"] == "class_disjoint"
    assert section["classes"] == ["5", "6", "7", "8", "9"]
    assert section["num_queries"] == len(labels) == 180
    assert section["ks"] == [1, 2, 4, 8]
    encoders = {
        "supcon": _load(config.model_dir, "encoder.keras"),
        "cross_entropy": classifier_encoder(_load(config.model_dir, "baseline.keras")),
    }
    assert sorted(section["models"]) == sorted(encoders)
    for name, encoder in encoders.items():
        embeddings = encoder.predict(images, batch_size=64, verbose=0)
        metrics = section["models"][name]
        assert metrics == retrieval_metrics(embeddings, labels, ks=(1, 2, 4, 8))
        assert all(0.0 <= value <= 1.0 for value in metrics.values())
        # An independent float64 brute force of Recall@k (leave-one-out, cosine).
        unit = embeddings.astype(np.float64)
        unit /= np.linalg.norm(unit, axis=1, keepdims=True)
        similarities = unit @ unit.T
        np.fill_diagonal(similarities, -np.inf)
        order = np.argsort(-similarities, axis=1, kind="stable")
        hits = labels[order[:, :8]] == labels[:, None]
        for k in (1, 2, 4, 8):
            assert metrics[f"recall_at_{k}"] == pytest.approx(hits[:, :k].any(axis=1).mean())
        assert metrics["precision_at_1"] == metrics["recall_at_1"]
    saved = json.loads(Path(config.model_dir, "report.json").read_text())
    assert saved["retrieval"] == json.loads(json.dumps(section))
    markdown = Path(config.model_dir, "report.md").read_text()
    assert "## Retrieval on the unseen classes" in markdown
    assert "### Linear probe on the unseen classes" in markdown


def test_the_baseline_features_are_what_its_head_reads(disjoint_run):
    config, _ = disjoint_run
    _, images, _ = _unseen_test_set()
    baseline = _load(config.model_dir, "baseline.keras")
    features = classifier_encoder(baseline).predict(images, verbose=0).astype(np.float64)
    kernel, bias = (np.asarray(weight, np.float64) for weight in baseline.layers[-1].weights)
    np.testing.assert_allclose(
        features @ kernel + bias, baseline.predict(images, verbose=0), rtol=1e-4, atol=1e-4
    )


@pytest.mark.parametrize(
    ("arm", "file_name"),
    [("supcon", "unseen_probe.keras"), ("cross_entropy", "unseen_baseline_probe.keras")],
)
def test_linear_probes_on_the_unseen_classes(disjoint_run, arm, file_name):
    config, report = disjoint_run
    _, images, labels = _unseen_test_set()
    probe = _load(config.model_dir, file_name)
    logits = probe.predict(images, verbose=0)
    assert logits.shape == (180, 5)
    accuracy = np.mean(np.argmax(logits, axis=1) == labels - 5)
    result = report["retrieval"]["linear_probe"][arm]
    np.testing.assert_allclose(accuracy, result["test_accuracy"], atol=1e-6)
    assert 0.0 <= result["validation_accuracy"] <= 1.0
    # The probe's encoder is frozen: its weights are those of the arm's saved encoder.
    source = (
        _load(config.model_dir, "encoder.keras")
        if arm == "supcon"
        else classifier_encoder(_load(config.model_dir, "baseline.keras"))
    )
    for weight, expected in zip(classifier_encoder(probe).weights, source.weights, strict=True):
        np.testing.assert_array_equal(np.asarray(weight), np.asarray(expected))


def test_supcon_eval_prints_the_section_of_the_unseen_classes(disjoint_run):
    config, report = disjoint_run
    completed, _ = run_as_user(
        "supcon_tf.cli.evaluate",
        [f"--model_dir={config.model_dir}", "--corruption_samples=0", "--tsne_samples=0"]
        + ["--knn_k=10"],
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    supcon = report["retrieval"]["models"]["supcon"]
    assert "Retrieval on the unseen classes 5, 6, 7, 8, 9 (180 test queries" in completed.stdout
    assert f"supcon: R@1 {supcon['recall_at_1']:.4f}," in completed.stdout
    probe = report["retrieval"]["linear_probe"]["supcon"]["test_accuracy"]
    assert f"supcon test accuracy {probe:.4f}" in completed.stdout
    saved = json.loads(Path(config.model_dir, "report.json").read_text())
    # The same encoders on the same classes: the same section, probes kept.
    assert saved["retrieval"] == json.loads(json.dumps(report["retrieval"]))
    # The classifiers are evaluated on the classes they were trained on.
    assert saved["evaluation"]["classifiers"]["supcon"]["num_samples"] == report["dataset"]["test"]
