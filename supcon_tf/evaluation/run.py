"""Whole-model evaluation: one classifier, one encoder, or every model of a run folder.

`evaluate_classifier` and `evaluate_encoder` combine the measures of the other modules
(accuracy, calibration, kNN, alignment and uniformity) and their plots into JSON-ready
dicts; `evaluate_run` does so for the models a `supcon-train` run saved, adds the
corruption study and writes `report.json` and `report.md` (what `supcon-eval` runs).
The retrieval section of a run (report.json "retrieval") is
`supcon_tf.evaluation.retrieval_section`'s.
"""

import math
import time

import keras
import numpy as np
import tensorflow as tf

from supcon_tf.errors import DataError
from supcon_tf.evaluation._checks import _check_labels, _check_scores
from supcon_tf.evaluation.calibration import expected_calibration_error
from supcon_tf.evaluation.corruptions import evaluate_corruptions
from supcon_tf.evaluation.knn import knn_accuracy
from supcon_tf.evaluation.metrics import (
    per_class_accuracy,
    predict,
    predict_probabilities,
    softmax,
    top_k_accuracy,
)
from supcon_tf.evaluation.plots import (
    plot_confusion_matrix,
    plot_corruption_results,
    plot_reliability_diagram,
    plot_tsne,
)
from supcon_tf.evaluation.report import update_report_json, write_report_md
from supcon_tf.evaluation.representation import alignment_uniformity
from supcon_tf.evaluation.streamed import stream_knn_scores, stream_outputs, stream_subset
from supcon_tf.files import is_file, join

PLOTS_FOLDER = "plots"
CLASSIFIER_FILES = {"supcon": "classifier.keras", "cross_entropy": "baseline.keras"}
ENCODER_FILES = {"supcon": "encoder.keras"}
# Recall@k of the retrieval section (those up to the gallery size).


def _plot_path(run_dir, file_name):
    """`(path, link)`: where a plot is written in `run_dir`, and its link relative to it."""
    link = f"{PLOTS_FOLDER}/{file_name}"
    return join(run_dir, PLOTS_FOLDER, file_name), link


def _class_names(class_names, num_classes):
    if class_names is None:
        return [str(index) for index in range(num_classes)]
    class_names = [str(name) for name in class_names]
    if len(class_names) != num_classes:
        raise ValueError(
            f"{len(class_names)} `class_names` given for a {num_classes}-class problem."
        )
    return class_names


def evaluate_classifier(
    model,
    images,
    labels,
    run_dir=None,
    name="classifier",
    class_names=None,
    num_bins=15,
    batch_size=256,
    from_logits=True,
):
    """Top-1/top-5 accuracy, ECE, per-class accuracy and plots of one classifier.

    Args:
        model: a `keras.Model` (or callable) mapping images to `[N, C]` logits.
        images: `[N, ...]` test images.
        labels: `[N]` integer labels.
        run_dir: folder for the PNGs (`plots/<name>_reliability.png`,
            `plots/<name>_confusion.png`); `None` writes no plot.
        name: the model's name in file names and titles.
        class_names: names of the `C` classes (default: indices).
        num_bins: number of ECE bins.
        batch_size: images per forward pass.
        from_logits: whether the model outputs logits (see `predict_probabilities`).

    Returns:
        A JSON-ready dict: `top1_accuracy`, `top5_accuracy` (only when C > 5),
        `expected_calibration_error`, `num_bins`, `num_samples`, `per_class_accuracy`
        (class name -> accuracy or None when the class is absent) and `plots` (paths
        relative to `run_dir`).

    Example:

    >>> import keras, numpy as np
    >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(3)])
    >>> result = evaluate_classifier(model, np.zeros((4, 2), "float32"), [0, 1, 2, 0])
    >>> result["top1_accuracy"]
    0.5
    """
    probabilities = predict_probabilities(model, images, batch_size, from_logits)
    return _classifier_result(probabilities, labels, run_dir, name, class_names, num_bins)


