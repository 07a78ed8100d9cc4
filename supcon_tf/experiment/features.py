"""The classifier stage's data as frozen features: the encoder embeds each split once.

The linear stage trains a head on a frozen encoder (`build_linear_classifier`), whose
features do not change while the head trains. `embed_inputs(encoder, inputs, ...)`
therefore runs the encoder once over the training, validation and test images of an
in-RAM dataset (`ArrayInputs`) and returns `FrozenFeatures`, which serves the head
(`supcon_tf.models.classifiers.linear_head`) its batches behind the interface of the
inputs (`training_batches`, `evaluation_batches`, the sizes): the head then trains on
vectors, and an epoch costs a few matrix products instead of an encoder pass over
every image, with validation each epoch included.

The training batches are the image path's, index for index: epoch `e` is the
permutation of `(seed, e)` (`supcon_tf.data.make_dataset`), so the head sees the
features of exactly the images the old stage fed through the encoder, and a stage
resumed at `(epoch, step)` sees the batches of an uninterrupted one.

**Augmentation** (`augment` other than `"none"`): a cache of `copies` augmented copies
of the training set is embedded up front, and epoch `e` trains on copy `e % copies`.
With `copies >= epochs` every epoch sees fresh augmentations, as when the encoder ran
on every batch; with fewer, the encoder's cost is `copies` passes instead of one per
epoch, and later epochs reuse earlier draws in a new order. Why a cache rather than an
embedding per epoch: per-epoch embedding costs what the image path costs (the encoder
pass is the whole price of an epoch), so it would save nothing; the cache is
deterministic from the seed (the same augmenter, rebuilt, draws the same copies), so a
resumed stage trains on the features an uninterrupted one saw. Memory: `copies x N x F`
float32 values (CIFAR-10 with a ResNet-50, 45,000 x 2,048: 369 MB a copy).

Streamed datasets keep the image path (`supcon_tf.experiment.stages`): their training
crops are drawn by the input pipeline for every batch, and embedding cached copies of a
streamed training set is left for later.

Example:

>>> import numpy as np
>>> from supcon_tf.experiment.inputs import DataSource, open_inputs
>>> from supcon_tf.models import build_encoder
>>> inputs = open_inputs(DataSource("digits"))
>>> encoder = build_encoder("small_cnn", inputs.input_shape, width_multiplier=0.25)
>>> features = embed_inputs(encoder, inputs, batch_size=256)
>>> features.train.shape, features.num_validation, features.num_classes
((1, 1293, 32), 144, 10)
>>> batch, labels = next(iter(features.training_batches(64, seed=0, epochs=1,
...                                                     initial_epoch=0, steps_done=0)))
>>> tuple(batch.shape), tuple(labels.shape)
((64, 32), (64,))
"""

import numpy as np
import tensorflow as tf

from supcon_tf import checks
from supcon_tf.data import make_dataset

# Augmented copies of the training set cached for an augmented linear stage (at most
# one per epoch): every epoch of a stage of up to 10 epochs sees fresh augmentations.
AUGMENTED_COPIES = 10


def embed(encoder, images, batch_size, augmenter=None):
    """The frozen `encoder`'s features of `images` (`[N, F]`, float32), in their order.

    Args:
        encoder: a Keras model from images to `[B, F]` features, called with
            `training=False`.
        images: `[N, H, W, C]` array.
        batch_size: images per encoder call.
        augmenter: optional layer applied (with `training=True`) to each batch first.

    Example:

    >>> import numpy as np, keras
    >>> encoder = keras.Sequential([keras.Input((2, 2, 1)), keras.layers.Flatten()])
    >>> embed(encoder, np.arange(8, dtype="float32").reshape(2, 2, 2, 1), 1)
    array([[0., 1., 2., 3.],
           [4., 5., 6., 7.]], dtype=float32)
    """
    return _embed_with(_features_function(encoder, augmenter), encoder, images, batch_size)


