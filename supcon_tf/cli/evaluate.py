"""`supcon-eval`: evaluates a finished `supcon-train` run folder.

Usage (also `python -m supcon_tf.cli.evaluate`):

    supcon-eval --model_dir=runs/supcon
    supcon-eval --model_dir=runs/cifar10 --corruptions=gaussian_noise,fog --corruption_samples=500

Loads `classifier.keras` (and `baseline.keras`, `encoder.keras` when present) and the
dataset named in `flags.json` (the same split as training: dataset, data_dir,
validation_fraction, seed), then writes top-1/top-5 accuracy, ECE with reliability
diagrams, per-class accuracy with confusion matrices, kNN accuracy, alignment,
uniformity, a t-SNE plot and the corruption study into `report.json` (under
`"evaluation"`; the training results are kept) and a `report.md` that links the PNGs
in `plots/`. `--model_dir` may be a `tf.io.gfile` URL (`gs://bucket/run`).

A mistake prints one line, `supcon-eval: error: <what is wrong>; <what to do>`
(`--traceback` shows the traceback); exit status 2 for a wrong flag, 1 for missing or
unfitting data.
"""

import json

import tensorflow as tf
from absl import flags, logging

from supcon_tf.cli.console import run_command
from supcon_tf.data import load_dataset
from supcon_tf.errors import DataError, UsageError
from supcon_tf.evaluation import CORRUPTIONS, evaluate_run
from supcon_tf.files import is_file, join, read_text

# The settings of the training run that define the data split.
_SPLIT_SETTINGS = ("dataset", "data_dir", "validation_fraction", "seed")

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
        f"Comma-separated corruptions (default: all that apply): {', '.join(CORRUPTIONS)}.",
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
        "batch_size", 256, "Images per forward pass.", lower_bound=1, flag_values=flag_values
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
    stored = {}
    for name in ("flags.json", "config.json"):
        path = join(model_dir, name)
        if is_file(path):
            try:
                stored = json.loads(read_text(path))
            except json.JSONDecodeError as error:
                raise DataError(
                    f"{path} is not valid JSON ({error}); restore it, or pass --dataset and --seed"
                ) from error
            break
    settings = {"dataset": None, "data_dir": None, "validation_fraction": 0.1, "seed": 0}
    settings.update({key: stored[key] for key in _SPLIT_SETTINGS if stored.get(key) is not None})
    overrides = {"dataset": dataset, "data_dir": data_dir, "seed": seed}
    settings.update({key: value for key, value in overrides.items() if value is not None})
    if not settings["dataset"]:
        raise UsageError(f"{model_dir} has no flags.json naming its dataset; pass --dataset")
    return settings


def main(argv):
    if len(argv) > 1:
        raise UsageError(
            f"unexpected arguments {' '.join(argv[1:])}; flags are written --name=value"
        )
    flag_values = flags.FLAGS
    settings = run_settings(
        flag_values.model_dir, flag_values.dataset, flag_values.data_dir, flag_values.seed
    )
    logging.info("Evaluating %s on %s", flag_values.model_dir, settings)
    splits = load_dataset(
        settings["dataset"],
        settings["data_dir"],
        settings["validation_fraction"],
        seed=settings["seed"],
    )
    result = evaluate_run(
        flag_values.model_dir,
        splits,
        num_bins=flag_values.num_bins,
        knn_k=flag_values.knn_k,
        knn_temperature=flag_values.knn_temperature,
        corruptions=flag_values.corruptions,
        corruption_samples=flag_values.corruption_samples,
        tsne_samples=flag_values.tsne_samples,
        batch_size=flag_values.batch_size,
        seed=settings["seed"],
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
    model_dir = flag_values.model_dir
    print(f"Report: {join(model_dir, 'report.json')} and {join(model_dir, 'report.md')}")


def run():
    """Console-script entry point."""
    define_flags()
    run_command(main, "supcon-eval", __doc__, FLAG_GROUPS)


if __name__ == "__main__":
    run()
