"""What an experiment trains on: in-RAM splits or a streamed dataset, behind one interface.

`open_inputs(source)` takes a `DataSource` (the data settings of a run, from
`ExperimentConfig.data_source()`) and picks the path its dataset takes:

* `ArrayInputs`: small datasets decoded into RAM (`load_dataset`); training batches
  come from `make_dataset`, the model's augmenter draws the views on the device.
* `StreamInputs`: image folders with an `image_size`, TFRecord shards and TFDS datasets
  (`open_streaming_dataset`); the input pipeline draws a random-resized crop per view
  and the model's augmenter (built without its crop) does the rest on the accelerator,
  or, with `augment_placement="pipeline"`, the input pipeline does it on the CPU. Training batches
  go through `strategy.distribute_datasets_from_function`, so that every input
  pipeline (worker, TPU host) reads its own files and batches per replica.

Both give `training_batches(batch_size, seed, ...)` for a phase (resumed at an epoch
and step), `evaluation_batches(split, batch_size)`, and the sizes the phases need.

With `split="class_disjoint"` (in-RAM datasets only, so far) the inputs hold the seen
classes, which every stage trains on, and `unseen_inputs(inputs)` the unseen ones
(`supcon_tf.data.class_split.split_classes`), kept for retrieval and a linear probe.

Example:

>>> inputs = open_inputs(DataSource("digits"))
>>> type(inputs).__name__, inputs.input_shape, inputs.num_train
('ArrayInputs', (8, 8, 1), 1293)
>>> disjoint = open_inputs(DataSource("digits", split="class_disjoint"))
>>> disjoint.num_classes, unseen_inputs(disjoint).class_names
(5, ('5', '6', '7', '8', '9'))
"""

import dataclasses

import numpy as np
import tensorflow as tf

from supcon_tf.data import (
    load_dataset,
    make_dataset,
    make_evaluation_stream,
    make_training_stream,
    open_streaming_dataset,
)
from supcon_tf.data.arrays import resolve_dataset
from supcon_tf.data.class_split import split_classes
from supcon_tf.data.streaming import crop_settings
from supcon_tf.errors import UsageError
from supcon_tf.models.encoders import build_encoder

# Side of the probe images used to measure an encoder's downsampling factor.
_PROBE_SIZE = 64

# The dataset kinds (`supcon_tf.data.arrays.resolve_dataset`) that always stream.
STREAMED_KINDS = ("tfrecord", "tfds")


@dataclasses.dataclass(frozen=True)
class DataSource:
    """The data settings of a run (see `ExperimentConfig` for each field)."""

    dataset: str
    data_dir: str | None = None
    validation_fraction: float = 0.1
    seed: int = 0
    image_size: int | None = None
    crop_min_area: float | None = None
    center_crop_fraction: float | None = None
    skip_corrupt_images: bool = False
    split: str = "standard"
    unseen_classes: tuple | None = None

    def streamed(self):
        """Whether the dataset streams (see `supcon_tf.data.is_streamed`).

        Raises:
            UsageError, DataError: the dataset cannot be found, or `image_size` does not
                fit it (`resolve_dataset`, `check_streaming`).
        """
        kind, _ = resolve_dataset(self.dataset, self.data_dir)
        return check_streaming(kind, self.dataset, self.image_size)


def check_streaming(kind, dataset, image_size):
    """Whether a dataset of `kind` streams with `image_size`; `UsageError` when they clash.

    Example:

    >>> check_streaming("folder", "images/", 32), check_streaming("named", "digits", None)
    (True, False)
    """
    streamed = kind in STREAMED_KINDS or (kind == "folder" and image_size is not None)
    if streamed and image_size is None:
        raise UsageError(
            f"Dataset {dataset} is streamed as square crops of one side; set `image_size` "
            "(--image_size) to that side (224 for ImageNet, 32 for CIFAR)."
        )
    if not streamed and image_size is not None:
        raise UsageError(
            f"`image_size`={image_size} applies to streamed datasets (image folders, "
            f"TFRecord shards, tfds:<name>); {dataset!r} is loaded into RAM at its "
            "own size. Drop --image_size."
        )
    return streamed


def open_inputs(source):
    """`ArrayInputs` or `StreamInputs` for a `DataSource` (see the module docstring).

    Raises:
        UsageError: `image_size` for a dataset that is not streamed, or none for one
            that is.
        DataError: the dataset cannot be found or read.
    """
    if source.streamed():
        if source.split != "standard":
            raise UsageError(
                f"--split={source.split} is not supported yet for streamed datasets "
                f"({source.dataset}); load the dataset into RAM (an image folder without "
                "--image_size, an .npz file) or use --split=standard."
            )
        splits = open_streaming_dataset(
            source.dataset,
            source.data_dir,
            source.validation_fraction,
            seed=source.seed,
            skip_corrupt_images=source.skip_corrupt_images,
        )
        return StreamInputs(
            splits, source.image_size, source.crop_min_area, source.center_crop_fraction
        )
    splits = load_dataset(source.dataset, source.data_dir, source.validation_fraction, source.seed)
    if source.split == "standard":
        return ArrayInputs(splits)
    seen, unseen = split_classes(splits, source.unseen_classes)
    return ArrayInputs(seen, unseen=ArrayInputs(unseen))


def unseen_inputs(inputs):
    """The unseen classes' `ArrayInputs` of a class-disjoint run, or `None`."""
    return getattr(inputs, "unseen", None)


