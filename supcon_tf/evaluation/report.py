"""Report files of a run folder: `report.json` updates and the human summary `report.md`.

`update_report_json` merges results into `report.json` (keeping the keys it does not
name); `write_report_md` renders a `report.json` content as Markdown tables linking the
plots, and `corruption_table` and `retrieval_lines` render a corruption study and the
retrieval section as such tables. The run
folder may be local or a `tf.io.gfile` URL (`gs://...`); both files are replaced
atomically (see `supcon_tf.files`).

Example:

>>> import os, tempfile
>>> folder = tempfile.mkdtemp()
>>> report = update_report_json(folder, {"supcon": {"test_accuracy": 0.9}})
>>> os.path.basename(write_report_md(report, folder))
'report.md'
"""

import json

from supcon_tf.files import is_file, join, read_text, write_atomically

REPORT_JSON = "report.json"
REPORT_MD = "report.md"


def update_report_json(run_dir, update):
    """Sets the top-level keys of `update` in `run_dir/report.json` and returns the report.

    The file is created if absent; top-level keys that `update` does not mention (e.g.
    the training results) are kept, the ones it names are replaced (so a new evaluation
    leaves no stale numbers). The file is replaced atomically.

    Example:

    >>> import tempfile
    >>> folder = tempfile.mkdtemp()
    >>> _ = update_report_json(folder, {"supcon": {"test_accuracy": 0.9}})
    >>> sorted(update_report_json(folder, {"evaluation": {}}))
    ['evaluation', 'supcon']
    """
    path = join(run_dir, REPORT_JSON)
    report = {}
    if is_file(path):
        try:
            report = json.loads(read_text(path))
        except json.JSONDecodeError as error:
            raise ValueError(f"{path} is not valid JSON ({error}); fix or remove it.") from error
        if not isinstance(report, dict):
            raise ValueError(f"{path} must hold a JSON object, got {type(report).__name__}.")
    report.update(update)
    write_atomically(path, json.dumps(report, indent=2, sort_keys=True) + "\n")
    return report


def _cell(value, digits=4):
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(value) for value in row) + " |" for row in rows]
    return lines


def _images(plots, run_dir):
    """Markdown image links of the `plots` dict whose files exist."""
    return [
        f"![{name.replace('_', ' ')}]({path})"
        for name, path in plots.items()
        if is_file(join(run_dir, path))
    ]


def _format(value, digits=4):
    return "n/a" if value is None else f"{value:.{digits}f}"


