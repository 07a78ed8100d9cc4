"""The n-pairs loss (Sohn 2016) of the original Keras SupCon example, without TF Addons.

Example:

>>> import numpy as np
>>> z = np.eye(3, dtype="float32")
>>> float(npairs_loss([0, 0, 1], z @ z.T / 0.5)) > 0
True
"""

import keras
import tensorflow as tf

from supcon_tf.losses.labels import _as_views, _check_batch, label_tensor
from supcon_tf.losses.supcon import _LabelLoss, _per_sample_loss, check_temperature


def npairs_loss(y_true, y_pred):
    """Native replacement for `tfa.losses.npairs_loss` (TensorFlow Addons).

    Computes the n-pairs loss of Sohn (NeurIPS 2016) on a precomputed similarity
    (logit) matrix, exactly as TensorFlow Addons did: row i's target distribution is
    uniform over the samples with the same label as i (i itself included), and the loss
    is the softmax cross-entropy of row i of `y_pred` against it, averaged over rows.

    Args:
        y_true: integer labels `[B]` (or `[B, 1]`).
        y_pred: similarity logits `[B, B]`, e.g. `z @ z.T / temperature`.

    Returns:
        The scalar mean loss (as `tfa.losses.npairs_loss` returned).

    Example:

    >>> import numpy as np
    >>> z = np.eye(3, dtype="float32")
    >>> float(npairs_loss([0, 0, 1], z @ z.T / 0.5)) > 0
    True
    """
    y_pred = tf.convert_to_tensor(y_pred)
    if y_pred.shape.rank != 2:
        raise ValueError(
            f"`y_pred` must be a [batch, batch] logit matrix, got shape {y_pred.shape}."
        )
    if y_pred.dtype not in (tf.float32, tf.float64):
        y_pred = tf.cast(y_pred, tf.float32)
    labels = tf.reshape(label_tensor(y_true), [-1])
    _check_batch("y_true", labels, y_pred.shape[0])
    same = tf.cast(tf.equal(labels[:, None], labels[None, :]), y_pred.dtype)
    targets = same / tf.reduce_sum(same, axis=1, keepdims=True)
    return tf.reduce_mean(tf.nn.softmax_cross_entropy_with_logits(labels=targets, logits=y_pred))


@keras.saving.register_keras_serializable(package="supcon_tf")
class NPairsLoss(_LabelLoss):
    """The original Keras SupCon example's loss, without TensorFlow Addons.

    The Keras example ("Supervised Contrastive Learning", Khandelwal 2020) computed
    `tfa.losses.npairs_loss(labels, z @ z.T / temperature)` on L2-normalised embeddings.
    Unlike `SupervisedContrastiveLoss`, each sample counts as its own positive and stays
    in the softmax denominator:

        L(i) = -1/|P(i)| sum_{p in P(i)} log( exp(z_i.z_p/tau) / sum_{a} exp(z_i.z_a/tau) )

    with `P(i)` every view with i's label, i included, and `a` over all views, i
    included. With one view per sample this equals `npairs_loss(y, z @ z.T / tau)`.

    Args:
        temperature: softmax temperature (the Keras example used 0.05).
        normalize: L2-normalise embeddings first (the Keras example did).
        reduction, name, dtype: as for any Keras loss.

    Example:

    >>> import numpy as np
    >>> z = np.random.default_rng(0).normal(size=(6, 8)).astype("float32")
    >>> bool(NPairsLoss(temperature=0.05)([0, 1, 2, 0, 1, 2], z) > 0)
    True
    """

    def __init__(
        self,
        temperature=0.05,
        normalize=True,
        reduction="sum_over_batch_size",
        name="npairs_loss",
        dtype=None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        check_temperature(temperature)
        self.temperature = temperature
        self.normalize = normalize

    def call(self, y_true, y_pred):
        features = _as_views(y_pred)
        if self.normalize:
            features = tf.math.l2_normalize(features, axis=-1)
        return _per_sample_loss(
            features, y_true, None, self.temperature, "all", "out", include_self=True
        )

    def get_config(self):
        config = super().get_config()
        config.update({"temperature": self.temperature, "normalize": self.normalize})
        return config
