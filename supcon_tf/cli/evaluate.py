"""`supcon-eval`: evaluates a finished `supcon-train` run folder.

Usage (also `python -m supcon_tf.cli.evaluate`):

    supcon-eval --model_dir=runs/supcon
    supcon-eval --model_dir=runs/cifar10 --corruptions=gaussian_noise,fog --corruption_samples=500

Loads `classifier.keras` (and `baseline.keras`, `encoder.keras` when present) and the
dataset named in `flags.json` (the same split as training: dataset, data_dir,
validation_fraction, seed). A streamed run (an image folder with `--image_size`,
TFRecord shards, TFDS) is read as it was in training, from its `config.json`: the
same image size and evaluation crop, batch by batch, so its test accuracy is the one
in `report.json`. It then writes top-1/top-5 accuracy, ECE with reliability
diagrams, per-class accuracy with confusion matrices, kNN accuracy, alignment,
uniformity, a t-SNE plot and the corruption study into `report.json` (under
`"evaluation"`; the training results are kept), the retrieval metrics of the SupCon
encoder and the baseline's features among the test images (under `"retrieval"`: of the
unseen classes for a `--split=class_disjoint` run, whose split is read from
`config.json`; its linear-probe results are kept) and a `report.md` that links the PNGs
in `plots/`. `--model_dir` may be a `tf.io.gfile` URL (`gs://bucket/run`).

A mistake prints one line, `supcon-eval: error: <what is wrong>; <what to do>`
(`--traceback` shows the traceback); exit status 2 for a wrong flag, 1 for missing or
unfitting data.
"""

import json

import tensorflow as tf
from absl import flags, logging

from supcon_tf.cli.console import entry_point
from supcon_tf.errors import DataError, UsageError
from supcon_tf.evaluation import CORRUPTIONS, evaluate_run, update_report_json
from supcon_tf.evaluation.retrieval_section import evaluate_retrieval
from supcon_tf.experiment.inputs import DataSource, open_inputs, unseen_inputs
from supcon_tf.files import is_file, join, read_text

# The settings of the training run that define the data split.
_SPLIT_SETTINGS = ("dataset", "data_dir", "validation_fraction", "seed")
# The settings of the training run that say how its data streamed (crops, image size).
_STREAM_SETTINGS = ("image_size", "crop_min_area", "center_crop_fraction", "skip_corrupt_images")
# The settings of the training run that say which classes it trained on.
_CLASS_SETTINGS = ("split", "unseen_classes")

# The `supcon-eval` flags by group, in the order `--help` lists them.
FLAG_GROUPS = {
    "data": ("dataset", "data_dir", "seed"),
    "evaluation": (
        "num_bins",
        "knn_k",
        "knn_temperature",
        "corruptions",
        "corruption_samples",
        "tsne_samples",
        "batch_size",
    ),
    "output": ("model_dir",),
}


def define_flags(flag_values=flags.FLAGS):
    """Defines the `supcon-eval` flags (once) on `flag_values`."""
    if "num_bins" in flag_values:
        return
    flags.DEFINE_string(
        "model_dir",
        None,
        "Run folder written by supcon-train (required); report.json gets an "
        '"evaluation" entry, report.md and plots/ are written beside it.',
        flag_values=flag_values,
    )
    flags.DEFINE_string(
        "dataset",
        None,
        "Dataset name or path (default: the one in model_dir/flags.json).",
        flag_values=flag_values,
    )
    flags.DEFINE_string(
        "data_dir",
        None,
        "Folder with local copies of named datasets (default: from flags.json).",
        flag_values=flag_values,
    )
    flags.DEFINE_integer(
        "num_bins", 15, "Equal-width bins of the ECE.", lower_bound=1, flag_values=flag_values
    )
    flags.DEFINE_integer(
        "knn_k", 200, "Neighbours of the weighted kNN.", lower_bound=1, flag_values=flag_values
    )
    flags.DEFINE_float(
        "knn_temperature",
        0.1,
        "Temperature of the kNN weights exp(similarity / temperature).",
        lower_bound=1e-6,
        flag_values=flag_values,
    )
    flags.DEFINE_list(
        "corruptions",
        None,
        "Comma-separated corruptions (default: the 15 CIFAR-10-C types that apply to the "
        f"images; the extras only when named): {', '.join(CORRUPTIONS)}.",
        flag_values=flag_values,
    )
    flags.DEFINE_integer(
        "corruption_samples",
        1000,
        "Test images (seeded subset) of the corruption study; 0 skips it.",
        lower_bound=0,
        flag_values=flag_values,
    )
    flags.DEFINE_integer(
        "tsne_samples",
        1000,
        "Test embeddings in the t-SNE plot; 0 skips it.",
        lower_bound=0,
        flag_values=flag_values,
    )
    flags.DEFINE_integer(
        "batch_size",
        None,
        "Images per forward pass (default: the run's classifier batch size, else 256).",
        lower_bound=1,
        flag_values=flag_values,
    )
    flags.DEFINE_integer(
        "seed",
        None,
        "Seed of the data split and subsets (default: the run's seed from flags.json).",
        flag_values=flag_values,
    )
    flags.mark_flag_as_required("model_dir", flag_values=flag_values)
    flags.register_validator(
        "corruptions",
        lambda names: names is None or all(name in CORRUPTIONS for name in names),
        message=f"--corruptions must name corruptions from: {', '.join(CORRUPTIONS)}.",
        flag_values=flag_values,
    )