def _classifier_result(probabilities, labels, run_dir, name, class_names, num_bins):
    """`evaluate_classifier`'s dict from the class probabilities `[N, C]` of the test set."""
    labels, probabilities = _check_scores(labels, probabilities)
    num_classes = probabilities.shape[1]
    names = _class_names(class_names, num_classes)
    predictions = probabilities.argmax(axis=1)
    result = {
        "top1_accuracy": top_k_accuracy(labels, probabilities, k=1),
        "expected_calibration_error": expected_calibration_error(labels, probabilities, num_bins),
        "num_bins": num_bins,
        "num_samples": int(labels.shape[0]),
    }
    if num_classes > 5:
        result["top5_accuracy"] = top_k_accuracy(labels, probabilities, k=5)
    accuracies = per_class_accuracy(labels, predictions, num_classes)
    result["per_class_accuracy"] = {
        class_name: None if math.isnan(value) else float(value)
        for class_name, value in zip(names, accuracies, strict=True)
    }
    result["plots"] = {}
    if run_dir is not None:
        reliability, reliability_link = _plot_path(run_dir, f"{name}_reliability.png")
        plot_reliability_diagram(labels, probabilities, reliability, num_bins, title=name)
        confusion, confusion_link = _plot_path(run_dir, f"{name}_confusion.png")
        plot_confusion_matrix(labels, predictions, confusion, names, title=f"{name}")
        result["plots"] = {
            "reliability_diagram": reliability_link,
            "confusion_matrix": confusion_link,
        }
    return result


def evaluate_encoder(
    encoder,
    train_images,
    train_labels,
    test_images,
    test_labels,
    run_dir=None,
    name="encoder",
    class_names=None,
    k=200,
    temperature=0.1,
    batch_size=256,
    tsne_samples=1000,
    seed=0,
):
    """Representation quality of an encoder without training a classifier.

    Computes the weighted kNN accuracy of the test set against the training set
    (`knn_accuracy`, exponential weights of Wu et al. 2018), the alignment and
    uniformity of the test embeddings (`alignment_uniformity`) and a t-SNE plot.

    Args:
        encoder: a `keras.Model` (or callable) mapping images to embeddings `[N, D]`.
        train_images, train_labels: the labelled kNN bank.
        test_images, test_labels: the evaluated set.
        run_dir: folder for `plots/<name>_tsne.png`; `None` writes no plot.
        name: the encoder's name in file names.
        class_names: legend names of the classes.
        k: number of kNN neighbours.
        temperature: kNN weight temperature.
        batch_size: images per forward pass.
        tsne_samples: at most this many test embeddings are mapped by t-SNE (0 skips it).
        seed: seed of the t-SNE subset and map.

    Returns:
        A JSON-ready dict: `knn_accuracy`, `knn_k`, `knn_temperature`, `knn_weighting`,
        `alignment`, `per_class_alignment` (class name -> float), `uniformity`,
        `embedding_dim` and `plots`.

    Example:

    >>> import keras, numpy as np
    >>> images = np.random.default_rng(0).random((10, 4)).astype("float32")
    >>> labels = np.arange(10) % 2
    >>> encoder = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    >>> result = evaluate_encoder(encoder, images, labels, images, labels, k=1)
    >>> result["knn_accuracy"]
    1.0
    """
    train_embeddings = predict(encoder, train_images, batch_size)
    test_embeddings = predict(encoder, test_images, batch_size)
    _check_embedding_shape(train_embeddings)
    test_labels = _check_labels(test_labels, "test_labels")
    accuracy = knn_accuracy(
        train_embeddings, train_labels, test_embeddings, test_labels, k=k, temperature=temperature
    )
    largest = int(max(_check_labels(train_labels).max(), test_labels.max()))
    knn = {"accuracy": accuracy, "k": int(min(k, train_embeddings.shape[0]))}
    return _encoder_result(
        knn,
        test_embeddings,
        test_labels,
        largest,
        run_dir,
        name,
        class_names,
        temperature=temperature,
        tsne_samples=tsne_samples,
        seed=seed,
    )


def _check_embedding_shape(embeddings):
    if embeddings.ndim != 2:
        raise ValueError(
            f"An encoder must output [N, dim] embeddings, got shape {embeddings.shape}."
        )


