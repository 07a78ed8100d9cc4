"""Deprecated: `supcon_tf.distribute` moved to `supcon_tf.training.distribute`.

Import from there (or from `supcon_tf.training`); importing this module warns, and its old public
names stay importable from here.
The multi-worker loop (`fit_with_custom_loop`, `needs_custom_loop`) moved to
`supcon_tf.training.custom_loop`, where `evaluate_classifier` is now named
`loss_and_accuracy` (the old name stays here as an alias).
"""

from supcon_tf._moved import reexport

__all__ = reexport(
    globals(),
    __name__,
    "supcon_tf.training.distribute",
    (
        "LEARNING_RATE_SCALINGS MIXED_PRECISION_POLICIES REFERENCE_BATCH_SIZE STRATEGIES "
        "build_strategy default_learning_rate_scaling evaluate_classifier fit_with_custom_loop "
        "is_chief join loss_scale_optimizer needs_custom_loop per_replica_batch_size "
        "scale_learning_rate set_mixed_precision synchronize_batch_norm training_scope "
        "worker_model_dir"
    ),
    elsewhere={
        "evaluate_classifier": "supcon_tf.training.custom_loop:loss_and_accuracy",
        "fit_with_custom_loop": "supcon_tf.training.custom_loop:fit_with_custom_loop",
        "needs_custom_loop": "supcon_tf.training.custom_loop:needs_custom_loop",
    },
)