def run_settings(model_dir, dataset=None, data_dir=None, seed=None):
    """The data-split settings of a run: `flags.json` (or `config.json`) plus overrides.

    Args:
        model_dir: the run folder.
        dataset, data_dir, seed: values that replace the stored ones when not None.

    Returns:
        A dict with `dataset`, `data_dir`, `validation_fraction` and `seed`.

    Example:

    >>> import json, tempfile
    >>> folder = tempfile.mkdtemp()
    >>> _ = open(f"{folder}/flags.json", "w").write(json.dumps({"dataset": "digits"}))
    >>> run_settings(folder, seed=3)
    {'dataset': 'digits', 'data_dir': None, 'validation_fraction': 0.1, 'seed': 3}
    """
    if not tf.io.gfile.isdir(model_dir):
        raise FileNotFoundError(
            f"--model_dir={model_dir} does not exist; pass the folder of a supcon-train run"
        )
    records = _stored_records(model_dir)
    stored = records.get("flags.json", records.get("config.json", {}))
    settings = {"dataset": None, "data_dir": None, "validation_fraction": 0.1, "seed": 0}
    settings.update({key: stored[key] for key in _SPLIT_SETTINGS if stored.get(key) is not None})
    overrides = {"dataset": dataset, "data_dir": data_dir, "seed": seed}
    settings.update({key: value for key, value in overrides.items() if value is not None})
    if not settings["dataset"] and not records:
        raise DataError(
            f"{model_dir} holds no supcon-train run (no config.json or flags.json); pass the "
            "--model_dir that supcon-train wrote (runs/supcon by default), or --dataset if "
            "the run's records were removed"
        )
    if not settings["dataset"]:
        raise UsageError(f"{model_dir} has no flags.json naming its dataset; pass --dataset")
    return settings


def _stored_records(model_dir):
    """`{file name: dict}` of the run's `flags.json` and `config.json` (those present)."""
    records = {}
    for name in ("flags.json", "config.json"):
        path = join(model_dir, name)
        if is_file(path):
            try:
                records[name] = json.loads(read_text(path))
            except json.JSONDecodeError as error:
                raise DataError(
                    f"{path} is not valid JSON ({error}); restore it, or pass --dataset and --seed"
                ) from error
    return records


def run_source(model_dir, settings):
    """The run's `DataSource`: `settings` (`run_settings`) plus how it streamed its data.

    The image size, crops and corrupt-image handling come from the run's `config.json`
    (the settings it trained with, presets applied), else `flags.json`, so a streamed
    run is evaluated through the same streamed path and evaluation crop as in training;
    so do the split and unseen classes of a class-disjoint run.

    Example:

    >>> import json, tempfile
    >>> folder = tempfile.mkdtemp()
    >>> _ = open(f"{folder}/config.json", "w").write(json.dumps(
    ...     {"dataset": "shards/", "image_size": 32, "center_crop_fraction": 0.875}))
    >>> source = run_source(folder, run_settings(folder))
    >>> source.dataset, source.image_size, source.center_crop_fraction, source.crop_min_area
    ('shards/', 32, 0.875, None)
    """
    records = _stored_records(model_dir)
    stored = {**records.get("flags.json", {}), **records.get("config.json", {})}
    return DataSource(
        dataset=settings["dataset"],
        data_dir=settings["data_dir"],
        validation_fraction=settings["validation_fraction"],
        seed=settings["seed"],
        **{key: stored[key] for key in _STREAM_SETTINGS if stored.get(key) is not None},
        **_class_settings(stored),
    )


def _class_settings(stored):
    """The stored split and unseen classes, as `DataSource` takes them."""
    settings = {key: stored[key] for key in _CLASS_SETTINGS if stored.get(key) is not None}
    if "unseen_classes" in settings:
        settings["unseen_classes"] = tuple(settings["unseen_classes"])
    return settings


def run_batch_size(model_dir):
    """The batch size the run evaluated its classifier with (`config.json`), or 256."""
    stored = _stored_records(model_dir).get("config.json", {})
    return stored.get("classifier_batch_size") or stored.get("batch_size") or 256


