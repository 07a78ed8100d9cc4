"""The sources of a stream: a dataset listed without reading its images.

An image folder, a folder of TFRecord shards or a TFDS dataset by name becomes a
`StreamingSplits` of file lists per split (`open_streaming_dataset`).
"""

import dataclasses
import logging

import numpy as np
import tensorflow as tf

from supcon_tf.data import folders, tfrecords

TFDS_PREFIX = "tfds:"


@dataclasses.dataclass(frozen=True)
class StreamSplit:
    """The files of one split.

    Attributes:
        files: image paths (image folders) or TFRecord shard paths.
        labels: the label of each image path; `None` for shards (labels are inside).
        num_examples: number of images.
    """

    files: tuple
    labels: tuple | None
    num_examples: int


@dataclasses.dataclass(frozen=True)
class StreamingSplits:
    """A dataset listed for streaming: the files of its splits and how to read them.

    Attributes:
        train, validation, test: `StreamSplit`s (validation is carved from the
            training images of an image folder; shard datasets have none).
        class_names: one name per class index.
        name: the dataset's name or path.
        kind: `"folder"`, `"tfrecord"` or `"tfds"`.
        image_key, label_key: the `tf.train.Example` features of shards.
        label_offset: subtracted from the labels of shards (1 for the classic
            ImageNet shards, whose labels are 1..1000).
        skip_corrupt_images: leave out unreadable images instead of stopping.
        skipped_images: the unreadable images left out so far (by this process).

    Example:

    >>> split = StreamSplit(files=("a.jpg", "b.jpg"), labels=(0, 1), num_examples=2)
    >>> splits = StreamingSplits(split, split, split, ("cat", "dog"), "pets", "folder")
    >>> splits.num_classes, splits.input_shape(32)
    (2, (32, 32, 3))
    """

    train: StreamSplit
    validation: StreamSplit
    test: StreamSplit
    class_names: tuple
    name: str
    kind: str
    image_key: str = tfrecords.IMAGE_KEY
    label_key: str = tfrecords.LABEL_KEY
    label_offset: int = 0
    skip_corrupt_images: bool = False
    skipped_images: list = dataclasses.field(default_factory=list, compare=False)

    @property
    def num_classes(self):
        """Number of classes."""
        return len(self.class_names)

    def input_shape(self, image_size):
        """`(image_size, image_size, 3)`: streamed images are cropped square RGB."""
        return (image_size, image_size, 3)

    def split(self, name):
        """The `StreamSplit` called `name` (`"train"`, `"validation"` or `"test"`)."""
        if name not in ("train", "validation", "test"):
            raise ValueError(f"Unknown split {name!r}. Expected 'train', 'validation' or 'test'.")
        return getattr(self, name)


def _resolve_path(name_or_path, data_dir):
    path = str(name_or_path)
    if data_dir is not None and not tf.io.gfile.exists(path):
        candidate = f"{str(data_dir).rstrip('/')}/{path}"
        if tf.io.gfile.exists(candidate):
            return candidate
    return path


def is_streamed(name_or_path, data_dir=None, image_size=None):
    """Whether a dataset takes the streaming path rather than the in-RAM one.

    TFDS names (`"tfds:..."`) and TFRecord shard folders always stream; an image
    folder streams when `image_size` is given (its images are then cropped to that
    size, so they may have any size); everything else (named datasets, `.npz` files,
    image folders without `image_size`) is decoded into RAM by `load_dataset`.

    Example:

    >>> is_streamed("tfds:imagenet2012"), is_streamed("digits", image_size=None)
    (True, False)
    """
    name = str(name_or_path)
    if name.startswith(TFDS_PREFIX):
        return True
    path = _resolve_path(name, data_dir)
    if tfrecords.is_shard_folder(path):
        return True
    return image_size is not None and tf.io.gfile.isdir(f"{path}/train")


def _open_folder(root, validation_fraction, seed):
    from supcon_tf.data.arrays import _split_validation

    class_names = folders.list_classes(root)
    paths, labels = folders.list_images(root, "train", class_names)
    test_paths, test_labels = folders.list_images(root, "test", class_names)
    train_paths, train_labels, validation_paths, validation_labels = _split_validation(
        np.asarray(paths), np.asarray(labels, dtype=np.int32), validation_fraction, seed
    )

    def split(split_paths, split_labels):
        return StreamSplit(
            files=tuple(str(path) for path in split_paths),
            labels=tuple(int(label) for label in split_labels),
            num_examples=len(split_paths),
        )

    return {
        "train": split(train_paths, train_labels),
        "validation": split(validation_paths, validation_labels),
        "test": split(test_paths, test_labels),
        "class_names": class_names,
    }


def _shard_split(shards, num_examples):
    return StreamSplit(files=tuple(shards), labels=None, num_examples=int(num_examples))


