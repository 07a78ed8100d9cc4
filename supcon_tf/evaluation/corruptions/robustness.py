"""Robustness of classifiers to the corruptions: accuracy, ECE and (relative) mCE.

`evaluate_corruptions` runs one or more classifiers over corruptions x severities and
reports accuracy and ECE per severity and the corruption error relative to a baseline:
`CE_c = sum_s E_{s,c} / sum_s E^baseline_{s,c}`, `mCE = mean_c CE_c` over the CIFAR-10-C
corruptions evaluated (Hendrycks & Dietterich normalise by AlexNet; here the baseline is
the cross-entropy model).
"""

import numpy as np

from supcon_tf.errors import DataError, UsageError
from supcon_tf.evaluation._checks import _check_labels
from supcon_tf.evaluation.calibration import expected_calibration_error
from supcon_tf.evaluation.corruptions._common import SEVERITIES, check_images, parameter
from supcon_tf.evaluation.corruptions.registry import (
    CIFAR10C_CORRUPTIONS,
    CORRUPTIONS,
    check_corruption,
    corrupt,
    default_corruptions,
)
from supcon_tf.evaluation.metrics import predict_probabilities, top_k_accuracy


def _ratio(numerator, denominator):
    """`numerator / denominator`, or None (JSON null) when the denominator is 0."""
    return float(numerator / denominator) if denominator > 0 else None