def evaluate_model_dir(model_dir, settings=None, batch_size=None, **options):
    """What `supcon-eval` runs: `evaluate_run` on the run's data, read as in training.

    Args:
        model_dir: the run folder.
        settings: `run_settings(model_dir, ...)` (default: the stored ones).
        batch_size: images per forward pass (default: `run_batch_size(model_dir)`).
        **options: the other `evaluate_run` arguments (`num_bins`, `knn_k`, ...).

    Returns:
        `(evaluation, retrieval)`: the `"evaluation"` and `"retrieval"` dicts written to
        `report.json`.
    """
    settings = settings or run_settings(model_dir)
    source = run_source(model_dir, settings)
    logging.info("Evaluating %s on %s", model_dir, source)
    inputs = open_inputs(source)
    batch_size = batch_size or run_batch_size(model_dir)
    unseen = unseen_inputs(inputs)
    evaluated = unseen or inputs
    stored = _stored_report(model_dir).get("retrieval") or {}
    retrieval = evaluate_retrieval(
        model_dir,
        evaluated if evaluated.streamed else evaluated.splits,
        batch_size=batch_size,
        split=source.split,
        linear_probe=stored.get("linear_probe") if unseen is not None else None,
    )
    # report.md is written by evaluate_run, from report.json with this section.
    update_report_json(model_dir, {"retrieval": retrieval})
    evaluation = evaluate_run(
        model_dir,
        inputs if inputs.streamed else inputs.splits,
        batch_size=batch_size,
        seed=settings["seed"],
        **options,
    )
    return evaluation, retrieval


def _stored_report(model_dir):
    """The run's `report.json`, or `{}` (a run evaluated before it wrote one)."""
    path = join(model_dir, "report.json")
    if not is_file(path):
        return {}
    try:
        return json.loads(read_text(path))
    except json.JSONDecodeError as error:
        raise DataError(f"{path} is not valid JSON ({error}); restore or remove it") from error


def retrieval_summary(section):
    """The lines `supcon-eval` prints for report.json's `"retrieval"` section.

    Example:

    >>> section = {"split": "class_disjoint", "classes": ["5", "6"], "num_queries": 4,
    ...            "ks": [1], "models": {"supcon": {"precision_at_1": 1.0, "recall_at_1": 1.0,
    ...            "r_precision": 0.5, "map_at_r": 0.25, "mean_reciprocal_rank": 1.0}},
    ...            "linear_probe": {"supcon": {"test_accuracy": 0.75}}}
    >>> print("\\n".join(retrieval_summary(section)))
    Retrieval on the unseen classes 5, 6 (4 test queries, leave-one-out):
      supcon: R@1 1.0000, P@1 1.0000, R-precision 0.5000, MAP@R 0.2500, MRR 1.0000
    Linear probe on the unseen classes: supcon test accuracy 0.7500
    """
    disjoint = section.get("split") == "class_disjoint"
    where = "the unseen classes " if disjoint else "the test set of classes "
    lines = [
        f"Retrieval on {where}{', '.join(section.get('classes') or [])} "
        f"({section['num_queries']} test queries, leave-one-out):"
    ]
    for name, metrics in section["models"].items():
        if "note" in metrics:
            lines.append(f"  {name}: {metrics['note']}")
            continue
        recalls = [f"R@{k} {metrics[f'recall_at_{k}']:.4f}" for k in section["ks"]]
        lines.append(
            f"  {name}: {', '.join(recalls)}, P@1 {metrics['precision_at_1']:.4f}, "
            f"R-precision {metrics['r_precision']:.4f}, MAP@R {metrics['map_at_r']:.4f}, "
            f"MRR {metrics['mean_reciprocal_rank']:.4f}"
        )
    probes = section.get("linear_probe")
    if probes:
        accuracies = [
            f"{name} test accuracy {probe['test_accuracy']:.4f}" for name, probe in probes.items()
        ]
        lines.append(f"Linear probe on the unseen classes: {', '.join(accuracies)}")
    return lines


def main(argv):
    flag_values = flags.FLAGS
    settings = run_settings(
        flag_values.model_dir, flag_values.dataset, flag_values.data_dir, flag_values.seed
    )
    result, retrieval = evaluate_model_dir(
        flag_values.model_dir,
        settings,
        num_bins=flag_values.num_bins,
        knn_k=flag_values.knn_k,
        knn_temperature=flag_values.knn_temperature,
        corruptions=flag_values.corruptions,
        corruption_samples=flag_values.corruption_samples,
        tsne_samples=flag_values.tsne_samples,
        batch_size=flag_values.batch_size,
    )
    for name, classifier in result["classifiers"].items():
        print(
            f"{name}: top-1 {classifier['top1_accuracy']:.4f}, "
            f"ECE {classifier['expected_calibration_error']:.4f}"
        )
    for name, encoder in result["encoders"].items():
        print(f"{name} encoder: kNN accuracy {encoder['knn_accuracy']:.4f}")
    for name, model in result.get("corruptions", {}).get("models", {}).items():
        line = f"{name}: mean corrupted accuracy {model['mean_accuracy']:.4f}"
        if model.get("mean_corruption_error") is not None:
            line += f", mCE {model['mean_corruption_error']:.3f}"
        print(line)
    for line in retrieval_summary(retrieval):
        print(line)
    model_dir = flag_values.model_dir
    print(f"Report: {join(model_dir, 'report.json')} and {join(model_dir, 'report.md')}")


run = entry_point(main, "supcon-eval", __doc__, FLAG_GROUPS, define_flags)


if __name__ == "__main__":
    run()
