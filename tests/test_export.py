"""Tests of `supcon-export` (`supcon_tf.serving`): a run as one SavedModel, loaded anywhere.

Oracles: the run's own Keras models on the images its evaluation read (the in-RAM
arrays; the streamed evaluation pipeline, which crops and resizes each decoded file),
with the normalisation, softmax and brute-force top-k in float64 NumPy; and, for the
round trip, the SavedModel loaded in a fresh process that cannot import `supcon_tf`
or Keras.
"""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from supcon_tf.cli.evaluate import run_settings, run_source
from supcon_tf.data import make_evaluation_stream, open_streaming_dataset
from supcon_tf.errors import DataError, UsageError
from supcon_tf.experiment import run_experiment
from supcon_tf.experiment.inputs import open_inputs
from supcon_tf.serving.export import export_run
from supcon_tf.serving.preprocessing import preprocess
from supcon_tf.serving.runs import check_finished_run, serving_module
from tests._processes import run_as_user
from tests.test_preflight import tiny_config, write_folder

ROOT = Path(__file__).resolve().parents[1]
# Mixed sizes: a streamed run crops and resizes every one.
SIZES = ((12, 12), (20, 14), (9, 17), (16, 30))
TOLERANCE = 1e-5

# Loads an export where neither supcon_tf nor Keras can be imported, runs the signature
# named before `__` in each input's key, and saves every output.
FRESH_PROCESS = textwrap.dedent(
    """
    import sys
    sys.modules["supcon_tf"] = None
    sys.modules["keras"] = None
    import numpy as np
    import tensorflow as tf

    path, inputs, outputs = sys.argv[1:]
    model = tf.saved_model.load(path)
    results = {}
    with np.load(inputs) as arrays:
        for key in arrays.files:
            signature = model.signatures[key.split("__")[0]]
            for name, value in signature(images=tf.constant(arrays[key])).items():
                value = value.numpy()
                results[f"{key}__{name}"] = value.astype("S") if value.dtype == object else value
    np.savez(outputs, **results)
    """
)


def train(tmp_path, **overrides):
    """A tiny finished run; returns its folder and its `DataSource` (as supcon-eval reads it)."""
    config = tiny_config(tmp_path, **overrides)
    run_experiment(config)
    return config.model_dir, run_source(config.model_dir, run_settings(config.model_dir))


@pytest.fixture(scope="module")
def ram_run(tmp_path_factory):
    """The default path: a dataset in RAM (6x6 greyscale arrays), no crop."""
    return train(tmp_path_factory.mktemp("ram_run"))


@pytest.fixture(scope="module")
def streamed_run(tmp_path_factory):
    """An image folder of mixed sizes streamed at 12 px with a central crop of 0.5."""
    tmp_path = tmp_path_factory.mktemp("streamed_run")
    images = write_folder(tmp_path / "images", sizes=SIZES, per_class=(16, 6))
    return train(
        tmp_path, dataset=str(images), image_size=12, batch_size=8, center_crop_fraction=0.5
    )


def normalized(features):
    features = np.asarray(features, np.float64)
    return features / np.linalg.norm(features, axis=1, keepdims=True)


def softmax(logits):
    logits = np.asarray(logits, np.float64)
    exponentials = np.exp(logits - logits.max(axis=1, keepdims=True))
    return exponentials / exponentials.sum(axis=1, keepdims=True)


def keras_model(model_dir, name):
    return keras.saving.load_model(f"{model_dir}/{name}", compile=False)


def evaluation_images(source):
    """`(images, labels)` of the test split as the run's evaluation read them."""
    inputs = open_inputs(source)
    if not inputs.streamed:
        return inputs.splits.x_test, inputs.splits.y_test
    batches = list(inputs.evaluation_batches("test", 8))
    return (
        np.concatenate([images.numpy() for images, _ in batches]),
        np.concatenate([labels.numpy() for _, labels in batches]),
    )


def evaluated_files(model_dir):
    """The streamed run's test files, in the order its evaluation read them."""
    source = run_source(model_dir, run_settings(model_dir))
    return list(open_inputs(source).splits.test.files)


def serve(function, images):
    """`function`'s outputs as NumPy arrays, for a list of images of any sizes (one call each)."""
    outputs = [function(image[None]) for image in images]
    return {key: np.concatenate([output[key].numpy() for output in outputs]) for key in outputs[0]}


