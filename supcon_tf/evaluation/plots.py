"""PNG plots of evaluation results: reliability diagram, confusion matrix, t-SNE, corruptions.

Every function writes one PNG file (creating its folder) and returns its path (a
string). The path may be local or a `tf.io.gfile` URL (`gs://...`): the PNG is
rendered in memory and written through `tf.io.gfile` (`supcon_tf.files`). The figures
are matplotlib `Figure` objects not attached to pyplot, so no display and no global
state are needed; matplotlib and scikit-learn are imported only when a plot is drawn.

Example:

>>> import tempfile
>>> path = plot_confusion_matrix([0, 1, 1], [0, 0, 1], f"{tempfile.mkdtemp()}/c.png")
>>> path.endswith("c.png")
True
"""

import io
import os

import numpy as np

from supcon_tf.evaluation._checks import (
    _check_labels,
    _check_positive_int,
    _check_positive_number,
)
from supcon_tf.evaluation.calibration import calibration_bins, expected_calibration_error
from supcon_tf.evaluation.metrics import confusion_matrix
from supcon_tf.evaluation.representation import _normalized_with_labels
from supcon_tf.files import write_atomically


def _new_figure(width=5.0, height=4.5):
    """A matplotlib Figure not attached to pyplot (no global state, no display needed)."""
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def _save_figure(figure, path):
    """Renders `figure` as PNG bytes and writes them to `path` (any `tf.io.gfile` path)."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    write_atomically(path, buffer.getvalue())
    return os.fspath(path)


def plot_reliability_diagram(labels, probabilities, path, num_bins=15, title=None):
    """Writes a reliability diagram (accuracy vs confidence per bin) as a PNG.

    Bars show the accuracy of each equal-width confidence bin of `calibration_bins`, the
    diagonal is perfect calibration, and a hatched red bar spans the gap from the bin's
    accuracy to its mean confidence; the title carries the ECE.

    Args:
        labels: integer class indices `[N]`.
        probabilities: `[N, C]` class probabilities.
        path: the PNG file to write (folders are created).
        num_bins: number of equal-width bins.
        title: optional title prefix (e.g. the model name).

    Returns:
        The path written (a string).

    Example:

    >>> import tempfile, numpy as np
    >>> folder = tempfile.mkdtemp()
    >>> path = plot_reliability_diagram([0, 1], [[0.8, 0.2], [0.4, 0.6]], f"{folder}/r.png")
    >>> open(path, "rb").read(4) == b"\\x89PNG"
    True
    """
    bins = calibration_bins(labels, probabilities, num_bins)
    ece = expected_calibration_error(labels, probabilities, num_bins)
    edges = bins["edges"]
    centers = (edges[:-1] + edges[1:]) / 2
    width = edges[1] - edges[0]
    figure = _new_figure()
    axes = figure.subplots()
    nonempty = bins["counts"] > 0
    axes.bar(
        centers[nonempty],
        bins["accuracy"][nonempty],
        width=width,
        edgecolor="black",
        color="tab:blue",
        label="accuracy",
    )
    gaps = bins["confidence"] - bins["accuracy"]
    axes.bar(
        centers[nonempty],
        gaps[nonempty],
        bottom=bins["accuracy"][nonempty],
        width=width,
        edgecolor="tab:red",
        facecolor="none",
        hatch="//",
        label="gap: accuracy to mean confidence",
    )
    axes.plot([0, 1], [0, 1], "--", color="gray", label="perfect calibration")
    axes.set_xlim(0, 1)
    axes.set_ylim(0, 1)
    axes.set_xlabel("confidence")
    axes.set_ylabel("accuracy")
    prefix = f"{title}: " if title else ""
    axes.set_title(f"{prefix}ECE = {ece:.4f} ({num_bins} bins)")
    axes.legend(loc="upper left")
    return _save_figure(figure, path)


def plot_confusion_matrix(labels, predictions, path, class_names=None, title=None):
    """Writes the row-normalised confusion matrix (true class x predicted class) as a PNG.

    Args:
        labels: integer class indices `[N]`.
        predictions: predicted class indices `[N]`.
        path: the PNG file to write.
        class_names: names of the classes (default: their indices); their number sets the
            matrix size (default: the largest index + 1).
        title: optional title.

    Returns:
        The path written (a string).

    Example:

    >>> import os, tempfile
    >>> path = plot_confusion_matrix([0, 1, 1], [0, 0, 1], f"{tempfile.mkdtemp()}/c.png")
    >>> os.path.getsize(path) > 1000
    True
    """
    labels = _check_labels(labels)
    predictions = _check_labels(predictions, name="predictions")
    if class_names is None:
        num_classes = int(max(labels.max(initial=0), predictions.max(initial=0))) + 1
        class_names = [str(index) for index in range(num_classes)]
    class_names = [str(name) for name in class_names]
    matrix = confusion_matrix(labels, predictions, len(class_names)).astype(np.float64)
    normalised = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    size = min(4.0 + 0.35 * len(class_names), 16.0)
    figure = _new_figure(size + 1.0, size)
    axes = figure.subplots()
    image = axes.imshow(normalised, cmap="Blues", vmin=0.0, vmax=1.0)
    figure.colorbar(image, ax=axes, label="fraction of the true class")
    ticks = np.arange(len(class_names))
    if len(class_names) <= 30:
        axes.set_xticks(ticks, class_names, rotation=90)
        axes.set_yticks(ticks, class_names)
    if len(class_names) <= 15:
        for row in range(len(class_names)):
            for column in range(len(class_names)):
                value = normalised[row, column]
                axes.text(
                    column,
                    row,
                    f"{value:.2f}",
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if value > 0.5 else "black",
                )
    axes.set_xlabel("predicted class")
    axes.set_ylabel("true class")
    axes.set_title(title or "confusion matrix")
    return _save_figure(figure, path)


def plot_tsne(
    embeddings, labels, path, class_names=None, perplexity=30.0, max_samples=1000, seed=0
):
    """Writes a 2-D t-SNE map (scikit-learn) of L2-normalised embeddings coloured by class.

    Args:
        embeddings: `[N, D]` embeddings (normalised here, so the map reflects cosine
            geometry).
        labels: `[N]` integer labels (the colours).
        path: the PNG file to write.
        class_names: legend names of the classes (default: their indices).
        perplexity: t-SNE perplexity; lowered to `(n - 1) / 3` for small `n`.
        max_samples: a seeded random subset of at most this many points is mapped
            (t-SNE is quadratic in time).
        seed: seed of the subset and of t-SNE.

    Returns:
        The path written (a string).

    Example:

    >>> import os, tempfile, numpy as np
    >>> points = np.random.default_rng(0).normal(size=(20, 5))
    >>> path = plot_tsne(points, [0, 1] * 10, f"{tempfile.mkdtemp()}/t.png", perplexity=5)
    >>> os.path.getsize(path) > 1000
    True
    """
    from sklearn.manifold import TSNE
    from threadpoolctl import threadpool_limits

    embeddings, labels = _normalized_with_labels(embeddings, labels)
    if embeddings.shape[0] < 4:
        raise ValueError(f"t-SNE needs at least 4 embeddings, got {embeddings.shape[0]}.")
    max_samples = _check_positive_int(max_samples, "max_samples")
    _check_positive_number(perplexity, "perplexity")
    rng = np.random.default_rng(seed)
    if embeddings.shape[0] > max_samples:
        chosen = np.sort(rng.choice(embeddings.shape[0], max_samples, replace=False))
        embeddings, labels = embeddings[chosen], labels[chosen]
    perplexity = min(float(perplexity), (embeddings.shape[0] - 1) / 3)
    # One OpenMP thread: scikit-learn's t-SNE threads spin-wait badly on a busy machine
    # (measured 12x slower with 2 threads than with 1 on the shared 2-core box).
    with threadpool_limits(limits=1, user_api="openmp"):
        points = TSNE(
            n_components=2, perplexity=perplexity, init="pca", random_state=seed
        ).fit_transform(embeddings)
    num_classes = int(labels.max()) + 1
    if class_names is None:
        class_names = [str(index) for index in range(num_classes)]
    figure = _new_figure(6.5, 5.5)
    axes = figure.subplots()
    colormap = "tab10" if num_classes <= 10 else "tab20" if num_classes <= 20 else "turbo"
    scatter = axes.scatter(
        points[:, 0], points[:, 1], c=labels, cmap=colormap, s=6, vmin=0, vmax=num_classes - 1
    )
    if num_classes <= 20:
        handles = [
            axes.scatter([], [], color=scatter.cmap(scatter.norm(label)), s=12)
            for label in range(num_classes)
        ]
        axes.legend(handles, [str(name) for name in class_names], fontsize=7, loc="best")
    axes.set_xticks([])
    axes.set_yticks([])
    axes.set_title(f"t-SNE of {embeddings.shape[0]} test embeddings")
    return _save_figure(figure, path)


def plot_corruption_results(result, path):
    """Line plots of accuracy and ECE against severity (0 = clean), one line per model.

    Each point averages the corruptions of an `evaluate_corruptions` result.

    Args:
        result: the dict returned by `evaluate_corruptions`.
        path: the PNG file to write.

    Returns:
        The path written (a string).

    Example:

    >>> import os, tempfile
    >>> result = {"severities": [1, 2], "corruptions": ["fog"], "models": {"m": {
    ...     "clean": {"accuracy": 0.9, "expected_calibration_error": 0.05},
    ...     "per_severity": {"accuracy": [0.8, 0.6],
    ...                      "expected_calibration_error": [0.1, 0.2]}}}}
    >>> os.path.getsize(plot_corruption_results(result, f"{tempfile.mkdtemp()}/c.png")) > 1000
    True
    """
    severities = [0, *result["severities"]]
    figure = _new_figure(9.0, 4.0)
    accuracy_axes, calibration_axes = figure.subplots(1, 2)
    for name, model in result["models"].items():
        accuracy = [model["clean"]["accuracy"], *model["per_severity"]["accuracy"]]
        calibration = [
            model["clean"]["expected_calibration_error"],
            *model["per_severity"]["expected_calibration_error"],
        ]
        accuracy_axes.plot(severities, accuracy, marker="o", label=name)
        calibration_axes.plot(severities, calibration, marker="o", label=name)
    for axes, label in ((accuracy_axes, "accuracy"), (calibration_axes, "ECE")):
        axes.set_xticks(severities, ["clean", *map(str, result["severities"])])
        axes.set_xlabel("severity")
        axes.set_ylabel(f"{label} (mean over corruptions)")
        axes.grid(alpha=0.3)
        axes.legend()
    accuracy_axes.set_ylim(0, 1)
    figure.suptitle(f"Corruption robustness ({len(result['corruptions'])} corruptions)")
    return _save_figure(figure, path)
