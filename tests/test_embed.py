"""Tests of `supcon-embed` (`supcon_tf.serving.embed`): a dataset's embeddings on disk.

Oracle: the run's Keras encoder on the images its evaluation read (the in-RAM arrays,
the streamed evaluation pipeline), L2-normalised in float64 NumPy.
"""

import json

import numpy as np
import pytest

from supcon_tf.data import write_shards
from supcon_tf.errors import DataError, UsageError
from supcon_tf.serving.embed import embed_run
from tests import test_export
from tests._processes import run_as_user
from tests.test_export import (
    TOLERANCE,
    evaluated_files,
    evaluation_images,
    keras_model,
    normalized,
)

# The runs of test_export (trained once per module).
ram_run = test_export.ram_run
streamed_run = test_export.streamed_run


def written(output):
    embeddings = np.load(output / "embeddings.npy")
    labels = np.load(output / "labels.npy")
    names = json.loads((output / "names.json").read_text())
    summary = json.loads((output / "embeddings.json").read_text())
    assert embeddings.dtype == np.float32 and labels.dtype == np.int64
    assert np.abs(np.linalg.norm(embeddings, axis=1) - 1).max() < TOLERANCE
    assert len(embeddings) == len(labels) == len(names) == summary["count"]
    return embeddings, labels, names, summary


def expected_embeddings(run):
    model_dir, source = run
    images, labels = evaluation_images(source)
    encoder = keras_model(model_dir, "encoder.keras")
    return normalized(encoder.predict(images, verbose=0)), labels


def test_image_folder_of_a_streamed_run(streamed_run, tmp_path):
    model_dir, source = streamed_run
    summary = embed_run(model_dir, source, None, "test", tmp_path, batch_size=5, progress=False)
    embeddings, labels, names, saved = written(tmp_path)
    expected, expected_labels = expected_embeddings(streamed_run)
    assert np.abs(embeddings - expected).max() < TOLERANCE
    assert labels.tolist() == expected_labels.tolist()
    assert names == evaluated_files(model_dir)
    assert saved == summary and saved["class_names"] == ["a", "b"]
    assert saved["split"] == "test" and saved["data"] == source.dataset


def test_shards_are_named_by_record_index(streamed_run, tmp_path):
    """The same test images written as shards (in another order) give the same embeddings."""
    model_dir, source = streamed_run
    write_shards(source.dataset, tmp_path / "shards", num_shards=2, progress=False)
    embed_run(model_dir, source, str(tmp_path / "shards"), "test", tmp_path / "out", progress=False)
    embeddings, labels, names, _ = written(tmp_path / "out")
    expected, expected_labels = expected_embeddings(streamed_run)
    assert names == [str(index) for index in range(len(expected))]
    # Each shard row is one folder row (a permutation), with its label.
    match = np.argmax(embeddings @ expected.T, axis=1)
    assert sorted(match.tolist()) == list(range(len(expected)))
    assert np.abs(embeddings - expected[match]).max() < TOLERANCE
    assert labels.tolist() == expected_labels[match].tolist()


def test_arrays_of_a_ram_run(ram_run, tmp_path):
    model_dir, source = ram_run
    embed_run(model_dir, source, None, "test", tmp_path, batch_size=7, progress=False)
    embeddings, labels, names, summary = written(tmp_path)
    expected, expected_labels = expected_embeddings(ram_run)
    assert np.abs(embeddings - expected).max() < TOLERANCE
    assert labels.tolist() == expected_labels.tolist()
    assert names == [str(index) for index in range(16)] and summary["dimension"] == 16


class TestRefusals:
    def test_arrays_for_a_streamed_run(self, streamed_run, ram_run, tmp_path):
        model_dir, source = streamed_run
        with pytest.raises(DataError, match="is loaded into RAM, but the run streamed"):
            embed_run(model_dir, source, ram_run[1].dataset, "test", tmp_path, progress=False)
        assert not any(tmp_path.iterdir())

    def test_images_of_another_size_for_a_ram_run(self, ram_run, streamed_run, tmp_path):
        model_dir, source = ram_run
        folder = str(tmp_path / "images")
        from tests.test_preflight import write_folder

        write_folder(folder, sizes=((5, 5),), per_class=(2, 2))
        with pytest.raises(DataError, match=r"has images of shape \(5, 5, 3\), the run trained"):
            embed_run(model_dir, source, folder, "test", tmp_path / "out", progress=False)

    def test_shards_for_a_ram_run(self, ram_run, streamed_run, tmp_path):
        write_shards(streamed_run[1].dataset, tmp_path / "shards", num_shards=1, progress=False)
        model_dir, source = ram_run
        with pytest.raises(DataError, match="is streamed .TFRecord shards or TFDS., but the run"):
            embed_run(model_dir, source, str(tmp_path / "shards"), "test", tmp_path / "out")

    def test_split(self, ram_run, tmp_path):
        model_dir, source = ram_run
        with pytest.raises(UsageError, match="--split=validation is not a split; use one of"):
            embed_run(model_dir, source, None, "validation", tmp_path)


class TestCommand:
    def test_help(self):
        result, _ = run_as_user("supcon_tf.cli.embed", ["--help"])
        assert result.returncode == 0
        for flag in ("--model_dir:", "--data:", "--split:", "--output:", "--[no]overwrite:"):
            assert flag in result.stdout

    def test_run_without_a_terminal(self, ram_run, tmp_path):
        """Standard output is a pipe: one summary line, no progress bar."""
        model_dir, _ = ram_run
        arguments = [f"--model_dir={model_dir}", f"--output={tmp_path}", "--split=train"]
        result, _ = run_as_user("supcon_tf.cli.embed", arguments)
        assert result.returncode == 0, result.stderr[-2000:]
        lines = result.stdout.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("48 embeddings of dimension 16")
        assert written(tmp_path)[3]["split"] == "train"

    def test_output_in_use_is_one_line(self, ram_run, tmp_path):
        model_dir, _ = ram_run
        (tmp_path / "kept.txt").write_text("x")
        result, _ = run_as_user(
            "supcon_tf.cli.embed", [f"--model_dir={model_dir}", f"--output={tmp_path}"]
        )
        assert result.returncode == 2
        assert result.stderr.strip().splitlines() == [
            f"supcon-embed: error: --output={tmp_path} is not empty (1 entries); pass "
            "--overwrite to replace what it holds, or a new folder"
        ]