# ----------------------------------------------------------------------------- the graph


class TestServingMatchesTheRun:
    """The exported functions equal the run's models on the run's evaluation images."""

    def test_ram_run_float_and_uint8_images(self, ram_run):
        model_dir, source = ram_run
        module = serving_module(model_dir, source, check_finished_run(model_dir))
        images, _ = evaluation_images(source)
        expected = normalized(keras_model(model_dir, "encoder.keras").predict(images, verbose=0))
        served = module.embed(tf.constant(images))["embeddings"].numpy()
        assert np.abs(served - expected).max() < TOLERANCE
        pixels = np.round(images * 255).astype(np.uint8)
        expected = normalized(
            keras_model(model_dir, "encoder.keras").predict(pixels / np.float32(255), verbose=0)
        )
        served = module.embed(tf.constant(pixels))["embeddings"].numpy()
        assert np.abs(served - expected).max() < TOLERANCE
        logits = keras_model(model_dir, "classifier.keras").predict(images, verbose=0)
        classified = module.classify(tf.constant(images))
        assert np.abs(classified["probabilities"].numpy() - softmax(logits)).max() < TOLERANCE
        assert classified["labels"].numpy().tolist() == logits.argmax(axis=1).tolist()
        assert [name.decode() for name in classified["class_names"].numpy()] == [
            str(label) for label in logits.argmax(axis=1)
        ]

    def test_streamed_run_crops_and_resizes_raw_files_as_its_evaluation(self, streamed_run):
        """Each test file, decoded at its own size (9x17 ... 16x30), through the graph's
        central crop and resize, gives the embedding of the run's evaluation stream."""
        model_dir, source = streamed_run
        module = serving_module(model_dir, source, check_finished_run(model_dir))
        images, labels = evaluation_images(source)
        expected = normalized(keras_model(model_dir, "encoder.keras").predict(images, verbose=0))
        raw = [np.asarray(Image.open(path).convert("RGB")) for path in evaluated_files(model_dir)]
        assert len({image.shape for image in raw}) > 1  # sizes differ: no shortcut
        served = serve(module.embed, raw)["embeddings"]
        assert np.abs(served - expected).max() < TOLERANCE
        greyscale = np.asarray(Image.open(evaluated_files(model_dir)[0]).convert("L"))[..., None]
        one = module.embed(greyscale[None])["embeddings"].numpy()
        rgb = np.repeat(greyscale, 3, axis=-1)
        assert np.abs(one - module.embed(rgb[None])["embeddings"].numpy()).max() == 0.0
        logits = keras_model(model_dir, "classifier.keras").predict(images, verbose=0)
        classified = serve(module.classify, raw)
        assert np.abs(classified["probabilities"] - softmax(logits)).max() < TOLERANCE
        names = [name.decode() for name in classified["class_names"]]
        assert names == [("a", "b")[label] for label in logits.argmax(axis=1)]
        assert set(labels.tolist()) == {0, 1}


def test_a_class_disjoint_run_names_its_seen_classes(tmp_path):
    model_dir, source = train(
        tmp_path, dataset="digits", split="class_disjoint", unseen_classes=(0, 9), batch_size=32
    )
    module = serving_module(model_dir, source, check_finished_run(model_dir))
    assert [name.decode() for name in module.class_names.numpy()] == list("12345678")
    classified = module.classify(np.zeros((2, 8, 8, 1), np.uint8))
    assert classified["probabilities"].shape == (2, 8)


class TestServingErrors:
    """Bad images fail in the graph with a message naming the problem."""

    @pytest.fixture(scope="class")
    def module(self, streamed_run):
        model_dir, source = streamed_run
        return serving_module(model_dir, source, check_finished_run(model_dir))

    def test_rank(self, module):
        with pytest.raises(ValueError, match=r"must be a batch \[N, H, W, C\] \(rank 4\)"):
            module.embed(np.zeros((12, 12, 3), np.uint8))

    def test_channels(self, module):
        with pytest.raises(tf.errors.InvalidArgumentError, match="must have 3 channel"):
            module.embed(np.zeros((1, 12, 12, 2), np.uint8))

    def test_float_range(self, module):
        with pytest.raises(tf.errors.InvalidArgumentError, match=r"in \[0, 1\]; divide"):
            module.embed(np.full((1, 12, 12, 3), 2.0, np.float32))

    def test_dtype(self, module):
        with pytest.raises(TypeError, match="uint8 or float"):
            module.embed(np.zeros((1, 12, 12, 3), np.int32))


