"""The parts an experiment builds from its configuration: encoder, heads, loss, augmenter.

Each factory reads the few configuration fields of its part and calls the library's
builder (`supcon_tf.models.encoders`, `supcon_tf.models.layers`, `supcon_tf.losses`,
`supcon_tf.augment`, `supcon_tf.models`); the stages (`supcon_tf.experiment.stages`)
put the parts together.

Example:

>>> from supcon_tf.experiment import ExperimentConfig
>>> contrastive_loss(ExperimentConfig(denominator_mode="one_positive")).denominator_mode
'one_positive'
>>> type(contrastive_loss(ExperimentConfig(loss="npairs"))).__name__
'NPairsLoss'
"""

import keras
import numpy as np

from supcon_tf.augment import build_augmenter
from supcon_tf.evaluation import KNNMonitor
from supcon_tf.experiment.config import SUPCON_ONLY_OPTIONS
from supcon_tf.losses import NPairsLoss, SupervisedContrastiveLoss
from supcon_tf.models import SupConModel
from supcon_tf.models.encoders import build_encoder
from supcon_tf.models.layers import ProjectionHead


def contrastive_loss(config):
    """The pretraining loss of `config` (`loss`, `temperature` and the loss options)."""
    if config.loss == "npairs":
        return NPairsLoss(temperature=config.temperature)
    return SupervisedContrastiveLoss(
        temperature=config.temperature,
        **{name: getattr(config, name) for name in SUPCON_ONLY_OPTIONS},
    )


def new_encoder(config, input_shape):
    """A new encoder of `config.encoder` for images of `input_shape`."""
    return build_encoder(config.encoder, input_shape, config.width_multiplier, config.stem)


def projection_head(config):
    """The projection head of `config`: `ProjectionHead`, or identity for `"none"`."""
    if config.projection_head == "none":
        return keras.layers.Identity(name="no_projection")
    return ProjectionHead(
        output_units=config.projection_units, batch_norm=config.projection_batch_norm
    )


def augmenter(config, crop=True):
    """The augmentation policy of `config`; `crop=False` when the input pipeline crops."""
    return build_augmenter(
        config.augment,
        seed=config.seed,
        magnitude=config.augment_magnitude,
        strength=config.augment_strength,
        crop=crop,
    )


def stream_augmenter(config, streamed):
    """The augmenter a streamed input pipeline applies to the contrastive views, or None.

    With `augment_placement="pipeline"` a streamed dataset's views are flipped and
    coloured in `tf.data` (the pipeline has cropped them); otherwise (the default
    `"device"`, or a dataset in RAM) the model does it.
    """
    if streamed and config.augment_placement == "pipeline":
        return augmenter(config, crop=False)
    return None


def new_supcon_model(config, input_shape, crop=True, **options):
    """A `SupConModel` on a new encoder with the configured head, augmenter and views.

    `crop=False` when the input pipeline draws the views (a streamed dataset); the model
    then has no augmenter at all if the pipeline augments them (`stream_augmenter`).
    """
    in_model = None if stream_augmenter(config, not crop) else augmenter(config, crop=crop)
    return SupConModel(
        new_encoder(config, input_shape),
        projection_head=projection_head(config),
        augmenter=in_model,
        num_views=config.views,
        **options,
    )


def knn_monitors(encoder, inputs, config, max_samples=5000):
    """`[KNNMonitor]` on (seeded subsets of) the training and validation splits, or `[]`.

    Only for datasets held in RAM (a streamed dataset's images are not at hand).
    """
    if not config.knn_monitor or inputs.streamed or inputs.num_validation == 0:
        return []
    data = inputs.splits
    rng = np.random.default_rng(config.seed)
    bank = rng.permutation(len(data.x_train))[:max_samples]
    queries = rng.permutation(len(data.x_val))[:max_samples]
    return [
        KNNMonitor(
            encoder,
            (data.x_train[bank], data.y_train[bank]),
            (data.x_val[queries], data.y_val[queries]),
            every_n_epochs=config.knn_monitor_every,
            batch_size=config.batch_size,
        )
    ]
