"""Tests of the evaluation of streamed runs: `supcon-eval` and the end-of-run evaluation.

Oracles: the test accuracy Keras' `evaluate()` measured during training (report.json),
`knn_scores` on embeddings held in RAM (itself checked against a brute-force float64
oracle in test_evaluation), and the positions of generated batches.
"""

import dataclasses
import gc
import json
import re
from pathlib import Path

import keras
import numpy as np
import pytest

from supcon_tf.cli.evaluate import evaluate_model_dir, run_batch_size, run_settings, run_source
from supcon_tf.data import write_shards
from supcon_tf.evaluation import evaluate_run
from supcon_tf.evaluation.knn import knn_scores
from supcon_tf.evaluation.streamed import stream_knn_scores, stream_outputs, stream_subset
from supcon_tf.experiment import preflight, run_experiment
from tests._processes import run_module
from tests.test_preflight import tiny_config, write_folder

# Mixed sizes: the in-RAM path refuses this folder; streamed, every image is cropped.
SIZES = ((12, 12), (20, 14), (9, 17), (16, 30))
CORRUPTIONS = ["contrast", "gaussian_noise"]


def same_accuracy(float64_accuracy, keras_accuracy):
    """Whether an accuracy equals the one Keras measured, which Keras keeps in float32."""
    return np.float32(float64_accuracy) == np.float32(keras_accuracy)


def streamed_run(tmp_path, dataset, **overrides):
    config = tiny_config(
        tmp_path,
        dataset=str(dataset),
        image_size=12,
        batch_size=8,
        baseline=True,
        baseline_epochs=2,
        evaluate=True,
        **overrides,
    )
    return config, run_experiment(config)