def _features_function(encoder, augmenter):
    """`images -> features` as one `tf.function`, traced once for every batch size."""

    @tf.function(input_signature=[tf.TensorSpec((None, *encoder.input_shape[1:]), tf.float32)])
    def features(batch):
        if augmenter is not None:
            batch = augmenter(batch, training=True)
        return tf.cast(encoder(batch, training=False), tf.float32)

    return features


def _embed_with(features, encoder, images, batch_size):
    batches = make_dataset(images, batch_size=batch_size)
    parts = [features(tf.cast(batch, tf.float32)).numpy() for batch in batches]
    if not parts:
        return np.zeros((0, *encoder.output_shape[1:]), np.float32)
    return np.concatenate(parts)


def embed_inputs(encoder, inputs, batch_size, augmenter=None, copies=1):
    """`FrozenFeatures` of an `ArrayInputs`' three splits under the frozen `encoder`.

    Args:
        encoder: the frozen encoder (images -> `[B, F]`).
        inputs: an `supcon_tf.experiment.inputs.ArrayInputs` (a dataset in RAM).
        batch_size: images per encoder call.
        augmenter: the training augmentation, or `None`; validation and test images
            are never augmented.
        copies: augmented copies of the training set to embed (with an augmenter).
    """
    copies = checks.integer("copies", copies, minimum=1) if augmenter is not None else 1
    splits = inputs.splits
    train = np.stack([embed(encoder, splits.x_train, batch_size, augmenter) for _ in range(copies)])
    return FrozenFeatures(
        train,
        splits.y_train,
        (embed(encoder, splits.x_val, batch_size), splits.y_val),
        (embed(encoder, splits.x_test, batch_size), splits.y_test),
        inputs.num_classes,
    )


class FrozenFeatures:
    """A dataset's frozen features, served like the inputs' images (see the module docstring).

    Args:
        train: `[copies, N, F]` training features (copy `e % copies` serves epoch `e`).
        train_labels: `[N]` integer labels.
        validation: `(features [V, F], labels [V])`.
        test: `(features [T, F], labels [T])`.
        num_classes: number of classes.
    """

    streamed = False

    def __init__(self, train, train_labels, validation, test, num_classes):
        self.train = train
        self.train_labels = train_labels
        self.splits = {"validation": validation, "test": test}
        self.num_classes = num_classes
        self.num_train = train.shape[1]
        self.num_validation = len(validation[1])
        self.num_test = len(test[1])

    def example_images(self):
        """Two training feature vectors, to build the head (named as the inputs' method)."""
        return self.train[0, :2]

    def training_batches(self, batch_size, seed, epochs, initial_epoch, steps_done):
        """Shuffled `(features, labels)` batches of epochs `initial_epoch..epochs-1`, minus
        `steps_done`: the images' batches of `ArrayInputs.training_batches`, index for index.
        """
        steps_per_epoch = self.num_train // batch_size
        order = make_dataset(
            np.arange(self.num_train),
            batch_size=batch_size,
            shuffle=True,
            seed=seed,
            drop_remainder=True,
            epochs=epochs,
            initial_epoch=initial_epoch,
        )
        steps = tf.data.Dataset.range(initial_epoch * steps_per_epoch, epochs * steps_per_epoch)
        features = tf.constant(self.train)
        labels = tf.constant(self.train_labels)
        copies = len(self.train)

        def gather(step, indices):
            copy = (step // steps_per_epoch) % copies
            return tf.gather(features[copy], indices), tf.gather(labels, indices)

        stream = tf.data.Dataset.zip(steps, order).map(gather)
        return stream.skip(steps_done).prefetch(tf.data.AUTOTUNE)

    def evaluation_batches(self, split, batch_size):
        """Batches of `(features, labels)` of `"validation"` or `"test"`; `None` if empty."""
        features, labels = self.splits[split]
        if len(labels) == 0:
            return None
        return make_dataset(features, labels, batch_size=batch_size)