# ----------------------------------------------------------------------------- the round trip


def round_trip(model_dir, source, output, gallery, query_images, tflite):
    """Exports, then runs every signature in a fresh process."""
    record = export_run(model_dir, source, output, gallery=gallery, tflite=tflite, top_k=3)
    module_path = Path(output, "saved_model")
    inputs = {}
    for index, images in enumerate(query_images):
        float_images = (images / np.float32(255)).astype(np.float32)
        for name in ("embed", "classify", "search"):
            inputs[f"{name}__{index}"] = images
            inputs[f"{name}_float__{index}__f"] = float_images
    np.savez(Path(output).parent / "inputs.npz", **inputs)
    completed = subprocess.run(
        [
            sys.executable,
            "-c",
            FRESH_PROCESS,
            str(module_path),
            str(Path(output).parent / "inputs.npz"),
            str(Path(output).parent / "outputs.npz"),
        ],
        cwd=Path(output).parent,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    fresh = dict(np.load(Path(output).parent / "outputs.npz"))
    module = serving_module(model_dir, source, check_finished_run(model_dir))
    return record, module, inputs, fresh


def check_round_trip(record, module_path, inputs, fresh):
    """The fresh process's outputs equal this process's (the reloaded SavedModel)."""
    here = tf.saved_model.load(str(module_path))
    largest = 0.0
    for key, images in inputs.items():
        outputs = here.signatures[key.split("__")[0]](images=tf.constant(images))
        for name, value in outputs.items():
            value, other = value.numpy(), fresh[f"{key}__{name}"]
            if value.dtype.kind == "f":
                largest = max(largest, float(np.abs(value - other).max()))
            else:
                assert value.astype("S").tolist() == other.astype("S").tolist()
    assert largest < TOLERANCE
    if "tflite" in record["agreement"]:
        assert record["agreement"]["tflite"]["embeddings"] < TOLERANCE
    assert all(
        value is True or value < TOLERANCE for value in record["agreement"]["saved_model"].values()
    )
    return largest


def random_images(seed, *shapes):
    """uint8 images of each shape `[N, H, W, C]`, drawn in turn from one seeded generator."""
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, shape, np.uint8) for shape in shapes]


def test_round_trip_of_a_ram_run(ram_run, tmp_path):
    model_dir, source = ram_run
    queries = random_images(1, (3, 6, 6, 1), (2, 9, 13, 1))
    output = tmp_path / "export"
    record, module, inputs, fresh = round_trip(
        model_dir, source, output, source.dataset, queries, tflite=True
    )
    check_round_trip(record, output / "saved_model", inputs, fresh)
    assert "tflite" in record["agreement"]
    # The in-process module (Keras models, before saving) gives the same embeddings.
    expected = module.embed(queries[1])["embeddings"].numpy()
    assert np.abs(fresh["embed__1__embeddings"] - expected).max() < TOLERANCE
    saved = json.loads((output / "export.json").read_text())
    assert saved["input"] == {**saved["input"], "height": 6, "width": 6, "channels": 1}
    assert saved["input"]["center_crop_fraction"] is None
    assert saved["class_names"] == ["0", "1"] and saved["source_run"] == model_dir
    assert (output / "encoder.tflite").stat().st_size > 0


