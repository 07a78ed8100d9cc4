"""The sources of a stream: a dataset listed without reading its images.

An image folder, a folder of TFRecord shards or a TFDS dataset by name becomes a
`StreamingSplits` of file lists per split (`open_streaming_dataset`), with a validation
split for model selection, deterministic and of exact size:

- an image folder: a stratified, seeded share of the training images;
- TFRecord shards: the training records that `supcon_tf.data.holdout` holds out by a
  hash of `(seed, shard, record)`, counted from the shards' record counts;
- a TFDS dataset: its own `validation` split when it also has a `test` split, else the
  last records of `train`, by TFDS's split slicing (`train[:N]` / `train[N:]`).

The evaluation shards of a shard folder (`validation-*` or `test-*`), and a TFDS
dataset's `validation` split when it has no `test` split, are the test split.
"""

import dataclasses
import logging

import numpy as np
import tensorflow as tf

from supcon_tf.data import folders, tfrecords
from supcon_tf.data.holdout import Holdout, count_held_out
from supcon_tf.errors import DataError

TFDS_PREFIX = "tfds:"


@dataclasses.dataclass(frozen=True)
class StreamSplit:
    """The files of one split.

    Attributes:
        files: image paths (image folders) or TFRecord shard paths.
        labels: the label of each image path; `None` for shards (labels are inside).
        num_examples: number of images (exact: steps per epoch rest on it).
        holdout: for shards, the `Holdout` that picks the split's records (the
            held-out validation records, or the training records without them);
            `None`: every record.
        ranges: for shards, `(skip, take)` records of each file (a slice of a TFDS
            split); `None`: whole files.
    """

    files: tuple
    labels: tuple | None
    num_examples: int
    holdout: Holdout | None = None
    ranges: tuple | None = None


