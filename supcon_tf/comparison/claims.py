"""The three claims of a comparison, computed from its runs: accuracy, robustness, stability.

Pure NumPy over JSON-ready records, so each number can be checked by hand:

* `select_recipes`: each method's recipe, the grid point with the best mean
  validation accuracy (the test split plays no part in the choice);
* `accuracy_claim`: top-1 and ECE of each method at its recipe, mean and sample
  standard deviation over seeds, and the paired SupCon - cross-entropy difference;
* `robustness_claim`: accuracy and ECE per severity (mean over the corruptions, then
  over seeds), mCE and relative mCE against the cross-entropy model of the same seed
  (which scores 1 by definition);
* `stability_claim`: the spread of each method's test top-1 over the whole grid (std,
  max - min) and along each axis with the other two at the star's centre, or at the
  method's recipe on a full grid (the paper's figure 4).

A grid record is `{"method", "point", "seed", "validation_accuracy", "test_accuracy"}`;
an evaluation is the `"evaluation"` dict `supcon_tf.evaluation.evaluate_run` returns for
a folder holding both methods' classifiers.

Example:

>>> records = [
...     {"method": "supcon", "point": "a", "seed": 0, "validation_accuracy": 0.6,
...      "test_accuracy": 0.61},
...     {"method": "supcon", "point": "b", "seed": 0, "validation_accuracy": 0.7,
...      "test_accuracy": 0.69}]
>>> select_recipes(records)
{'supcon': 'b'}
"""

import numpy as np

from supcon_tf.comparison.grid import AXES

METHOD_NAMES = {"supcon": "SupCon", "simclr": "SimCLR", "cross_entropy": "Cross-entropy"}


def _summary(values):
    """Mean, sample std (0 for one value), min, max and the values themselves."""
    values = np.asarray(values, dtype=np.float64)
    return {
        "mean": float(values.mean()),
        "std": float(values.std(ddof=1)) if values.size > 1 else 0.0,
        "min": float(values.min()),
        "max": float(values.max()),
        "values": values.tolist(),
    }


def _methods(records):
    return list(dict.fromkeys(record["method"] for record in records))


def grid_accuracies(records, method, key="test_accuracy"):
    """`{point: mean of key over the grid seeds}` of `method`, in grid order."""
    points = {}
    for record in records:
        if record["method"] == method:
            points.setdefault(record["point"], []).append(record[key])
    return {point: float(np.mean(values)) for point, values in points.items()}


def select_recipes(records):
    """`{method: point}`: each method's grid point with the best mean validation accuracy.

    Ties go to the first point in grid order.
    """
    selected = {}
    for method in _methods(records):
        validation = grid_accuracies(records, method, "validation_accuracy")
        selected[method] = max(validation, key=validation.get)
    return selected


def accuracy_claim(evaluations, selected):
    """Top-1 and ECE of each method at its selected recipe over seeds.

    Args:
        evaluations: `{seed: evaluation}` (see the module docstring).
        selected: `select_recipes`' `{method: point}`.

    Returns:
        `{"seeds", "methods": {method: {"recipe", "top1_accuracy", "expected_calibration_error"}},
        "difference": summary of the per-seed top-1 differences}` (each statistic a
        `{"mean", "std", "min", "max", "values"}`); the difference is the first method
        minus the second (SupCon - cross-entropy).
    """
    seeds = sorted(evaluations)
    methods = {}
    for method, point in selected.items():
        classifiers = [evaluations[seed]["classifiers"][method] for seed in seeds]
        methods[method] = {
            "recipe": point,
            "top1_accuracy": _summary([c["top1_accuracy"] for c in classifiers]),
            "expected_calibration_error": _summary(
                [c["expected_calibration_error"] for c in classifiers]
            ),
        }
    first, second = list(selected)[:2]
    difference = np.subtract(
        methods[first]["top1_accuracy"]["values"], methods[second]["top1_accuracy"]["values"]
    )
    return {"seeds": seeds, "methods": methods, "difference": _summary(difference)}


def robustness_claim(evaluations):
    """Accuracy and ECE per severity, mCE and relative mCE of each method over seeds.

    Args:
        evaluations: `{seed: evaluation}`, each with a `"corruptions"` result of
            `evaluate_corruptions` against the cross-entropy model.

    Returns:
        `{"seeds", "corruptions", "severities", "num_samples", "methods": {method: {
        "clean_accuracy", "clean_expected_calibration_error", "mean_corrupted_accuracy",
        "mean_corruption_error", "relative_mean_corruption_error", "per_severity":
        {"accuracy", "expected_calibration_error"} (lists of summaries, one per
        severity)}}}`.
    """
    seeds = sorted(evaluations)
    results = [evaluations[seed]["corruptions"] for seed in seeds]
    methods = {}
    for method in results[0]["models"]:
        models = [result["models"][method] for result in results]
        per_severity = {
            key: [
                _summary(values)
                for values in np.array([model["per_severity"][key] for model in models]).T
            ]
            for key in ("accuracy", "expected_calibration_error")
        }
        methods[method] = {
            "clean_accuracy": _summary([model["clean"]["accuracy"] for model in models]),
            "clean_expected_calibration_error": _summary(
                [model["clean"]["expected_calibration_error"] for model in models]
            ),
            "mean_corrupted_accuracy": _summary([model["mean_accuracy"] for model in models]),
            "mean_corruption_error": _summary([model["mean_corruption_error"] for model in models]),
            "relative_mean_corruption_error": _summary(
                [model["relative_mean_corruption_error"] for model in models]
            ),
            "per_severity": per_severity,
        }
    return {
        "seeds": seeds,
        "corruptions": results[0]["corruptions"],
        "severities": results[0]["severities"],
        "num_samples": results[0]["num_samples"],
        "baseline": results[0]["baseline"],
        "methods": methods,
    }