def corruption_table(result):
    """A Markdown table of an `evaluate_corruptions` result: one row per model.

    Columns: clean accuracy, accuracy at each severity (mean over corruptions), mean
    corrupted accuracy, clean ECE, ECE at each severity, and mCE / relative mCE when a
    baseline was given.

    Example:

    >>> result = {"severities": [1], "baseline": None, "models": {"m": {
    ...     "clean": {"accuracy": 0.9, "expected_calibration_error": 0.05},
    ...     "per_severity": {"accuracy": [0.8], "expected_calibration_error": [0.1]},
    ...     "mean_accuracy": 0.8}}}
    >>> print(corruption_table(result).splitlines()[2])
    | m | 0.9000 | 0.8000 | 0.8000 | 0.0500 | 0.1000 |
    """
    severities = result["severities"]
    header = ["model", "clean acc."]
    header += [f"acc. s{severity}" for severity in severities] + ["mean corrupted acc."]
    header += ["clean ECE"] + [f"ECE s{severity}" for severity in severities]
    with_baseline = result.get("baseline") is not None
    if with_baseline:
        header += [f"mCE (vs {result['baseline']})", "relative mCE"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, model in result["models"].items():
        row = [name, _format(model["clean"]["accuracy"])]
        row += [_format(value) for value in model["per_severity"]["accuracy"]]
        row += [
            _format(model["mean_accuracy"]),
            _format(model["clean"]["expected_calibration_error"]),
        ]
        row += [_format(value) for value in model["per_severity"]["expected_calibration_error"]]
        if with_baseline:
            row += [
                _format(model.get("mean_corruption_error"), 3),
                _format(model.get("relative_mean_corruption_error"), 3),
            ]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def retrieval_lines(section):
    """Markdown lines of report.json's `"retrieval"` section: a metrics table per encoder
    and, for a class-disjoint run, the linear probes on the unseen classes.

    Example:

    >>> section = {"split": "standard", "classes": ["a", "b"], "protocol": "leave-one-out",
    ...            "num_queries": 4, "ks": [1], "models": {"supcon": {
    ...     "precision_at_1": 1.0, "recall_at_1": 1.0, "r_precision": 0.5, "map_at_r": 0.5,
    ...     "mean_reciprocal_rank": 1.0}}}
    >>> print(retrieval_lines(section)[4])
    | supcon | 1.0000 | 1.0000 | 0.5000 | 0.5000 | 1.0000 |
    """
    ks = section.get("ks", [])
    names = ["precision_at_1", *(f"recall_at_{k}" for k in ks)]
    names += ["r_precision", "map_at_r", "mean_reciprocal_rank"]
    header = ["encoder", "P@1", *(f"R@{k}" for k in ks), "R-precision", "MAP@R", "MRR"]
    rows = [
        [name, *(metrics.get(metric) for metric in names)]
        for name, metrics in section.get("models", {}).items()
    ]
    disjoint = section.get("split") == "class_disjoint"
    classes = ", ".join(section.get("classes") or [])
    title = "on the unseen classes" if disjoint else "on the test set"
    lines = [f"## Retrieval {title}", ""]
    lines += _table(header, rows) + [""]
    notes = [
        f"{name}: {metrics['note']}"
        for name, metrics in section.get("models", {}).items()
        if "note" in metrics
    ]
    lines += [
        f"{section.get('num_queries')} queries ({'unseen classes' if disjoint else 'classes'}"
        f" {classes}): {section.get('protocol')}. supcon: the pretrained encoder "
        "(`encoder.keras`); cross_entropy: the baseline's features, the output of its "
        "encoder as its head reads them.",
        *notes,
        "",
    ]
    probes = section.get("linear_probe")
    if probes:
        lines += ["### Linear probe on the unseen classes", ""]
        rows = [
            (name, probe.get("test_accuracy"), probe.get("validation_accuracy"))
            for name, probe in probes.items()
        ]
        lines += _table(["frozen encoder", "test accuracy", "validation accuracy"], rows)
        lines += [
            "",
            "The classifier stage's head and recipe, trained on the unseen classes' training "
            "images on top of each frozen encoder (never trained on these classes).",
            "",
        ]
    return lines


def write_report_md(report, run_dir):
    """Writes `run_dir/report.md`: a short human summary of `report` linking the PNGs.

    `report` is the content of `report.json`: the training results (`supcon` and
    `cross_entropy` with `test_accuracy`, when present) and the `evaluation` written by
    `evaluate_run` (classifiers, encoders, corruptions). Plots are linked by their paths
    relative to `run_dir`; plots whose file is missing are left out.

    Args:
        report: a dict as stored in `report.json`.
        run_dir: the run folder.

    Returns:
        The path of report.md (a string: `run_dir/report.md`).

    Example:

    >>> import tempfile
    >>> path = write_report_md({"supcon": {"test_accuracy": 0.95}}, tempfile.mkdtemp())
    >>> "0.9500" in open(path).read()
    True
    """
    if not isinstance(report, dict):
        raise ValueError(f"`report` must be a dict (report.json), got {type(report).__name__}.")
    evaluation = report.get("evaluation", {})
    lines = ["# Evaluation report", ""]
    if evaluation.get("dataset"):
        lines += [f"Dataset: `{evaluation['dataset']}`.", ""]

    trained = [
        (name, report[name].get("test_accuracy"))
        for name in ("supcon", "cross_entropy")
        if isinstance(report.get(name), dict) and "test_accuracy" in report[name]
    ]
    if trained:
        lines += ["## Test accuracy at the end of training", ""]
        lines += _table(["model", "test accuracy"], trained) + [""]

    if isinstance(report.get("retrieval"), dict):
        lines += retrieval_lines(report["retrieval"])

    classifiers = evaluation.get("classifiers", {})
    if classifiers:
        num_bins = next(iter(classifiers.values())).get("num_bins", 15)
        lines += ["## Classifiers: accuracy and calibration", ""]
        rows = [
            (
                name,
                result.get("top1_accuracy"),
                result.get("top5_accuracy"),
                result.get("expected_calibration_error"),
                result.get("num_samples"),
            )
            for name, result in classifiers.items()
        ]
        lines += _table(["model", "top-1", "top-5", f"ECE ({num_bins} bins)", "test samples"], rows)
        lines += [""]
        for name, result in classifiers.items():
            images = _images(result.get("plots", {}), run_dir)
            if images:
                lines += [f"### {name}", "", *images, ""]
        class_names = list(next(iter(classifiers.values())).get("per_class_accuracy", {}))
        if class_names:
            lines += ["## Accuracy per class", ""]
            rows = [
                [class_name]
                + [
                    result.get("per_class_accuracy", {}).get(class_name)
                    for result in classifiers.values()
                ]
                for class_name in class_names
            ]
            lines += _table(["class", *classifiers], rows) + [""]

    encoders = evaluation.get("encoders", {})
    if encoders:
        lines += ["## Representation: kNN, alignment, uniformity", ""]
        rows = [
            (
                name,
                result.get("knn_accuracy"),
                result.get("knn_k"),
                result.get("knn_temperature"),
                result.get("alignment"),
                result.get("uniformity"),
                result.get("embedding_dim"),
            )
            for name, result in encoders.items()
        ]
        lines += _table(
            ["encoder", "kNN accuracy", "k", "temperature", "alignment", "uniformity", "dim"],
            rows,
        )
        lines += [
            "",
            "Weighted kNN (cosine, weights exp(s / temperature), Wu et al. 2018) of the test "
            "embeddings against the training embeddings; alignment: mean over classes of the "
            "mean squared distance of same-class pairs; uniformity: log mean exp(-2 d^2) over "
            "all pairs (Wang & Isola 2020; lower is better for both).",
            "",
        ]
        for name, result in encoders.items():
            images = _images(result.get("plots", {}), run_dir)
            if images:
                lines += [f"### {name}", "", *images, ""]

    corruption_result = evaluation.get("corruptions")
    if corruption_result and corruption_result.get("models"):
        lines += ["## Corruption robustness", ""]
        lines += [
            f"{len(corruption_result['corruptions'])} corruptions "
            f"({', '.join(corruption_result['corruptions'])}) at severities "
            f"{corruption_result['severities']}, on {corruption_result['num_samples']} test "
            "images (applied on the fly; not the published CIFAR-10-C files).",
            "",
            corruption_table(corruption_result),
            "",
        ]
        if corruption_result.get("baseline") is not None:
            rows = [
                [name]
                + [
                    corruption_result["models"][model].get("corruption_error", {}).get(name)
                    for model in corruption_result["models"]
                ]
                for name in corruption_result["corruptions"]
            ]
            lines += [f"Corruption error per corruption (vs {corruption_result['baseline']}):", ""]
            lines += _table(["corruption", *corruption_result["models"]], rows) + [""]
        lines += _images(corruption_result.get("plots", {}), run_dir) + [""]

    path = join(run_dir, REPORT_MD)
    write_atomically(path, "\n".join(lines).rstrip() + "\n")
    return path
