"""The training tools: optimizers, schedules, distribution, checkpoints and model selection.

- `optimizers`: `build_optimizer` and `LARS`;
- `schedules`: `WarmupCosineDecay`, `build_schedule` and `scale_learning_rate`;
- `distribute`: strategies, the global batch, mixed precision, synchronised BatchNorm;
- `custom_loop`: the training loop for multi-worker strategies, where Keras' `fit` fails;
- `checkpoints`: resumable training checkpoints;
- `selection`: the best epoch by a monitored metric.

Example:

>>> type(build_optimizer("sgd", learning_rate=0.1)).__name__
'SGD'
"""

from supcon_tf.training.checkpoints import TrainingCheckpoint, latest_position
from supcon_tf.training.custom_loop import (
    fit_with_custom_loop,
    loss_and_accuracy,
    needs_custom_loop,
)
from supcon_tf.training.distribute import (
    build_strategy,
    per_replica_batch_size,
    set_mixed_precision,
    synchronize_batch_norm,
)
from supcon_tf.training.optimizers import LARS, OPTIMIZERS, build_optimizer
from supcon_tf.training.schedules import SCHEDULES, WarmupCosineDecay, build_schedule
from supcon_tf.training.selection import MONITORS, BestEpoch

__all__ = [
    "BestEpoch",
    "LARS",
    "MONITORS",
    "OPTIMIZERS",
    "SCHEDULES",
    "TrainingCheckpoint",
    "WarmupCosineDecay",
    "build_optimizer",
    "build_schedule",
    "build_strategy",
    "fit_with_custom_loop",
    "latest_position",
    "loss_and_accuracy",
    "needs_custom_loop",
    "per_replica_batch_size",
    "set_mixed_precision",
    "synchronize_batch_norm",
]
