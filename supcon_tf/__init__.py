"""supcon_tf: Supervised Contrastive Learning (Khosla et al., NeurIPS 2020) for Keras 3.

Example:

>>> import supcon_tf
>>> loss = supcon_tf.SupervisedContrastiveLoss(temperature=0.1)
>>> loss.temperature
0.1
"""

from supcon_tf.losses import (
    NPairsLoss,
    SupervisedContrastiveLoss,
    npairs_loss,
    supervised_contrastive_loss,
)

__version__ = "0.1.0"

__all__ = [
    "NPairsLoss",
    "SupervisedContrastiveLoss",
    "npairs_loss",
    "supervised_contrastive_loss",
]