def downsampling_factor(encoder, stem):
    """How much `encoder` (with `stem`) shrinks an image's side: its smallest input side.

    Example:

    >>> downsampling_factor("resnet50", "imagenet")
    32
    """
    probe = build_encoder(encoder, (_PROBE_SIZE, _PROBE_SIZE, 3), 0.0625, stem)
    smallest = min(
        layer.output.shape[1]
        for layer in probe.layers
        if len(getattr(layer, "output", np.zeros(0)).shape) == 4 and layer.output.shape[1]
    )
    return _PROBE_SIZE // smallest


def check_image_size(image_size, encoder, stem):
    """Raises `UsageError` when `image_size` is below the encoder's downsampling factor.

    Example:

    >>> check_image_size(16, "resnet50", "imagenet")
    Traceback (most recent call last):
    ...
    supcon_tf.errors.UsageError: `image_size`=16 is too small for encoder resnet50 (stem \
imagenet): it downsamples by 32, so crops need at least 32 pixels a side (224 is ImageNet's).
    """
    factor = downsampling_factor(encoder, stem)
    if image_size < factor:
        raise UsageError(
            f"`image_size`={image_size} is too small for encoder {encoder} (stem {stem}): it "
            f"downsamples by {factor}, so crops need at least {factor} pixels a side (224 is "
            "ImageNet's)."
        )


class ArrayInputs:
    """A dataset held in RAM as a `supcon_tf.data.DatasetSplits` (`splits`).

    `unseen`: with the class-disjoint protocol, the `ArrayInputs` of the classes held out
    of training (`splits` then holds the seen ones); `None` otherwise.
    """

    streamed = False

    def __init__(self, splits, unseen=None):
        self.splits = splits
        self.unseen = unseen
        self.name = splits.name
        self.num_classes = splits.num_classes
        self.class_names = splits.class_names
        self.input_shape = splits.input_shape
        self.num_train = len(splits.x_train)
        self.num_validation = len(splits.x_val)
        self.num_test = len(splits.x_test)

    def example_images(self, views=None):
        """Two training images, to build a model (`views` is ignored: the model draws them)."""
        del views
        return self.splits.x_train[:2]

    def training_batches(
        self,
        batch_size,
        seed,
        epochs,
        initial_epoch,
        steps_done,
        labels=True,
        augmenter=None,
        views=None,
    ):
        """Shuffled global batches of epochs `initial_epoch..epochs-1`, minus `steps_done`.

        Epoch `e` is shuffled by a seed derived from `(seed, e)`, so the batches from a
        position are those an uninterrupted run sees there. `views` is ignored: the
        model draws its views from each image.
        """
        del views
        stream = make_dataset(
            self.splits.x_train,
            self.splits.y_train if labels else None,
            batch_size=batch_size,
            shuffle=True,
            seed=seed,
            augment=augmenter,
            drop_remainder=True,
            epochs=epochs,
            initial_epoch=initial_epoch,
        )
        return stream.skip(steps_done)

    def evaluation_batches(self, split, batch_size):
        """Batches of `(images, labels)` of `"validation"` or `"test"`; `None` if empty."""
        images, labels = {
            "validation": (self.splits.x_val, self.splits.y_val),
            "test": (self.splits.x_test, self.splits.y_test),
        }[split]
        if len(images) == 0:
            return None
        return make_dataset(images, labels, batch_size=batch_size)


class StreamInputs:
    """A streamed dataset (`supcon_tf.data.StreamingSplits`) cropped to `image_size`.

    `crop_min_area` and `center_crop_fraction` (`None`: by image size, see
    `supcon_tf.data.streaming.crop_settings`) set the training and evaluation crops.
    `validation_source` says where the validation split came from (see
    `supcon_tf.data.sources`).
    """

    streamed = True

    def __init__(self, splits, image_size, crop_min_area=None, center_crop_fraction=None):
        self.splits = splits
        self.image_size = image_size
        self.crop_min_area, self.center_crop_fraction = crop_settings(
            image_size, crop_min_area, center_crop_fraction
        )
        self.name = splits.name
        self.num_classes = splits.num_classes
        self.class_names = splits.class_names
        self.input_shape = splits.input_shape(image_size)
        self.num_train = splits.train.num_examples
        self.num_validation = splits.validation.num_examples
        self.num_test = splits.test.num_examples
        self.validation_source = splits.validation_source

    def example_images(self, views=None):
        """Zeros shaped like two training inputs (`[2, views, S, S, 3]` with views)."""
        shape = (2, *self.input_shape) if views is None else (2, views, *self.input_shape)
        return np.zeros(shape, np.float32)

    def training_batches(
        self,
        batch_size,
        seed,
        epochs,
        initial_epoch,
        steps_done,
        labels=True,
        augmenter=None,
        views=None,
    ):
        """The distributed training stream: per-replica batches from every input pipeline."""

        def dataset_fn(input_context):
            stream = make_training_stream(
                self.splits,
                batch_size,
                self.image_size,
                views=views,
                epochs=epochs,
                initial_epoch=initial_epoch,
                initial_step=steps_done,
                seed=seed,
                augment=augmenter,
                min_crop_area=self.crop_min_area,
                input_context=input_context,
            )
            return stream if labels else stream.map(lambda images, _: images)

        return tf.distribute.get_strategy().distribute_datasets_from_function(dataset_fn)

    def evaluation_batches(self, split, batch_size):
        """Central-crop batches of `"validation"` or `"test"` (or `"train"`, in file order,
        for a kNN bank); `None` if the split is empty."""
        if self.splits.split(split).num_examples == 0:
            return None
        return make_evaluation_stream(
            self.splits, split, batch_size, self.image_size, self.center_crop_fraction
        )
