"""The networks of the method: encoders, heads, the SupCon model and its classifiers.

- `encoders`: `build_encoder` (ResNets and small CNNs, no head);
- `layers`: `ProjectionHead` and `L2Normalize`;
- `supcon_model`: `SupConModel` (stage 1: contrastive pre-training) and `HybridSupConModel`;
- `classifiers`: `build_linear_classifier` (stage 2), its `linear_head` on features, and
  `build_cross_entropy_classifier`;
- `memory_bank`, `momentum_encoder`: extra contrasts from past steps;
- `gradient_cache`: large contrastive batches in small chunks.

Example:

>>> encoder = build_encoder("small_cnn", (8, 8, 1), width_multiplier=0.25)
>>> SupConModel(encoder).num_views
2
"""

from supcon_tf.losses import SupervisedContrastiveLoss
from supcon_tf.models.classifiers import (
    HIDDEN_ACTIVATIONS,
    build_cross_entropy_classifier,
    build_linear_classifier,
    linear_head,
)
from supcon_tf.models.encoders import ENCODERS, STEMS, build_encoder
from supcon_tf.models.layers import L2Normalize, ProjectionHead
from supcon_tf.models.memory_bank import MemoryBank
from supcon_tf.models.momentum_encoder import (
    MomentumEncoder,
    check_momentum,
    check_momentum_encoder_memory,
)
from supcon_tf.models.momentum_encoder import (
    train_step as train_step_with_key_network,  # deprecated
)
from supcon_tf.models.supcon_model import HybridSupConModel, SupConModel

__all__ = [
    "ENCODERS",
    "HIDDEN_ACTIVATIONS",
    "HybridSupConModel",
    "L2Normalize",
    "MemoryBank",
    "MomentumEncoder",
    "ProjectionHead",
    "STEMS",
    "SupConModel",
    "SupervisedContrastiveLoss",
    "build_cross_entropy_classifier",
    "build_encoder",
    "build_linear_classifier",
    "check_momentum",
    "check_momentum_encoder_memory",
    "linear_head",
    "train_step_with_key_network",
]