def test_round_trip_of_a_streamed_run_and_its_search(streamed_run, tmp_path):
    model_dir, source = streamed_run
    queries = random_images(2, (2, 12, 12, 3), (3, 20, 31, 3))
    output = tmp_path / "export"
    record, module, inputs, fresh = round_trip(
        model_dir, source, output, source.dataset, queries, tflite=False
    )
    check_round_trip(record, output / "saved_model", inputs, fresh)
    assert record["search"]["size"] == 32 and record["search"]["top_k"] == 3
    assert record["input"]["center_crop_fraction"] == 0.5 and record["class_names"] == ["a", "b"]
    # Search oracle: the gallery (every training file, read by the evaluation pipeline)
    # through the Keras encoder, float64 scores, the top 3 by score (ties: lower index).
    listing = open_streaming_dataset(source.dataset, validation_fraction=0.0)
    encoder = keras_model(model_dir, "encoder.keras")
    batches = make_evaluation_stream(listing, "train", 8, 12, source.center_crop_fraction)
    gallery = normalized(
        np.concatenate([encoder.predict(images, verbose=0) for images, _ in batches])
    )
    # The queries' crop is the graph's own, checked against the stream above.
    query = normalized(encoder.predict(preprocess(queries[1], module.spec), verbose=0))
    scores = query @ gallery.T
    order = np.argsort(-scores, axis=1, kind="stable")[:, :3]
    assert fresh["search__1__indices"].tolist() == order.tolist()
    best = np.take_along_axis(scores, order, axis=1)
    assert np.abs(fresh["search__1__scores"] - best).max() < TOLERANCE
    assert fresh["search__1__labels"].tolist() == np.asarray(listing.train.labels)[order].tolist()
    ids = [[name.decode() for name in row] for row in fresh["search__1__ids"]]
    assert ids == [[listing.train.files[index] for index in row] for row in order]


# ----------------------------------------------------------------------------- refusals


class TestRefusals:
    """What is not a finished run, or an output in use, is refused before any work."""

    def test_missing_folder(self, tmp_path):
        with pytest.raises(DataError, match="does not exist; pass the folder of a finished"):
            check_finished_run(tmp_path / "missing")

    def test_not_a_run(self, tmp_path):
        (tmp_path / "notes.txt").write_text("x")
        with pytest.raises(DataError, match=r"is not a supcon-train run folder \(it has no"):
            check_finished_run(tmp_path)

    def test_unfinished_run(self, ram_run, tmp_path):
        model_dir, _ = ram_run
        (tmp_path / "config.json").write_text(Path(model_dir, "config.json").read_text())
        with pytest.raises(DataError, match="unfinished run .no report.json.; finish it"):
            check_finished_run(tmp_path)

    def test_run_without_its_classifier(self, ram_run, tmp_path):
        model_dir, _ = ram_run
        for name in ("config.json", "report.json", "encoder.keras"):
            (tmp_path / name).write_bytes(Path(model_dir, name).read_bytes())
        with pytest.raises(DataError, match="has no classifier.keras"):
            check_finished_run(tmp_path)

    def test_output_in_use_then_overwritten(self, ram_run, tmp_path):
        model_dir, source = ram_run
        (tmp_path / "kept.txt").write_text("x")
        with pytest.raises(UsageError, match=r"is not empty \(1 entries\); pass --overwrite"):
            export_run(model_dir, source, tmp_path)
        assert (tmp_path / "kept.txt").exists()
        record = export_run(model_dir, source, tmp_path, overwrite=True)
        assert sorted(path.name for path in tmp_path.iterdir()) == ["export.json", "saved_model"]
        assert record["search"] is None and "search" not in record["signatures"]

    def test_top_k(self, ram_run, tmp_path):
        model_dir, source = ram_run
        with pytest.raises(UsageError, match="`top_k` must be an integer >= 1, got 0"):
            export_run(model_dir, source, tmp_path / "out", gallery=source.dataset, top_k=0)


class TestCommand:
    """`supcon-export` as a user runs it: help, one-line errors."""

    def test_help(self):
        result, _ = run_as_user("supcon_tf.cli.export", ["--help"])
        assert result.returncode == 0
        for flag in (
            "--model_dir:",
            "--output:",
            "--gallery:",
            "--[no]tflite:",
            "--[no]overwrite:",
        ):
            assert flag in result.stdout

    def test_not_a_run_is_one_line(self, tmp_path):
        (tmp_path / "notes.txt").write_text("x")
        arguments = [f"--model_dir={tmp_path}", f"--output={tmp_path / 'out'}"]
        result, _ = run_as_user("supcon_tf.cli.export", arguments)
        assert result.returncode == 1
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("supcon-export: error: --model_dir=")
        assert "is not a supcon-train run folder" in lines[0]

    def test_missing_output_flag_is_a_usage_error(self, tmp_path):
        result, _ = run_as_user("supcon_tf.cli.export", [f"--model_dir={tmp_path}"])
        assert result.returncode == 2
        assert (
            result.stderr.strip()
            == "supcon-export: error: --output is required; see supcon-export --help"
        )