@pytest.fixture(scope="module")
def folder_run(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("folder_run")
    images = write_folder(tmp_path / "images", sizes=SIZES, per_class=(24, 15))
    # A central crop of half the shorter side: another protocol would see other pixels.
    return streamed_run(tmp_path, images, center_crop_fraction=0.5)


@pytest.fixture(scope="module")
def shard_run(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("shard_run")
    images = write_folder(tmp_path / "images", sizes=SIZES, per_class=(24, 15))
    write_shards(images, tmp_path / "shards", num_shards=3, progress=False)
    return streamed_run(tmp_path, tmp_path / "shards")


@pytest.mark.parametrize("run_name", ["folder_run", "shard_run"])
def test_end_of_run_evaluation_of_a_streamed_run(run_name, request):
    config, report = request.getfixturevalue(run_name)
    assert report["dataset"]["streamed"] and report["dataset"]["test"] == 30
    evaluation = report["evaluation"]
    for name in ("supcon", "cross_entropy"):
        classifier = evaluation["classifiers"][name]
        # Keras' evaluate() during training, on the same stream: the same number (Keras
        # keeps it in float32, so one image more or less right is 30 million ulps away).
        assert same_accuracy(classifier["top1_accuracy"], report[name]["test_accuracy"])
        assert classifier["num_samples"] == 30
        assert 0.0 <= classifier["expected_calibration_error"] <= 1.0
    encoder = evaluation["encoders"]["supcon"]
    assert 0.0 <= encoder["knn_accuracy"] <= 1.0
    # The kNN bank is the whole training split (k capped at its size).
    assert encoder["knn_k"] == report["dataset"]["train"]
    corruptions = evaluation["corruptions"]
    assert corruptions["num_samples"] == 30
    for model in corruptions["models"].values():
        assert 0.0 <= model["mean_accuracy"] <= 1.0
    assert corruptions["models"]["cross_entropy"]["mean_corruption_error"] == 1.0
    saved = json.loads(Path(config.model_dir, "report.json").read_text())
    assert saved["evaluation"] == json.loads(json.dumps(evaluation))
    # Retrieval among the 30 streamed test images, each a query (leave-one-out).
    retrieval = report["retrieval"]
    assert (retrieval["split"], retrieval["num_queries"]) == ("standard", 30)
    for metrics in retrieval["models"].values():
        assert all(0.0 <= value <= 1.0 for value in metrics.values())
    assert sorted(retrieval["models"]) == ["cross_entropy", "supcon"]
    markdown = Path(config.model_dir, "report.md").read_text()
    assert "## Retrieval on the test set" in markdown
    for link in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", markdown):
        assert Path(config.model_dir, link).is_file()


@pytest.mark.parametrize("run_name", ["folder_run", "shard_run"])
def test_supcon_eval_reproduces_the_report(run_name, request):
    config, report = request.getfixturevalue(run_name)
    source = run_source(config.model_dir, run_settings(config.model_dir))
    assert (source.image_size, source.center_crop_fraction) == (
        config.image_size,
        config.center_crop_fraction,
    )
    assert run_batch_size(config.model_dir) == config.batch_size
    evaluation, retrieval = evaluate_model_dir(
        config.model_dir, corruptions=CORRUPTIONS, corruption_samples=10, tsne_samples=0
    )
    # The same encoders on the same stream: the retrieval section of training, again.
    assert retrieval == report["retrieval"]
    for name in ("supcon", "cross_entropy"):
        accuracy = evaluation["classifiers"][name]["top1_accuracy"]
        assert same_accuracy(accuracy, report[name]["test_accuracy"])
        assert (
            evaluation["classifiers"][name]["expected_calibration_error"]
            == (report["evaluation"]["classifiers"][name]["expected_calibration_error"])
        )
    assert (
        evaluation["encoders"]["supcon"]["knn_accuracy"]
        == (report["evaluation"]["encoders"]["supcon"]["knn_accuracy"])
    )
    assert evaluation["corruptions"]["corruptions"] == CORRUPTIONS


def test_supcon_eval_of_a_streamed_run_needs_its_crop(folder_run):
    """The run's own crop is what reproduces the report: another crop reads other pixels."""
    config, report = folder_run
    source = run_source(config.model_dir, run_settings(config.model_dir))
    from supcon_tf.experiment.inputs import open_inputs

    whole = open_inputs(dataclasses.replace(source, center_crop_fraction=1.0))
    images, _ = next(iter(whole.evaluation_batches("test", 64)))
    own = open_inputs(source)
    cropped, _ = next(iter(own.evaluation_batches("test", 64)))
    assert images.shape == cropped.shape == (30, 12, 12, 3)
    assert not np.allclose(images, cropped)


# ------------------------------------------------------------------------- streamed parts


def test_stream_knn_scores_match_the_in_ram_votes():
    rng = np.random.default_rng(0)
    bank, labels = rng.normal(size=(53, 6)), rng.integers(0, 4, 53)
    queries = rng.normal(size=(9, 6))
    batches = [(bank[start : start + 10], labels[start : start + 10]) for start in range(0, 53, 10)]
    for k in (1, 7, 53, 200):
        scores, size = stream_knn_scores(lambda x: x, batches, queries, 4, k=k, temperature=0.2)
        expected = knn_scores(bank, labels, queries, k=k, temperature=0.2, num_classes=4)
        np.testing.assert_allclose(scores, expected, rtol=1e-12)
        assert size == 53


def test_stream_parts_errors():
    with pytest.raises(ValueError, match="stream of batches is empty"):
        stream_outputs(lambda x: x, [])
    with pytest.raises(ValueError, match="kNN bank is empty"):
        stream_knn_scores(lambda x: x, [], np.ones((2, 3)), 2)
    with pytest.raises(ValueError, match=r"bank label \(5\) is not below 2 classes"):
        stream_knn_scores(lambda x: x, [(np.ones((1, 3)), np.array([5]))], np.ones((2, 3)), 2)
    with pytest.raises(ValueError, match="asked of a stream of 4 items"):
        stream_subset([(np.arange(4), np.arange(4))], [1, 9])


def test_stream_subset_keeps_the_chosen_positions():
    batches = [(np.arange(start, start + 5) * 10, np.arange(start, start + 5)) for start in (0, 5)]
    images, labels = stream_subset(batches, [7, 0, 4])
    assert images.tolist() == [0, 40, 70] and labels.tolist() == [0, 4, 7]


class GeneratedStream:
    """A streamed dataset of `size` random 192x192 RGB test (and training) images, made
    batch by batch: nothing holds the whole split."""

    name, num_classes, class_names = "generated", 2, ("a", "b")

    def __init__(self, size):
        self.num_test = size

    def evaluation_batches(self, split, batch_size):
        def batches():
            rng = np.random.default_rng(0 if split == "test" else 1)
            for start in range(0, self.num_test, batch_size):
                count = min(batch_size, self.num_test - start)
                yield rng.random((count, 192, 192, 3), np.float32), np.arange(count) % 2

        return batches()


def peak_bytes_added(function):
    """Peak resident memory while `function` runs, minus the resident memory before it."""
    gc.collect()
    Path("/proc/self/clear_refs").write_text("5")  # resets the peak (VmHWM) to now
    status = Path("/proc/self/status").read_text()
    before = int(re.search(r"VmRSS:\s+(\d+)", status).group(1))
    function()
    peak = int(re.search(r"VmHWM:\s+(\d+)", Path("/proc/self/status").read_text()).group(1))
    return (peak - before) * 1024


def test_streamed_evaluation_memory_does_not_grow_with_the_dataset(tmp_path):
    model = keras.Sequential(
        [keras.Input((192, 192, 3)), keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(2)]
    )
    model.save(tmp_path / "classifier.keras")
    model.save(tmp_path / "encoder.keras")

    def evaluate(size):
        evaluate_run(
            tmp_path,
            GeneratedStream(size),
            corruptions=["contrast"],
            corruption_samples=20,
            tsne_samples=0,
            batch_size=100,
        )

    evaluate(150)  # one-off allocations (Keras' predict step, plots)
    small = peak_bytes_added(lambda: evaluate(150))
    large = peak_bytes_added(lambda: evaluate(1500))
    images = 1500 * 192 * 192 * 3 * 4  # 663 MB of test images (and as many training ones)
    # Holding either split would add `images`. What does grow: outputs, embeddings and
    # labels (bytes per image), and the uniformity's 1024-row blocks of pairwise
    # distances (about 25 KB per test image, a 17th of an image).
    assert large - small < images / 6, (small, large)


def test_supcon_eval_command_on_a_shard_run(shard_run):
    config, report = shard_run
    completed = run_module(
        "supcon_tf.cli.evaluate",
        [
            f"--model_dir={config.model_dir}",
            "--corruptions=contrast",
            "--corruption_samples=5",
            "--tsne_samples=0",
        ],
    )
    accuracy = report["supcon"]["test_accuracy"]
    assert f"supcon: top-1 {accuracy:.4f}" in completed.stdout, completed.stdout
    saved = json.loads(Path(config.model_dir, "report.json").read_text())
    evaluated = saved["evaluation"]["classifiers"]["cross_entropy"]["top1_accuracy"]
    assert same_accuracy(evaluated, report["cross_entropy"]["test_accuracy"])


def test_a_shard_run_holds_out_validation_and_says_so_without_one(tmp_path):
    images = write_folder(tmp_path / "images", per_class=(24, 4))
    write_shards(images, tmp_path / "shards", num_shards=2, progress=False)
    config = tiny_config(tmp_path, dataset=str(tmp_path / "shards"), image_size=12, batch_size=4)
    checked = preflight(config)
    assert checked.inputs.num_validation > 0
    assert checked.inputs.num_train + checked.inputs.num_validation == 48
    assert not any("has no validation split" in note for note in checked.notes), checked.notes
    assert checked.summary()["dataset"]["validation_source"] == (
        "25% of the train shards' records, held out by a hash of seed 0: "
        f"{checked.inputs.num_validation} records"
    )
    # Without one (--validation_fraction=0), the run says that selection is off.
    none = preflight(dataclasses.replace(config, validation_fraction=0.0))
    assert none.inputs.num_validation == 0
    assert any(
        "has no validation split (--validation_fraction=0)" in note
        and "best-epoch selection and early stopping are off" in note
        for note in none.notes
    ), none.notes
