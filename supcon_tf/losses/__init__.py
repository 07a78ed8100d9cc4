"""The contrastive losses: SupCon (Khosla et al. 2020) and N-pairs, with their parts.

- `supcon`: `supervised_contrastive_loss` and the `SupervisedContrastiveLoss` class;
- `npairs`: `npairs_loss` and `NPairsLoss`;
- `labels`: labels and positive pairs;
- `replicas`: the cross-replica gather of features and labels;
- `memory`: the memory-bank contrasts;
- `kernels`: the dense and blocked kernels that compute the per-anchor losses.

Example:

>>> import numpy as np
>>> loss = SupervisedContrastiveLoss(temperature=0.1)
>>> features = np.random.default_rng(0).normal(size=(4, 2, 8)).astype("float32")
>>> float(loss(np.array([0, 0, 1, 1]), features)) > 0
True
"""

from supcon_tf.losses.labels import label_tensor
from supcon_tf.losses.npairs import NPairsLoss, npairs_loss
from supcon_tf.losses.supcon import (
    CONTRAST_MODES,
    SUMMATIONS,
    SupervisedContrastiveLoss,
    supervised_contrastive_loss,
)

__all__ = [
    "CONTRAST_MODES",
    "NPairsLoss",
    "SUMMATIONS",
    "SupervisedContrastiveLoss",
    "label_tensor",
    "npairs_loss",
    "supervised_contrastive_loss",
]
