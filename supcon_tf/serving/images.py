"""A dataset read for embedding, with the run's evaluation preprocessing and file names.

`open_images(data, split, spec, batch_size)` reads one split of a dataset through the
readers of `supcon_tf.data`, as the run read its data at evaluation: a streamed run's
data through `make_evaluation_stream` (its image size and central crop; image folders,
TFRecord shards, TFDS), a run trained in RAM through `load_dataset` (same-size images:
named datasets, `.npz`, image folders). Nothing is held out for validation: `"train"`
is every training image, in file order. Each item has a name: its file's path in an
image folder, else its index in the split (shards and arrays have no file names).

Example:

>>> from supcon_tf.serving.runs import InputSpec
>>> images = open_images("digits", "test", InputSpec(8, 8, 1), batch_size=100)
>>> images.count, images.names[:2], images.class_names[:3]
(360, ['0', '1'], ['0', '1', '2'])
"""

import dataclasses

from supcon_tf.data import folders, load_dataset, make_dataset, make_evaluation_stream
from supcon_tf.data.arrays import resolve_dataset
from supcon_tf.data.sources import open_streaming_dataset
from supcon_tf.errors import DataError, UsageError

SPLITS = ("train", "test")


@dataclasses.dataclass
class Images:
    """One split of a dataset, ready to embed.

    Attributes:
        batches: a `tf.data.Dataset` of `(images, labels)`: preprocessed float32
            `[B, *spec.shape]` in `[0, 1]` and integer labels, in `names` order.
        names: one name per image (a path, or the index in the split as a string).
        class_names: the dataset's class names; the labels index them.
        count: number of images.
    """

    batches: object
    names: list
    class_names: list
    count: int


def open_images(data, split, spec, batch_size, data_dir=None):
    """`Images` of `split` (`"train"` or `"test"`) of `data`, read as the run reads images.

    Args:
        data: a dataset as `supcon-train --dataset` takes it.
        split: `"train"` (every training image) or `"test"`.
        spec: the run's `supcon_tf.serving.runs.InputSpec`.
        batch_size: images per batch.
        data_dir: where named datasets and relative paths are looked up.

    Raises:
        UsageError: an unknown split.
        DataError: data the run cannot read (shards for a run trained in RAM, images of
            another size than a run trained in RAM), or missing data.
    """
    if split not in SPLITS:
        raise UsageError(f"--split={split} is not a split; use one of {', '.join(SPLITS)}")
    kind, location = resolve_dataset(data, data_dir)
    if spec.streamed:
        return _streamed(data, kind, split, spec, batch_size, data_dir)
    if kind in ("tfrecord", "tfds"):
        raise DataError(
            f"{data} is streamed (TFRecord shards or TFDS), but the run trained in RAM on "
            f"{spec.height}x{spec.width}x{spec.channels} images; pass an image folder, "
            ".npz file or named dataset of that size"
        )
    splits = load_dataset(data, data_dir, validation_fraction=0.0)
    if tuple(splits.input_shape) != spec.shape:
        raise DataError(
            f"{data} has images of shape {tuple(splits.input_shape)}, the run trained on "
            f"{spec.shape}; pass images of the run's size (the exported SavedModel resizes "
            "images of any size)"
        )
    images, labels = (
        (splits.x_train, splits.y_train) if split == "train" else (splits.x_test, splits.y_test)
    )
    if kind == "folder":
        names = folders.list_images(location, split, splits.class_names)[0]
    else:
        names = [str(index) for index in range(len(images))]
    return Images(
        batches=make_dataset(images, labels, batch_size=batch_size),
        names=list(names),
        class_names=list(splits.class_names),
        count=len(images),
    )


def _streamed(data, kind, split, spec, batch_size, data_dir):
    if kind not in ("folder", "tfrecord", "tfds"):
        raise DataError(
            f"{data} is loaded into RAM, but the run streamed its images at "
            f"{spec.height}x{spec.width}; pass an image folder, TFRecord shards or a TFDS "
            "dataset"
        )
    splits = open_streaming_dataset(data, data_dir, validation_fraction=0.0)
    chosen = splits.split(split)
    batches = make_evaluation_stream(
        splits, split, batch_size, spec.height, spec.center_crop_fraction
    )
    if kind == "folder":
        names = [str(path) for path in chosen.files]
    else:
        names = [str(index) for index in range(chosen.num_examples)]
    return Images(
        batches=batches,
        names=names,
        class_names=[str(name) for name in splits.class_names],
        count=chosen.num_examples,
    )