def stability_claim(records, points, selected, anchor=None):
    """The spread of each method's test top-1 over the grid and along each axis.

    Args:
        records: the grid records.
        points: the grid's `GridPoint`s (`StabilityGrid.points()`).
        selected: `select_recipes`' `{method: point name}`.
        anchor: the point name the axes vary around (a star grid's centre); default:
            each method's recipe.

    Returns:
        `{"points": [names], "methods": {method: {"accuracies": {point: top-1},
        "spread": summary plus "range" (max - min), "axes": {axis: {value: top-1},
        "std", "range"}}}}` where an axis varies one hyperparameter with the other two
        at the anchor.
    """
    by_name = {point.name: point for point in points}
    methods = {}
    for method, recipe_name in selected.items():
        accuracies = grid_accuracies(records, method)
        spread = _summary(list(accuracies.values()))
        recipe = by_name[anchor or recipe_name]
        axes = {}
        for axis in AXES:
            line = {
                str(point.axis_value(axis)): accuracies[point.name]
                for point in points
                if point.name in accuracies
                and all(
                    point.axis_value(other) == recipe.axis_value(other)
                    for other in AXES
                    if other != axis
                )
            }
            values = np.array(list(line.values()), dtype=np.float64)
            axes[axis] = {
                "accuracies": line,
                "std": float(values.std(ddof=1)) if values.size > 1 else 0.0,
                "range": float(values.max() - values.min()),
            }
        methods[method] = {
            "recipe": recipe_name,
            "anchor": recipe.name,
            "accuracies": accuracies,
            "spread": {**spread, "range": spread["max"] - spread["min"]},
            "axes": axes,
        }
    return {"points": [point.name for point in points], "methods": methods}


def _plus_minus(summary, digits=4):
    return f"{summary['mean']:.{digits}f} ± {summary['std']:.{digits}f}"


def arm_labels(pretraining_method="supcon"):
    """`{arm: label}`: the contrastive arm is named after its pretraining method."""
    return {"supcon": METHOD_NAMES[pretraining_method], "cross_entropy": "Cross-entropy"}


def markdown_tables(claims):
    """The three claims as markdown tables (what `supcon-compare` prints and saves)."""
    labels = claims.get("labels") or arm_labels()

    def _name(method):
        return labels.get(method, method)

    accuracy, robustness, stability = (
        claims["accuracy"],
        claims["robustness"],
        claims["stability"],
    )
    seeds = len(accuracy["seeds"])
    lines = [
        f"### Accuracy (test split, {seeds} seeds, mean ± std)",
        "",
        "| method | recipe (chosen on validation) | top-1 | ECE |",
        "|---|---|---|---|",
    ]
    for method, result in accuracy["methods"].items():
        lines.append(
            f"| {_name(method)} | {result['recipe']} | {_plus_minus(result['top1_accuracy'])} "
            f"| {_plus_minus(result['expected_calibration_error'])} |"
        )
    lines += [
        "",
        f"Paired top-1 difference (first - second): {_plus_minus(accuracy['difference'])}.",
        "",
        f"### Corruption robustness ({len(robustness['corruptions'])} corruptions x "
        f"{len(robustness['severities'])} severities, {robustness['num_samples']} test images, "
        f"{seeds} seeds)",
        "",
        "| method | clean top-1 | corrupted top-1 | "
        + " | ".join(f"top-1 s{s}" for s in robustness["severities"])
        + f" | mCE (vs {_name(robustness['baseline'])}) | relative mCE |",
        "|---|---|---|" + "---|" * len(robustness["severities"]) + "---|---|",
    ]
    for method, result in robustness["methods"].items():
        severities = " | ".join(
            f"{summary['mean']:.3f}" for summary in result["per_severity"]["accuracy"]
        )
        lines.append(
            f"| {_name(method)} | {_plus_minus(result['clean_accuracy'], 3)} "
            f"| {_plus_minus(result['mean_corrupted_accuracy'], 3)} | {severities} "
            f"| {_plus_minus(result['mean_corruption_error'], 3)} "
            f"| {_plus_minus(result['relative_mean_corruption_error'], 3)} |"
        )
    lines += [
        "",
        "ECE per severity (mean over corruptions and seeds): "
        + "; ".join(
            f"{_name(method)} "
            + ", ".join(
                f"{summary['mean']:.3f}"
                for summary in result["per_severity"]["expected_calibration_error"]
            )
            for method, result in robustness["methods"].items()
        )
        + ".",
        "",
        f"### Hyperparameter stability (test top-1 over {len(stability['points'])} grid points)",
        "",
        "| method | mean | std | max - min | min | max | std by optimizer | "
        "std by learning rate | std by augmentation |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for method, result in stability["methods"].items():
        spread, axes = result["spread"], result["axes"]
        lines.append(
            f"| {_name(method)} | {spread['mean']:.4f} | {spread['std']:.4f} "
            f"| {spread['range']:.4f} | {spread['min']:.4f} | {spread['max']:.4f} "
            + " ".join(f"| {axes[axis]['std']:.4f}" for axis in AXES)
            + " |"
        )
    return "\n".join(lines) + "\n"
