"""supcon_tf: Supervised Contrastive Learning (Khosla et al., NeurIPS 2020) for Keras 3.

Example:

>>> import supcon_tf
>>> loss = supcon_tf.SupervisedContrastiveLoss(temperature=0.1)
>>> loss.temperature
0.1

The public names are imported on first use (PEP 562), so that `import supcon_tf` does
not start TensorFlow: the commands (`supcon_tf.cli`) set TensorFlow's logging before
it starts. `supcon_tf.<submodule>` is imported on first use too.
"""

import importlib
import importlib.util
from typing import TYPE_CHECKING

__version__ = "0.1.0"

# Each public name and the module it lives in.
_EXPORTS = {
    "DatasetSplits": "supcon_tf.data",
    "load_dataset": "supcon_tf.data",
    "make_dataset": "supcon_tf.data",
    "build_encoder": "supcon_tf.models.encoders",
    "ExperimentConfig": "supcon_tf.experiment",
    "run_experiment": "supcon_tf.experiment",
    "L2Normalize": "supcon_tf.models.layers",
    "ProjectionHead": "supcon_tf.models.layers",
    "NPairsLoss": "supcon_tf.losses",
    "SupervisedContrastiveLoss": "supcon_tf.losses",
    "npairs_loss": "supcon_tf.losses",
    "supervised_contrastive_loss": "supcon_tf.losses",
    "SupConModel": "supcon_tf.models",
    "build_cross_entropy_classifier": "supcon_tf.models",
    "build_linear_classifier": "supcon_tf.models",
}

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

if TYPE_CHECKING:  # For readers and static tools; at run time `__getattr__` imports them.
    from supcon_tf.data import DatasetSplits, load_dataset, make_dataset
    from supcon_tf.experiment import ExperimentConfig, run_experiment
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
    from supcon_tf.models.encoders import build_encoder
    from supcon_tf.models.layers import L2Normalize, ProjectionHead


def __getattr__(name):
    """Imports a public name, or a submodule (`supcon_tf.losses`), on first use."""
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
    elif not name.startswith("__") and importlib.util.find_spec(f"{__name__}.{name}"):
        value = importlib.import_module(f"{__name__}.{name}")
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__():
    return sorted({*globals(), *__all__})