def _encoder_result(
    knn,
    test_embeddings,
    test_labels,
    largest,
    run_dir,
    name,
    class_names,
    temperature,
    tsne_samples,
    seed,
):
    """`evaluate_encoder`'s dict from the kNN result (`{"accuracy", "k"}`), the test
    embeddings and labels, and the largest label of either set."""
    geometry = alignment_uniformity(test_embeddings, test_labels)
    names = None
    if class_names is not None:
        names = [str(name) for name in class_names]
        if largest >= len(names):
            raise ValueError(
                f"A label ({largest}) has no name: {len(names)} `class_names` were given."
            )
    result = {
        "knn_accuracy": knn["accuracy"],
        "knn_k": knn["k"],
        "knn_temperature": float(temperature),
        "knn_weighting": "exponential",
        "alignment": geometry["alignment"],
        "per_class_alignment": {
            (names[label] if names else str(label)): value
            for label, value in geometry["per_class_alignment"].items()
        },
        "uniformity": geometry["uniformity"],
        "embedding_dim": int(test_embeddings.shape[1]),
        "plots": {},
    }
    if run_dir is not None and tsne_samples:
        tsne, tsne_link = _plot_path(run_dir, f"{name}_tsne.png")
        plot_tsne(
            test_embeddings,
            test_labels,
            tsne,
            class_names=names,
            max_samples=tsne_samples,
            seed=seed,
        )
        result["plots"]["tsne"] = tsne_link
    return result


def _load_model(path):
    """A run's saved Keras model (never unsafe deserialisation), or a one-line `DataError`."""
    try:
        return keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as error:  # a damaged zip, unknown layers, ...
        reason = " ".join(str(error).split())
        raise DataError(
            f"Could not load the Keras model {path}: {reason}; train the run again"
        ) from error


