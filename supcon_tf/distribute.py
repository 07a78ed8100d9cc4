"""Deprecated: `supcon_tf.distribute` moved to `supcon_tf.training.distribute`.

This module only re-exports the names it used to define, from their new home, and emits
a `DeprecationWarning` when imported.
Import from `supcon_tf.training.distribute` (or `supcon_tf.training`) instead.
The multi-worker loop (`fit_with_custom_loop`, `needs_custom_loop`) moved to
`supcon_tf.training.custom_loop`, where `evaluate_classifier` is now named
`loss_and_accuracy` (the old name stays here as an alias).
"""

import warnings

from supcon_tf.training.custom_loop import (
    fit_with_custom_loop,
    loss_and_accuracy,
    needs_custom_loop,
)
from supcon_tf.training.distribute import (
    LEARNING_RATE_SCALINGS,
    MIXED_PRECISION_POLICIES,
    REFERENCE_BATCH_SIZE,
    STRATEGIES,
    build_strategy,
    default_learning_rate_scaling,
    is_chief,
    join,
    loss_scale_optimizer,
    per_replica_batch_size,
    scale_learning_rate,
    set_mixed_precision,
    synchronize_batch_norm,
    training_scope,
    worker_model_dir,
)

evaluate_classifier = loss_and_accuracy

warnings.warn(
    "`supcon_tf.distribute` is deprecated; import from `supcon_tf.training.distribute` instead.",
    DeprecationWarning,
    stacklevel=2,
)

__all__ = [
    "LEARNING_RATE_SCALINGS",
    "MIXED_PRECISION_POLICIES",
    "REFERENCE_BATCH_SIZE",
    "STRATEGIES",
    "build_strategy",
    "default_learning_rate_scaling",
    "evaluate_classifier",
    "fit_with_custom_loop",
    "is_chief",
    "join",
    "loss_scale_optimizer",
    "needs_custom_loop",
    "per_replica_batch_size",
    "scale_learning_rate",
    "set_mixed_precision",
    "synchronize_batch_norm",
    "training_scope",
    "worker_model_dir",
]
