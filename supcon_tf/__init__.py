"""supcon_tf: Supervised Contrastive Learning (Khosla et al., NeurIPS 2020) for Keras 3.

Example:

>>> import supcon_tf
>>> loss = supcon_tf.SupervisedContrastiveLoss(temperature=0.1)
>>> loss.temperature
0.1
"""

from supcon_tf.data import DatasetSplits, load_dataset, make_dataset
from supcon_tf.encoders import build_encoder
from supcon_tf.experiment import ExperimentConfig, run_experiment
from supcon_tf.layers import L2Normalize, ProjectionHead
from supcon_tf.losses import (
    NPairsLoss,
    SupervisedContrastiveLoss,
    npairs_loss,
    supervised_contrastive_loss,
)
from supcon_tf.models import (
    SupConModel,
    build_cross_entropy_classifier,
    build_linear_classifier,
)

__version__ = "0.1.0"

__all__ = [
    "DatasetSplits",
    "ExperimentConfig",
    "L2Normalize",
    "NPairsLoss",
    "ProjectionHead",
    "SupConModel",
    "SupervisedContrastiveLoss",
    "build_cross_entropy_classifier",
    "build_encoder",
    "build_linear_classifier",
    "load_dataset",
    "make_dataset",
    "npairs_loss",
    "run_experiment",
    "supervised_contrastive_loss",
]