def evaluate_run(
    model_dir,
    splits,
    num_bins=15,
    knn_k=200,
    knn_temperature=0.1,
    corruptions=None,
    corruption_samples=1000,
    tsne_samples=1000,
    batch_size=256,
    seed=0,
):
    """Evaluates the models of a `supcon-train` run folder and writes report.json/report.md.

    Loads `classifier.keras` (the linear classifier on the SupCon encoder, named
    `supcon`), and when present `baseline.keras` (the cross-entropy baseline,
    `cross_entropy`) and `encoder.keras` (the SupCon encoder). It then measures

    * for each classifier on the test set: top-1/top-5 accuracy, ECE with a reliability
      diagram, per-class accuracy with a confusion matrix (`evaluate_classifier`);
    * for the encoder: weighted kNN accuracy (training set as the bank), alignment,
      uniformity and a t-SNE plot (`evaluate_encoder`);
    * for all classifiers: accuracy and ECE under corruptions x severities on a seeded
      subset of the test set, with the corruption errors relative to `cross_entropy`
      when it exists (`supcon_tf.evaluation.corruptions.evaluate_corruptions`).

    The results are merged into `model_dir/report.json` under `"evaluation"` (other keys
    are kept), plots go to `model_dir/plots/`, and `model_dir/report.md` links them.

    Args:
        model_dir: the run folder.
        splits: the dataset: in RAM, an object with `x_train`, `y_train`, `x_test`,
            `y_test` and optionally `class_names` and `name` (e.g.
            `supcon_tf.data.DatasetSplits`); or streamed, an object with
            `evaluation_batches(split, batch_size)` (`(images, labels)` batches of
            `"train"` and `"test"`, as the run evaluated them), `num_test`,
            `num_classes` and optionally `class_names` and `name` (e.g.
            `supcon_tf.experiment.inputs.StreamInputs`). A streamed dataset is read
            batch by batch: outputs and embeddings are accumulated, the kNN bank
            streams by (`supcon_tf.evaluation.streamed`), and only the corruption
            subset's images are held.
        num_bins: ECE bins.
        knn_k: kNN neighbours.
        knn_temperature: kNN weight temperature.
        corruptions: corruption names (default: the CIFAR-10-C ones that apply to
            the images; `EXTRA_CORRUPTIONS` only when named).
        corruption_samples: test images used for the corruption study (0 skips it).
        tsne_samples: test embeddings in the t-SNE plot (0 skips it).
        batch_size: images per forward pass.
        seed: seed of the subsets, corruptions and t-SNE.

    Returns:
        The `"evaluation"` dict written to report.json.

    Example (a run folder made by hand):

    >>> import tempfile, types, keras, numpy as np
    >>> folder = tempfile.mkdtemp()
    >>> rng = np.random.default_rng(0)
    >>> images, labels = rng.random((12, 4, 4, 1)).astype("float32"), np.arange(12) % 2
    >>> model = keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Flatten(),
    ...                           keras.layers.Dense(2)])
    >>> model.save(f"{folder}/classifier.keras")
    >>> splits = types.SimpleNamespace(x_train=images, y_train=labels, x_test=images,
    ...                                y_test=labels)
    >>> result = evaluate_run(folder, splits, corruption_samples=0, tsne_samples=0)
    >>> sorted(result["classifiers"])
    ['supcon']
    """
    if not tf.io.gfile.isdir(model_dir):
        raise FileNotFoundError(f"Run folder {model_dir} does not exist.")
    classifier_path = join(model_dir, CLASSIFIER_FILES["supcon"])
    if not is_file(classifier_path):
        raise FileNotFoundError(
            f"{classifier_path} not found: `model_dir` must be a finished supcon-train run "
            "folder holding classifier.keras."
        )
    data = _StreamedData(splits, batch_size) if is_streamed(splits) else _ArrayData(splits)
    class_names = getattr(splits, "class_names", None)
    timings = {}
    result = {"dataset": getattr(splits, "name", None), "classifiers": {}, "encoders": {}}

    classifiers = {}
    for name, file_name in CLASSIFIER_FILES.items():
        if is_file(join(model_dir, file_name)):
            classifiers[name] = _load_model(join(model_dir, file_name))
    for name, model in classifiers.items():
        start = time.perf_counter()
        result["classifiers"][name] = _classifier_result(
            data.test_probabilities(model, batch_size),
            data.test_labels(),
            model_dir,
            name,
            class_names,
            num_bins,
        )
        timings[f"classifier_{name}"] = time.perf_counter() - start

    for name, file_name in ENCODER_FILES.items():
        if not is_file(join(model_dir, file_name)):
            continue
        start = time.perf_counter()
        knn, test_embeddings, largest = data.knn(
            _load_model(join(model_dir, file_name)), knn_k, knn_temperature, batch_size
        )
        result["encoders"][name] = _encoder_result(
            knn,
            test_embeddings,
            data.test_labels(),
            largest,
            model_dir,
            name,
            class_names,
            knn_temperature,
            tsne_samples,
            seed,
        )
        timings[f"encoder_{name}"] = time.perf_counter() - start

    if corruption_samples:
        start = time.perf_counter()
        rng = np.random.default_rng(seed)
        count = min(int(corruption_samples), data.num_test)
        chosen = np.sort(rng.choice(data.num_test, count, replace=False))
        images, labels = data.test_subset(chosen)
        corruption_result = evaluate_corruptions(
            classifiers,
            images,
            labels,
            corruptions=corruptions,
            baseline="cross_entropy" if "cross_entropy" in classifiers else None,
            num_bins=num_bins,
            batch_size=batch_size,
            seed=seed,
        )
        plot, plot_link = _plot_path(model_dir, "corruptions.png")
        plot_corruption_results(corruption_result, plot)
        corruption_result["plots"] = {"corruption_robustness": plot_link}
        result["corruptions"] = corruption_result
        timings["corruptions"] = time.perf_counter() - start

    result["timings"] = timings
    report = update_report_json(model_dir, {"evaluation": result})
    write_report_md(report, model_dir)
    return result


def is_streamed(splits):
    """Whether `splits` is a streamed dataset (it has `evaluation_batches`), not arrays."""
    return callable(getattr(splits, "evaluation_batches", None))


