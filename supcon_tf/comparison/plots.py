"""One PNG per claim of a comparison (see `supcon_tf.comparison.claims`).

* `plot_accuracy`: top-1 and ECE of each method, every seed a dot, the mean a bar;
* `plot_robustness`: accuracy and ECE against severity (mean over corruptions and seeds),
  drawn by `supcon_tf.evaluation.plots.plot_corruption_results`;
* `plot_stability`: box plots of test top-1 over the whole grid and along each axis
  (the paper's figure 4).

Each writes one PNG (any `tf.io.gfile` path) and returns its path.
"""

from supcon_tf.comparison.claims import arm_labels
from supcon_tf.comparison.grid import AXES
from supcon_tf.evaluation.plots import _new_figure, _save_figure, plot_corruption_results

AXIS_TITLES = {
    "optimizer": "optimizer",
    "learning_rate_factor": "learning rate",
    "augment": "augmentation",
}


def _namer(labels):
    labels = labels or arm_labels()
    return lambda method: labels.get(method, method)


def plot_accuracy(claim, path, labels=None):
    """Top-1 and ECE per method: a bar at the mean, a dot per seed."""
    _name = _namer(labels)
    figure = _new_figure(8.0, 3.8)
    for axes, key, label in zip(
        figure.subplots(1, 2),
        ("top1_accuracy", "expected_calibration_error"),
        ("test top-1", "ECE (15 bins)"),
        strict=True,
    ):
        for position, result in enumerate(claim["methods"].values()):
            summary = result[key]
            axes.bar(position, summary["mean"], yerr=summary["std"], alpha=0.5, capsize=4)
            axes.scatter([position] * len(summary["values"]), summary["values"], color="black")
        axes.set_xticks(range(len(claim["methods"])), [_name(m) for m in claim["methods"]])
        axes.set_ylabel(label)
        axes.grid(alpha=0.3, axis="y")
    figure.suptitle(f"Accuracy at each method's recipe ({len(claim['seeds'])} seeds)")
    return _save_figure(figure, path)


def plot_robustness(claim, path, labels=None):
    """Accuracy and ECE against severity, one line per method (means over seeds)."""
    _name = _namer(labels)
    models = {
        _name(method): {
            "clean": {
                "accuracy": result["clean_accuracy"]["mean"],
                "expected_calibration_error": result["clean_expected_calibration_error"]["mean"],
            },
            "per_severity": {
                key: [summary["mean"] for summary in result["per_severity"][key]]
                for key in ("accuracy", "expected_calibration_error")
            },
        }
        for method, result in claim["methods"].items()
    }
    return plot_corruption_results(
        {"severities": claim["severities"], "corruptions": claim["corruptions"], "models": models},
        path,
    )


def _anchor_text(claim):
    anchors = {result["anchor"] for result in claim["methods"].values()}
    return anchors.pop() if len(anchors) == 1 else "each method's recipe"


def plot_stability(claim, path, labels=None):
    """Box plots of test top-1: over the whole grid, then along each axis."""
    _name = _namer(labels)
    methods = list(claim["methods"])
    figure = _new_figure(12.0, 3.8)
    panels = figure.subplots(1, 1 + len(AXES), sharey=True)
    panels[0].boxplot(
        [list(claim["methods"][method]["accuracies"].values()) for method in methods],
        tick_labels=[_name(method) for method in methods],
    )
    panels[0].set_title(f"whole grid ({len(claim['points'])} points)")
    panels[0].set_ylabel("test top-1")
    for axes, axis in zip(panels[1:], AXES, strict=True):
        axes.boxplot(
            [list(claim["methods"][m]["axes"][axis]["accuracies"].values()) for m in methods],
            tick_labels=[_name(method) for method in methods],
        )
        axes.set_title(f"by {AXIS_TITLES[axis]}")
    for axes in panels:
        axes.grid(alpha=0.3, axis="y")
    figure.suptitle(
        "Hyperparameter stability: test top-1 over the grid, and along each axis with the "
        f"other two at {_anchor_text(claim)}"
    )
    return _save_figure(figure, path)
