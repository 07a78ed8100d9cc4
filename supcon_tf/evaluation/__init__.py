"""Evaluation of classifiers and representations: accuracy, calibration, kNN, robustness, reports.

Everything the SupCon paper reports about a trained model, and a little more, as plain
functions on NumPy arrays (no flags, no global state), one job per module:

* `metrics`: `predict`, `predict_probabilities`, `softmax`, `top_k_accuracy`,
  `confusion_matrix`, `per_class_accuracy`;
* `calibration`: `calibration_bins`, `expected_calibration_error` (equal-width bins);
* `knn`: `knn_scores`, `knn_accuracy` (weighted kNN on L2-normalised embeddings, Wu et
  al. 2018) and the `KNNMonitor` callback that logs it during pretraining;
* `representation`: `l2_normalize`, `alignment_uniformity` (Wang & Isola 2020);
* `corruptions`: CIFAR-10-C style corruptions (`corrupt`, `CORRUPTIONS`) and
  `evaluate_corruptions` (accuracy, ECE and mCE under corruption);
* `plots`: `plot_reliability_diagram`, `plot_confusion_matrix`, `plot_tsne`,
  `plot_corruption_results`;
* `report`: `update_report_json`, `write_report_md`, `corruption_table`;
* `run`: `evaluate_classifier`, `evaluate_encoder` and `evaluate_run` (every model of a
  run folder, writing `report.json` and `report.md`).

All of these names are also importable from `supcon_tf.evaluation` itself.

Conventions: labels are integer class indices `[N]`; classifier outputs are `[N, C]`
logits (`from_logits=True`) or probabilities; embeddings are `[N, D]` floats.

Example:

>>> import numpy as np
>>> from supcon_tf import evaluation
>>> probabilities = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
>>> evaluation.top_k_accuracy([0, 1, 1], probabilities, k=1)
0.6666666666666666
>>> round(evaluation.expected_calibration_error([0, 1, 1], probabilities, num_bins=10), 4)
0.3
"""

from supcon_tf.evaluation.calibration import calibration_bins, expected_calibration_error
from supcon_tf.evaluation.corruptions import (
    CORRUPTIONS,
    SEVERITIES,
    corrupt,
    default_corruptions,
    evaluate_corruptions,
)
from supcon_tf.evaluation.knn import WEIGHTINGS, KNNMonitor, knn_accuracy, knn_scores
from supcon_tf.evaluation.metrics import (
    confusion_matrix,
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
from supcon_tf.evaluation.report import (
    REPORT_JSON,
    REPORT_MD,
    corruption_table,
    update_report_json,
    write_report_md,
)
from supcon_tf.evaluation.representation import alignment_uniformity, l2_normalize
from supcon_tf.evaluation.run import (
    CLASSIFIER_FILES,
    ENCODER_FILES,
    PLOTS_FOLDER,
    evaluate_classifier,
    evaluate_encoder,
    evaluate_run,
)

__all__ = [
    "CLASSIFIER_FILES",
    "CORRUPTIONS",
    "ENCODER_FILES",
    "KNNMonitor",
    "PLOTS_FOLDER",
    "REPORT_JSON",
    "REPORT_MD",
    "SEVERITIES",
    "WEIGHTINGS",
    "alignment_uniformity",
    "calibration_bins",
    "confusion_matrix",
    "corrupt",
    "corruption_table",
    "default_corruptions",
    "evaluate_classifier",
    "evaluate_corruptions",
    "evaluate_encoder",
    "evaluate_run",
    "expected_calibration_error",
    "knn_accuracy",
    "knn_scores",
    "l2_normalize",
    "per_class_accuracy",
    "plot_confusion_matrix",
    "plot_corruption_results",
    "plot_reliability_diagram",
    "plot_tsne",
    "predict",
    "predict_probabilities",
    "softmax",
    "top_k_accuracy",
    "update_report_json",
    "write_report_md",
]