class _TestData:
    """The test set of a dataset held in RAM (`x_test`, `y_test`)."""

    _attributes = ("x_test", "y_test")

    def __init__(self, splits):
        for attribute in self._attributes:
            if not hasattr(splits, attribute):
                raise ValueError(
                    f"`splits` has no `{attribute}`; pass a supcon_tf.data.DatasetSplits."
                )
        self.splits = splits
        self.x_test = np.asarray(splits.x_test)
        self.y_test = _check_labels(splits.y_test, "y_test")
        self.num_test = self.x_test.shape[0]

    def test_labels(self):
        return self.y_test

    def test_embeddings(self, encoder, batch_size):
        return predict(encoder, self.x_test, batch_size)


class _ArrayData(_TestData):
    """The test and training sets of a dataset held in RAM (`x_train`, `y_train`, ...)."""

    _attributes = ("x_train", "y_train", "x_test", "y_test")

    def test_probabilities(self, model, batch_size):
        return predict_probabilities(model, self.x_test, batch_size)

    def knn(self, encoder, k, temperature, batch_size):
        """`({"accuracy", "k"}, test embeddings, largest label)` of the kNN on `x_train`."""
        train_embeddings = predict(encoder, np.asarray(self.splits.x_train), batch_size)
        test_embeddings = predict(encoder, self.x_test, batch_size)
        _check_embedding_shape(train_embeddings)
        accuracy = knn_accuracy(
            train_embeddings,
            self.splits.y_train,
            test_embeddings,
            self.y_test,
            k=k,
            temperature=temperature,
        )
        largest = int(max(_check_labels(self.splits.y_train).max(), self.y_test.max()))
        knn = {"accuracy": accuracy, "k": int(min(k, train_embeddings.shape[0]))}
        return knn, test_embeddings, largest

    def test_subset(self, positions):
        return self.x_test[positions], self.y_test[positions]


class _StreamedData:
    """A streamed dataset, read batch by batch (`evaluation_batches(split, batch_size)`).

    The test set streams once for its labels and once per model; the training set
    streams through the encoder for the kNN bank. No split's images are held in RAM:
    only outputs, embeddings of the test set, and the capped corruption subset.
    """

    def __init__(self, inputs, batch_size):
        self.inputs = inputs
        self.batch_size = batch_size
        self.num_test = int(inputs.num_test)
        self._labels = None

    def _batches(self, split, batch_size=None):
        batches = self.inputs.evaluation_batches(split, batch_size or self.batch_size)
        if batches is None:
            raise ValueError(f"The {split} split of {self.inputs.name} is empty.")
        return batches

    def test_labels(self):
        if self._labels is None:
            self._labels = np.concatenate(
                [np.asarray(labels).reshape(-1) for _, labels in self._batches("test")]
            ).astype(np.int64)
        return self._labels

    def test_embeddings(self, encoder, batch_size):
        embeddings, labels = stream_outputs(encoder, self._batches("test", batch_size))
        self._labels = labels
        return embeddings

    def test_probabilities(self, model, batch_size):
        logits, labels = stream_outputs(model, self._batches("test", batch_size))
        self._labels = labels
        if logits.ndim != 2:
            raise ValueError(
                f"A classifier must output [N, num_classes] scores, got shape {logits.shape}."
            )
        return softmax(logits)

    def knn(self, encoder, k, temperature, batch_size):
        """`({"accuracy", "k"}, test embeddings, largest label)`; the bank streams by."""
        test_embeddings, labels = stream_outputs(encoder, self._batches("test", batch_size))
        _check_embedding_shape(test_embeddings)
        num_classes = int(self.inputs.num_classes)
        scores, bank_size = stream_knn_scores(
            encoder,
            self._batches("train", batch_size),
            test_embeddings,
            num_classes,
            k=k,
            temperature=temperature,
        )
        knn = {
            "accuracy": float(np.mean(scores.argmax(axis=1) == labels)),
            "k": int(min(k, bank_size)),
        }
        return knn, test_embeddings, num_classes - 1

    def test_subset(self, positions):
        return stream_subset(self._batches("test"), positions)