def _open_shards(directory):
    tfrecords.check_shards(directory)
    train = tfrecords.find_shards(directory, tfrecords.TRAIN_PREFIX)
    evaluation = []
    for prefix in tfrecords.EVALUATION_PREFIXES:
        evaluation = evaluation or tfrecords.find_shards(directory, prefix)
    if not evaluation:
        raise FileNotFoundError(
            f"TFRecord dataset {directory} has no evaluation shards; expected "
            f"{directory}/validation-*-of-* (or test-*) beside the train-* shards."
        )
    info = tfrecords.read_info(directory) or {}
    image_key = info.get("image_key", tfrecords.IMAGE_KEY)
    label_key = info.get("label_key", tfrecords.LABEL_KEY)
    label_offset = int(info.get("label_offset", 0))
    counts = info.get("num_examples", {})
    if "class_names" in info:
        class_names = tuple(info["class_names"])
    else:
        logging.warning(
            "%s has no %s: reading every label once to count the classes.",
            directory,
            tfrecords.INFO_FILE,
        )
        largest = tfrecords.largest_label(train, label_key) - label_offset
        class_names = tuple(str(index) for index in range(largest + 1))
    return {
        "train": _shard_split(train, counts.get("train") or tfrecords.count_records(train)),
        "validation": _shard_split((), 0),
        "test": _shard_split(evaluation, counts.get("test") or tfrecords.count_records(evaluation)),
        "class_names": class_names,
        "image_key": image_key,
        "label_key": label_key,
        "label_offset": label_offset,
    }


def _open_tfds(name, data_dir):
    try:
        import tensorflow_datasets as tfds
    except ImportError as error:
        raise ImportError(
            f"Dataset {name!r} needs tensorflow-datasets: pip install 'supcon_tf[tfds]'."
        ) from error
    builder = tfds.builder(name[len(TFDS_PREFIX) :], data_dir=data_dir)
    info = builder.info
    if str(info.file_format).lower().split(".")[-1] != "tfrecord":
        raise ValueError(
            f"TFDS dataset {name!r} is stored as {info.file_format}; streaming reads TFDS "
            "datasets prepared as TFRecord files (the default file_format)."
        )
    available = list(info.splits.keys())
    if "train" not in available:
        raise ValueError(f"TFDS dataset {name!r} has no 'train' split (it has {available}).")
    test_name = next((split for split in ("validation", "test") if split in available), None)
    if test_name is None:
        raise ValueError(
            f"TFDS dataset {name!r} needs a 'validation' or 'test' split, it has {available}."
        )
    for key in ("image", "label"):
        if key not in info.features:
            raise ValueError(
                f"TFDS dataset {name!r} has no {key!r} feature (it has {list(info.features)})."
            )

    def split(split_name):
        split_info = info.splits[split_name]
        return _shard_split([str(path) for path in split_info.filepaths], split_info.num_examples)

    return {
        "train": split("train"),
        "validation": _shard_split((), 0),
        "test": split(test_name),
        "class_names": tuple(info.features["label"].names),
        "image_key": "image",
        "label_key": "label",
        "label_offset": 0,
    }


def open_streaming_dataset(
    name_or_path, data_dir=None, validation_fraction=0.1, seed=0, skip_corrupt_images=False
):
    """Lists a dataset for streaming (no image is read here).

    Args:
        name_or_path: an image folder (`train/<class>/`, `test/<class>/`), a folder of
            TFRecord shards (`train-*`, `validation-*` or `test-*`, optional
            `dataset_info.json`) or `"tfds:<name>"`.
        data_dir: where TFDS datasets are prepared; a relative path is also looked
            up there.
        validation_fraction: share of an image folder's training images held out
            (stratified, seeded) for validation, in `[0, 1)`; shard datasets have no
            validation split.
        seed: seed of the validation split.
        skip_corrupt_images: leave out unreadable images (logged and listed in
            `skipped_images`) instead of stopping with an error naming the file.

    Returns:
        A `StreamingSplits`.

    Raises:
        FileNotFoundError: a missing path, split folder or evaluation shards.
        ValueError: an empty class folder, a bad TFDS dataset, a bad fraction.

    Example:

    >>> open_streaming_dataset("/no/such/folder")
    Traceback (most recent call last):
    ...
    FileNotFoundError: Dataset path /no/such/folder does not exist.
    """
    if isinstance(validation_fraction, bool) or not (
        isinstance(validation_fraction, (int, float)) and 0 <= validation_fraction < 1
    ):
        raise ValueError(f"`validation_fraction` must be in [0, 1), got {validation_fraction!r}.")
    name = str(name_or_path)
    if name.startswith(TFDS_PREFIX):
        kind, listing = "tfds", _open_tfds(name, data_dir)
    else:
        path = _resolve_path(name, data_dir)
        if not tf.io.gfile.isdir(path):
            raise FileNotFoundError(f"Dataset path {path} does not exist.")
        if tfrecords.is_shard_folder(path):
            kind, listing = "tfrecord", _open_shards(path)
        else:
            kind, listing = "folder", _open_folder(path, validation_fraction, seed)
    return StreamingSplits(
        name=name, kind=kind, skip_corrupt_images=bool(skip_corrupt_images), **listing
    )