def evaluate_corruptions(
    models,
    images,
    labels,
    corruptions=None,
    severities=SEVERITIES,
    baseline=None,
    num_bins=15,
    batch_size=256,
    seed=0,
):
    """Accuracy and ECE of classifiers over corruptions x severities, and their mCE.

    Every corrupted copy of `images` is made once and shared by all models. Corruption
    `c` (the `i`-th in `corruptions`) uses seed `seed + i` at every severity.

    With `E_{s,c}` the error (1 - accuracy) of a model at severity `s` of corruption `c`
    and `E^b` that of the baseline (Hendrycks & Dietterich 2019, Sec. 4):

    * corruption error `CE_c = sum_s E_{s,c} / sum_s E^b_{s,c}`, and its mean over
      corruptions, `mean_corruption_error` (mCE; the baseline scores 1);
    * relative corruption error
      `sum_s (E_{s,c} - E_clean) / sum_s (E^b_{s,c} - E^b_clean)` and its mean
      `relative_mean_corruption_error` (how much accuracy is lost, relative to the
      baseline's loss).

    The means are over the CIFAR-10-C corruptions among `corruptions` (the paper's mCE
    leaves the extras out, so the default, all 15, is comparable with published mCE);
    over all of `corruptions` when none of them is a CIFAR-10-C corruption. The names
    averaged are reported as `mean_corruption_error_over`. A ratio with a zero
    denominator is reported as None and left out of the means.

    Args:
        models: a dict `name -> model` of classifiers that output logits (or a single
            model, named `"model"`).
        images: float NHWC test images in `[0, 1]`.
        labels: `[N]` integer labels.
        corruptions: names from `CORRUPTIONS` (default: `default_corruptions` for the
            images' channel count: the 15 of CIFAR-10-C for grey and RGB images).
        severities: severities to evaluate (default 1..5).
        baseline: the name (a key of `models`) of the reference model of the corruption
            errors; None skips them.
        num_bins: ECE bins.
        batch_size: images per forward pass.
        seed: base seed of the random corruptions.

    Returns:
        A JSON-ready dict with `corruptions`, `mean_corruption_error_over`,
        `severities`, `baseline`, `num_samples`, `seed` and `models`: for each model `clean` (`accuracy`,
        `expected_calibration_error`), `accuracy` and `expected_calibration_error` (dicts
        corruption -> list over severities), `per_severity` (`accuracy` and
        `expected_calibration_error` averaged over corruptions, one per severity),
        `mean_accuracy`, `mean_expected_calibration_error` and, with a baseline,
        `corruption_error`, `mean_corruption_error`, `relative_corruption_error` and
        `relative_mean_corruption_error`.

    Example:

    >>> import keras, numpy as np
    >>> images = np.random.default_rng(0).random((6, 8, 8, 3)).astype("float32")
    >>> model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Flatten(),
    ...                           keras.layers.Dense(2)])
    >>> result = evaluate_corruptions({"a": model, "b": model}, images, [0, 1] * 3,
    ...                               corruptions=["contrast"], baseline="b")
    >>> result["models"]["a"]["mean_corruption_error"]
    1.0
    """
    images = check_images(images)
    labels = _check_labels(labels)
    if labels.shape[0] != images.shape[0]:
        raise DataError(f"{images.shape[0]} images but {labels.shape[0]} labels were given.")
    if not isinstance(models, dict):
        models = {"model": models}
    if not models:
        raise UsageError("`models` is empty: pass at least one classifier.")
    if baseline is not None and baseline not in models:
        raise UsageError(f"`baseline`={baseline!r} is not one of the models {list(models)}.")
    if corruptions is None:
        corruptions = default_corruptions(images.shape[-1])
    corruptions = list(corruptions)
    if not corruptions:
        raise UsageError(f"`corruptions` is empty: name at least one of {CORRUPTIONS}.")
    for name in corruptions:
        check_corruption(name)
    severities = [int(parameter(SEVERITIES, severity)) for severity in severities]
    if not severities:
        raise UsageError(f"`severities` is empty: choose from {SEVERITIES}.")

    results = {}
    for name, model in models.items():
        probabilities = predict_probabilities(model, images, batch_size)
        results[name] = {
            "clean": {
                "accuracy": top_k_accuracy(labels, probabilities, k=1),
                "expected_calibration_error": expected_calibration_error(
                    labels, probabilities, num_bins
                ),
            },
            "accuracy": {corruption: [] for corruption in corruptions},
            "expected_calibration_error": {corruption: [] for corruption in corruptions},
        }
    count = images.shape[0]
    for index, corruption in enumerate(corruptions):
        # One forward pass per model over all severities (fewer, larger predict calls).
        corrupted = np.concatenate(
            [corrupt(images, corruption, severity, seed=seed + index) for severity in severities]
        )
        for name, model in models.items():
            probabilities = predict_probabilities(model, corrupted, batch_size)
            for position in range(len(severities)):
                part = probabilities[position * count : (position + 1) * count]
                results[name]["accuracy"][corruption].append(top_k_accuracy(labels, part, k=1))
                results[name]["expected_calibration_error"][corruption].append(
                    expected_calibration_error(labels, part, num_bins)
                )
    for result in results.values():
        accuracy = np.array([result["accuracy"][name] for name in corruptions])
        calibration = np.array([result["expected_calibration_error"][name] for name in corruptions])
        result["per_severity"] = {
            "accuracy": accuracy.mean(axis=0).tolist(),
            "expected_calibration_error": calibration.mean(axis=0).tolist(),
        }
        result["mean_accuracy"] = float(accuracy.mean())
        result["mean_expected_calibration_error"] = float(calibration.mean())
    averaged = [name for name in corruptions if name in CIFAR10C_CORRUPTIONS] or corruptions
    if baseline is not None:
        reference = results[baseline]
        reference_clean_error = 1.0 - reference["clean"]["accuracy"]
        for result in results.values():
            clean_error = 1.0 - result["clean"]["accuracy"]
            errors, relative = {}, {}
            for name in corruptions:
                model_errors = 1.0 - np.array(result["accuracy"][name])
                reference_errors = 1.0 - np.array(reference["accuracy"][name])
                errors[name] = _ratio(model_errors.sum(), reference_errors.sum())
                relative[name] = _ratio(
                    (model_errors - clean_error).sum(),
                    (reference_errors - reference_clean_error).sum(),
                )
            result["corruption_error"] = errors
            result["relative_corruption_error"] = relative
            for key, values in (
                ("mean_corruption_error", errors),
                ("relative_mean_corruption_error", relative),
            ):
                defined = [values[name] for name in averaged if values[name] is not None]
                result[key] = float(np.mean(defined)) if defined else None
    return {
        "corruptions": corruptions,
        "mean_corruption_error_over": averaged,
        "severities": severities,
        "baseline": baseline,
        "num_samples": int(images.shape[0]),
        "seed": seed,
        "models": results,
    }