@dataclasses.dataclass(frozen=True)
class StreamingSplits:
    """A dataset listed for streaming: the files of its splits and how to read them.

    Attributes:
        train, validation, test: `StreamSplit`s (see the module docstring for where
            validation comes from).
        class_names: one name per class index.
        name: the dataset's name or path.
        kind: `"folder"`, `"tfrecord"` or `"tfds"`.
        image_key, label_key: the `tf.train.Example` features of shards.
        label_offset: subtracted from the labels of shards (1 for the classic
            ImageNet shards, whose labels are 1..1000).
        skip_corrupt_images: leave out unreadable images instead of stopping.
        skipped_images: the unreadable images left out so far (by this process).
        validation_source: where the validation split came from, in words.

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
    validation_source: str = ""

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


def _percent(fraction):
    return f"{fraction * 100:g}%"


def _no_validation():
    return _shard_split((), 0), "none (validation_fraction=0)"


def _check_held_out(held, total, validation_fraction, name):
    """`DataError` unless the held-out share leaves records in both splits."""
    if held < 1 or held >= total:
        raise DataError(
            f"`validation_fraction`={validation_fraction} of the {total} training records of "
            f"{name} holds out {held} for validation; need at least one in each split: "
            "change --validation_fraction (0 for none) or add records."
        )


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

    source = _no_validation()[1]
    if validation_fraction > 0:
        source = (
            f"{_percent(validation_fraction)} of the training images, stratified, seed {seed}: "
            f"{len(validation_paths)} images"
        )
    return {
        "train": split(train_paths, train_labels),
        "validation": split(validation_paths, validation_labels),
        "test": split(test_paths, test_labels),
        "class_names": class_names,
        "validation_source": source,
    }


def _shard_split(shards, num_examples, holdout=None, ranges=None):
    return StreamSplit(
        files=tuple(shards),
        labels=None,
        num_examples=int(num_examples),
        holdout=holdout,
        ranges=ranges,
    )


def _train_shard_lengths(directory, info, train):
    """The records of each train shard: from `dataset_info.json`, else counted once."""
    listed = info.get("shard_lengths", {}).get(tfrecords.TRAIN_PREFIX)
    if isinstance(listed, list) and len(listed) == len(train):
        return [int(length) for length in listed]
    logging.warning(
        "%s lists no shard_lengths for its %d train shards: reading every record once to "
        "count them for the validation split (supcon-prepare writes them; "
        "--validation_fraction=0 skips the split).",
        directory,
        len(train),
    )
    return tfrecords.shard_lengths(train)


def _open_shards(directory, validation_fraction, seed):
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
    if validation_fraction == 0:
        training = _shard_split(train, counts.get("train") or tfrecords.count_records(train))
        validation, source = _no_validation()
    else:
        lengths = _train_shard_lengths(directory, info, train)
        held = count_held_out(lengths, seed, validation_fraction)
        _check_held_out(held, sum(lengths), validation_fraction, directory)
        training = _shard_split(
            train, sum(lengths) - held, Holdout(seed, validation_fraction, validation=False)
        )
        validation = _shard_split(train, held, Holdout(seed, validation_fraction, validation=True))
        source = (
            f"{_percent(validation_fraction)} of the train shards' records, held out by a hash "
            f"of seed {seed}: {held} records"
        )
    return {
        "train": training,
        "validation": validation,
        "test": _shard_split(evaluation, counts.get("test") or tfrecords.count_records(evaluation)),
        "class_names": class_names,
        "image_key": image_key,
        "label_key": label_key,
        "label_offset": label_offset,
        "validation_source": source,
    }


def _labelled(split_info):
    """Whether a TFDS split's first record has a label (imagenet2012's test split has -1)."""
    first = list(tf.data.TFRecordDataset(str(split_info.filepaths[0])).take(1))
    if not first:
        return False
    label = tf.train.Example.FromString(first[0].numpy()).features.feature["label"]
    return bool(label.int64_list.value) and label.int64_list.value[0] >= 0


def _tfds_split(info, spec):
    """The files of a TFDS split or slice (`"train[:900]"`), with the records of each."""
    split_info = info.splits[spec]
    instructions = split_info.file_instructions
    return _shard_split(
        [str(instruction.filename) for instruction in instructions],
        split_info.num_examples,
        ranges=tuple((int(item.skip), int(item.take)) for item in instructions),
    )


def _open_tfds(name, data_dir, validation_fraction):
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
    train = _tfds_split(info, "train")
    if test_name == "validation" and "test" in available and _labelled(info.splits["test"]):
        # Its own validation and (labelled) test splits, used as they are.
        test_name, validation = "test", _tfds_split(info, "validation")
        source = f"TFDS split 'validation' of {name}: {validation.num_examples} records"
    elif validation_fraction == 0:
        validation, source = _no_validation()
    else:
        total = train.num_examples
        held = int(round(validation_fraction * total))
        _check_held_out(held, total, validation_fraction, name)
        train = _tfds_split(info, f"train[:{total - held}]")
        validation = _tfds_split(info, f"train[{total - held}:]")
        source = (
            f"the last {_percent(validation_fraction)} of TFDS split 'train' of {name} "
            f"(train[{total - held}:]): {held} records"
        )
    return {
        "train": train,
        "validation": validation,
        "test": _tfds_split(info, test_name),
        "class_names": tuple(info.features["label"].names),
        "image_key": "image",
        "label_key": "label",
        "label_offset": 0,
        "validation_source": source,
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
        validation_fraction: share of the training data held out for validation, in
            `[0, 1)` (see the module docstring; a TFDS dataset's own validation split
            is used whatever it is); 0: no validation split.
        seed: seed of the validation split (image folders and shards).
        skip_corrupt_images: leave out unreadable images (logged and listed in
            `skipped_images`) instead of stopping with an error naming the file.

    Returns:
        A `StreamingSplits`.

    Raises:
        FileNotFoundError: a missing path, split folder or evaluation shards.
        ValueError: an empty class folder, a bad TFDS dataset, a bad fraction.
        DataError: a fraction that leaves no record in the validation or training split.

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
        kind, listing = "tfds", _open_tfds(name, data_dir, validation_fraction)
    else:
        path = _resolve_path(name, data_dir)
        if not tf.io.gfile.isdir(path):
            raise FileNotFoundError(f"Dataset path {path} does not exist.")
        if tfrecords.is_shard_folder(path):
            kind, listing = "tfrecord", _open_shards(path, validation_fraction, seed)
        else:
            kind, listing = "folder", _open_folder(path, validation_fraction, seed)
    return StreamingSplits(
        name=name, kind=kind, skip_corrupt_images=bool(skip_corrupt_images), **listing
    )
