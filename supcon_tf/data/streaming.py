"""Streaming `tf.data` pipelines for datasets too large for RAM, of images of any size.

`open_streaming_dataset` lists a dataset without reading its images: an image folder
(`<root>/train/<class>/`, `<root>/test/<class>/`; JPEG, PNG, BMP, GIF of any size,
greyscale, RGB or CMYK), a folder of TFRecord shards (`train-*`, `validation-*`; see
`supcon_tf.data.tfrecords`) or a TFDS dataset by name (`"tfds:imagenet2012"`, read from
its prepared TFRecord files; needs the `tensorflow-datasets` extra).

`make_training_stream` reads it epoch by epoch: the files are shuffled with a seed
derived from `(seed, epoch)`, sharded over the input pipelines by file (`InputContext`),
read in parallel (shards with `interleave`), shuffled in a bounded buffer (records),
decoded, cropped and batched in parallel, and prefetched. Each training view is a
random-resized crop of the decoded image at `image_size` (the SimCLR/SupCon
convention) drawn with a stateless seed of `(seed, epoch, position in the epoch)`, so
the stream is the same whether or not a run was interrupted: `initial_epoch` and
`initial_step` resume it at a given batch without decoding what came before.
`make_evaluation_stream` resizes a central crop of the shorter side. The crop sizes
follow the image size, as in the paper's code: images of `SMALL_IMAGE_SIZE` (96) px
and above train on crops of 8-100 % of the area and evaluate on a central crop of
0.875 (the ImageNet convention); smaller ones (CIFAR-10 at 32 px) train on 20-100 %
and evaluate on the whole image. `min_crop_area=1.0` trains on whole images (no crop:
a small dataset streamed at its own size then sees exactly the pixels it would in
RAM). Images come out as float32 RGB in `[0, 1]`.

A corrupt or truncated image stops the stream with an error naming its file; with
`skip_corrupt_images=True` it is left out, logged and listed in
`StreamingSplits.skipped_images`.

Example:

>>> import os, tempfile
>>> import numpy as np, tensorflow as tf
>>> root = tempfile.mkdtemp()
>>> for split in ("train", "test"):
...     for name, size in (("cat", 20), ("dog", 31)):
...         os.makedirs(os.path.join(root, split, name))
...         for index in range(4):
...             image = np.full((size, size + index, 3), 9 * index, np.uint8)
...             path = os.path.join(root, split, name, f"{index}.jpg")
...             tf.io.write_file(path, tf.io.encode_jpeg(image))
>>> splits = open_streaming_dataset(root, validation_fraction=0.25)
>>> splits.num_classes, splits.train.num_examples, splits.validation.num_examples
(2, 6, 2)
>>> stream = make_training_stream(splits, batch_size=2, image_size=16, views=2)
>>> images, labels = next(iter(stream))
>>> tuple(images.shape), images.dtype.name
((2, 2, 16, 16, 3), 'float32')
>>> images, labels = next(iter(make_evaluation_stream(splits, "test", 4, image_size=16)))
>>> tuple(images.shape), labels.numpy().tolist()
((4, 16, 16, 3), [0, 0, 0, 0])
"""

import dataclasses
import logging
import re

import numpy as np
import tensorflow as tf

from supcon_tf.data import folders, tfrecords

TFDS_PREFIX = "tfds:"
# Resize + central crop of this fraction of the shorter side for evaluation (224 / 256).
EVALUATION_CROP_FRACTION = 0.875
# Images below this side (CIFAR-size) get the CIFAR crops: area 0.2-1, no central crop.
SMALL_IMAGE_SIZE = 96
# Records kept in the shuffle buffer of TFRecord / TFDS streams (folders need none:
# their file list is permuted as a whole every epoch).
SHUFFLE_BUFFER_RECORDS = 4096
_BUFFER_SEED = 7919
# A label value that no record has: marks a record without the label feature.
_MISSING_LABEL = -(2**62)
_ERROR_PATTERN = re.compile(r"assertion failed: \[(.*?)\]", re.DOTALL)


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


def _check_image_size(image_size):
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 1:
        raise ValueError(f"`image_size` must be a positive integer, got {image_size!r}.")


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


# ---------------------------------------------------------------------------------------
# Reading: elements are dicts {"name", "payload", "label"}: the image's file (or the
# shard it came from), its encoded bytes (empty for a file not read yet) and its label.
# ---------------------------------------------------------------------------------------


def _input_shard(input_context):
    """`(number of input pipelines, this pipeline's index, replicas it feeds)`."""
    if input_context is None:
        return 1, 0, 1
    pipelines = input_context.num_input_pipelines
    return (
        pipelines,
        input_context.input_pipeline_id,
        input_context.num_replicas_in_sync // pipelines,
    )


def _file_dataset(splits, split, shuffle_seed, pipelines, pipeline_id):
    """The split's files (and labels), permuted by `shuffle_seed`, this pipeline's share."""
    if len(split.files) < pipelines:
        raise ValueError(
            f"{splits.name} has {len(split.files)} files for {pipelines} input pipelines; "
            "each pipeline reads whole files, so write at least one shard per pipeline."
        )
    files = tf.constant(split.files)
    labels = tf.constant(split.labels if split.labels is not None else [0] * len(split.files))
    if shuffle_seed is not None:
        order = tf.random.experimental.stateless_shuffle(tf.range(tf.size(files)), shuffle_seed)
        files, labels = tf.gather(files, order), tf.gather(labels, order)
    dataset = tf.data.Dataset.from_tensor_slices((files, tf.cast(labels, tf.int64)))
    return dataset.shard(pipelines, pipeline_id)


def _assertion(condition, *parts):
    """Fails with `InvalidArgumentError('assertion failed: [<parts joined>]')` if not `condition`."""
    parts = [tf.convert_to_tensor(part) for part in parts]
    text = [part if part.dtype == tf.string else tf.strings.as_string(part) for part in parts]
    return tf.debugging.Assert(condition, [tf.strings.join(text)])


def _parse_record(splits, shard, record):
    features = tf.io.parse_single_example(
        record,
        {
            splits.image_key: tf.io.FixedLenFeature([], tf.string, default_value=""),
            splits.label_key: tf.io.FixedLenFeature([], tf.int64, default_value=_MISSING_LABEL),
        },
    )
    encoded, label = features[splits.image_key], features[splits.label_key]
    checks = [
        _assertion(
            tf.strings.length(encoded) > 0,
            "TFRecord file ",
            shard,
            f" has a record without the feature '{splits.image_key}' (the encoded image).",
        ),
        _assertion(
            label != _MISSING_LABEL,
            "TFRecord file ",
            shard,
            f" has a record without the feature '{splits.label_key}' (the class label).",
        ),
    ]
    with tf.control_dependencies(checks):
        label = label - splits.label_offset
        in_range = (label >= 0) & (label < splits.num_classes)
        check = _assertion(
            in_range | (label == _MISSING_LABEL - splits.label_offset),
            "TFRecord file ",
            shard,
            " has label ",
            label + splits.label_offset,
            f", outside [{splits.label_offset}, {splits.num_classes + splits.label_offset}) "
            f"for {splits.num_classes} classes with label offset {splits.label_offset}.",
        )
    with tf.control_dependencies([check]):
        return {"name": shard, "payload": tf.identity(encoded), "label": label}


def _records(splits, split, shuffle_seed, pipelines, pipeline_id, repeat):
    """The split's elements, shuffled by `shuffle_seed`: one pass, or passes without end.

    A pass reads each of this pipeline's files once; repeating passes (each shuffled
    anew, deterministically) lets every pipeline fill its epoch when the files do not
    divide evenly between pipelines.
    """
    files = _file_dataset(splits, split, shuffle_seed, pipelines, pipeline_id)
    if splits.kind == "folder":
        records = files.map(lambda path, label: {"name": path, "payload": "", "label": label})
        return records.repeat() if repeat else records

    def read_shard(shard, _):
        records = tf.data.TFRecordDataset(shard)
        return records.map(lambda record: _parse_record(splits, shard, record))

    records = files.interleave(
        read_shard,
        cycle_length=min(16, max(1, len(split.files) // pipelines)),
        block_length=1,
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )
    if shuffle_seed is not None:
        # The buffer's own seed is fixed: the file order already changes every epoch.
        buffer = min(SHUFFLE_BUFFER_RECORDS, max(1, split.num_examples // pipelines))
        records = records.shuffle(buffer, seed=_BUFFER_SEED)
    return records.repeat() if repeat else records


def _decode_image(element):
    """Decodes to uint8 RGB `[H, W, 3]` (greyscale is repeated, CMYK and alpha converted)."""
    encoded = element["payload"]
    if element["payload"].dtype == tf.string:
        encoded = tf.cond(
            tf.strings.length(encoded) > 0,
            lambda: encoded,
            lambda: tf.io.read_file(element["name"]),
        )
    image = tf.io.decode_image(encoded, channels=3, expand_animations=False)
    image = tf.ensure_shape(image, [None, None, 3])
    return {**element, "image": image, "readable": tf.constant(True)}


def _decoded(element):
    """One element with `image` and `readable`; an unreadable image gives `readable=False`."""
    one = tf.data.Dataset.from_tensors(element)
    decoded = one.map(_decode_image).ignore_errors()
    placeholder = one.map(
        lambda item: {**item, "image": tf.zeros([1, 1, 3], tf.uint8), "readable": False}
    )
    return decoded.concatenate(placeholder).take(1)


def _decode(splits, elements):
    """Decodes in parallel; stops on (or, when configured, leaves out) unreadable images."""
    elements = elements.interleave(
        _decoded, block_length=1, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
    )
    if splits.skip_corrupt_images:

        def record_skip(name):
            path = name.numpy().decode()
            if path not in splits.skipped_images:  # an epoch may read a file twice
                splits.skipped_images.append(path)
                logging.warning("Skipping unreadable image %s (skip_corrupt_images).", path)
            return False

        def keep(element):
            return tf.cond(
                element["readable"],
                lambda: tf.constant(True),
                lambda: tf.py_function(record_skip, [element["name"]], tf.bool),
            )

        return elements.filter(keep)

    where = "in TFRecord file " if splits.kind != "folder" else ""

    def check(element):
        checked = _assertion(
            element["readable"],
            f"Cannot read image {where}",
            element["name"],
            ": it is not a readable image (corrupt or truncated). Remove or replace it, or "
            "skip unreadable images (skip_corrupt_images=True, --skip_corrupt_images).",
        )
        with tf.control_dependencies([checked]):
            return {**element, "image": tf.identity(element["image"])}

    return elements.map(check, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


# ---------------------------------------------------------------------------------------
# Crops.
# ---------------------------------------------------------------------------------------


def _resized(image, image_size):
    resized = tf.image.resize(image, [image_size, image_size], method="bilinear")
    resized = tf.ensure_shape(resized, [image_size, image_size, 3])
    return tf.clip_by_value(resized / 255.0, 0.0, 1.0)


def random_resized_crop(image, image_size, seed, min_crop_area=0.08):
    """A random-resized crop of one uint8 image, as float32 `[image_size, image_size, 3]`.

    The crop covers a fraction of the image area uniform in `[min_crop_area, 1]` with
    an aspect ratio in `[3/4, 4/3]` (Szegedy et al., 2015; SimCLR), drawn from the
    stateless `seed` (shape `[2]`); after 10 failed draws the whole image is used.
    `min_crop_area=1.0` resizes the whole image (no crop).

    Example:

    >>> image = tf.zeros([50, 80, 3], tf.uint8)
    >>> tuple(random_resized_crop(image, 24, seed=[0, 1]).shape)
    (24, 24, 3)
    """
    check_fraction("min_crop_area", min_crop_area)
    if min_crop_area == 1.0:
        return _resized(image, image_size)
    begin, size, _ = tf.image.stateless_sample_distorted_bounding_box(
        tf.shape(image),
        bounding_boxes=tf.constant([0.0, 0.0, 1.0, 1.0], shape=[1, 1, 4]),
        seed=seed,
        min_object_covered=0.0,
        aspect_ratio_range=(3 / 4, 4 / 3),
        area_range=(min_crop_area, 1.0),
        max_attempts=10,
        use_image_if_no_bounding_boxes=True,
    )
    return _resized(tf.slice(image, begin, size), image_size)


def central_crop(image, image_size, fraction=EVALUATION_CROP_FRACTION):
    """The central square of `fraction` of the shorter side, resized to `image_size`.

    Example:

    >>> image = tf.reshape(tf.range(16 * 16 * 3, dtype=tf.int32) % 256, [16, 16, 3])
    >>> tuple(central_crop(tf.cast(image, tf.uint8), 8, fraction=0.5).shape)
    (8, 8, 3)
    """
    check_fraction("fraction", fraction)
    shape = tf.shape(image)
    height, width = shape[0], shape[1]
    shorter = tf.cast(tf.minimum(height, width), tf.float32)
    side = tf.maximum(tf.cast(tf.round(fraction * shorter), tf.int32), 1)
    top, left = (height - side) // 2, (width - side) // 2
    return _resized(image[top : top + side, left : left + side], image_size)


def crop_settings(image_size, min_crop_area=None, center_crop_fraction=None):
    """`(min_crop_area, center_crop_fraction)` for `image_size`, `None` meaning the default.

    The defaults follow the paper's code: ImageNet-size crops (`>= SMALL_IMAGE_SIZE`)
    train on 8-100 % of the area and evaluate on a 0.875 central crop; CIFAR-size ones
    train on 20-100 % and evaluate on the whole image.

    >>> crop_settings(224), crop_settings(32), crop_settings(32, 1.0, 0.875)
    ((0.08, 0.875), (0.2, 1.0), (1.0, 0.875))
    """
    small = image_size < SMALL_IMAGE_SIZE
    if min_crop_area is None:
        min_crop_area = 0.2 if small else 0.08
    if center_crop_fraction is None:
        center_crop_fraction = 1.0 if small else EVALUATION_CROP_FRACTION
    check_fraction("min_crop_area", min_crop_area)
    check_fraction("center_crop_fraction", center_crop_fraction)
    return min_crop_area, center_crop_fraction


def check_fraction(name, value):
    """Raises `ValueError` naming `name` unless `value` is a number in (0, 1]."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1:
        raise ValueError(f"`{name}` must be a number in (0, 1], got {value!r}.")


def _check_batch(batch_size, input_context):
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"`batch_size` must be a positive integer, got {batch_size!r}.")
    if input_context is None:
        return batch_size
    return input_context.get_per_replica_batch_size(batch_size)


def training_steps_per_epoch(splits, batch_size):
    """Global batches of `batch_size` per training epoch (the remainder is dropped).

    Example:

    >>> split = StreamSplit(files=("a.jpg",) * 10, labels=(0,) * 10, num_examples=10)
    >>> training_steps_per_epoch(StreamingSplits(split, split, split, ("a",), "x", "folder"), 4)
    2
    """
    steps = splits.train.num_examples // batch_size
    if steps < 1:
        raise ValueError(
            f"The batch size {batch_size} exceeds the {splits.train.num_examples} training "
            f"images of {splits.name}; lower the batch size."
        )
    return steps


def make_training_stream(
    splits,
    batch_size,
    image_size,
    views=None,
    epochs=1,
    initial_epoch=0,
    initial_step=0,
    seed=0,
    augment=None,
    min_crop_area=None,
    input_context=None,
):
    """Training batches of random-resized crops, epoch after epoch, for one input pipeline.

    Every epoch has `training_steps_per_epoch(splits, batch_size)` global batches; the
    files are re-permuted every epoch from `(seed, epoch)` and each pipeline (of
    `input_context.num_input_pipelines`, e.g. one per worker or TPU host) reads its own
    share of them, batched per replica. Use it through
    `strategy.distribute_datasets_from_function(lambda context: make_training_stream(...,
    input_context=context))`.

    Args:
        splits: a `StreamingSplits` (see `open_streaming_dataset`).
        batch_size: global batch size (all replicas together).
        image_size: side of the square crops.
        views: `None` for one crop per image (`[B, S, S, 3]`), or the number of
            independent crops per image (`[B, views, S, S, 3]`, for `SupConModel`).
        epochs: index of the last epoch plus one.
        initial_epoch: the first epoch of the stream (resuming).
        initial_step: batches of `initial_epoch` already done (resuming mid-epoch);
            they are skipped before decoding.
        seed: seed of the file order, record shuffle and crops.
        augment: optional Keras layer applied to each batch (to every view) with
            `training=True`, in parallel.
        min_crop_area: smallest crop area (fraction of the image); `None`: 0.08 for
            ImageNet-size crops, 0.2 below `SMALL_IMAGE_SIZE` (SupCon's code); 1.0: no
            crop, the whole image resized.
        input_context: the `tf.distribute.InputContext` of this pipeline (`None`: one
            pipeline, global batches).

    Returns:
        A `tf.data.Dataset` of `(images, labels)`.

    Raises:
        ValueError: bad sizes, a batch larger than the training split, fewer files
            than input pipelines.
    """
    _check_image_size(image_size)
    min_crop_area, _ = crop_settings(image_size, min_crop_area)
    per_replica = _check_batch(batch_size, input_context)
    steps = training_steps_per_epoch(splits, batch_size)
    if not 0 <= initial_epoch < epochs:
        raise ValueError(f"`initial_epoch`={initial_epoch} must be in [0, epochs={epochs}).")
    if not 0 <= initial_step < steps:
        raise ValueError(f"`initial_step`={initial_step} must be in [0, {steps}).")
    if views is not None and (isinstance(views, bool) or not isinstance(views, int) or views < 1):
        raise ValueError(f"`views` must be None or a positive integer, got {views!r}.")
    pipelines, pipeline_id, replicas = _input_shard(input_context)
    pipeline_batch = per_replica * replicas
    examples_per_epoch = steps * pipeline_batch
    # Left-out images shorten an epoch: one spare epoch keeps the stream long enough.
    last_epoch = epochs + 1 if splits.skip_corrupt_images else epochs

    def one_epoch(epoch):
        shuffle_seed = tf.stack([tf.constant(seed, tf.int64), epoch])
        records = _records(splits, splits.train, shuffle_seed, pipelines, pipeline_id, True)
        records = records.take(examples_per_epoch).enumerate()
        return records.map(lambda index, element: {**element, "epoch": epoch, "index": index})

    elements = tf.data.Dataset.range(initial_epoch, last_epoch).flat_map(one_epoch)
    elements = _decode(splits, elements.skip(initial_step * pipeline_batch))
    seed_base = seed * 1_000_003 + pipeline_id

    def crops(element):
        crop_seed = tf.stack(
            [tf.constant(seed_base, tf.int64), element["epoch"] * 2**32 + element["index"]]
        )
        if views is None:
            images = random_resized_crop(element["image"], image_size, crop_seed, min_crop_area)
        else:
            images = tf.stack(
                [
                    random_resized_crop(
                        element["image"],
                        image_size,
                        tf.random.experimental.stateless_fold_in(crop_seed, view),
                        min_crop_area,
                    )
                    for view in range(views)
                ]
            )
        return images, tf.cast(element["label"], tf.int32)

    batches = elements.map(crops, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    batches = batches.batch(per_replica, drop_remainder=True)
    if augment is not None:

        def augment_batch(images, labels):
            if views is None:
                return augment(images, training=True), labels
            flat = tf.reshape(images, [-1, image_size, image_size, 3])
            flat = augment(flat, training=True)
            return tf.reshape(flat, tf.shape(images)), labels

        batches = batches.map(augment_batch, num_parallel_calls=tf.data.AUTOTUNE)
    return batches.prefetch(tf.data.AUTOTUNE)


def make_evaluation_stream(
    splits, split, batch_size, image_size, center_crop_fraction=None, input_context=None
):
    """One pass over a split in file order: central crops resized to `image_size`.

    Args:
        splits: a `StreamingSplits`.
        split: `"train"`, `"validation"` or `"test"`.
        batch_size: global batch size (per replica with an `input_context`).
        image_size: side of the square crops.
        center_crop_fraction: side of the central crop, as a fraction of the shorter
            side; `None`: 0.875 for ImageNet-size crops, 1.0 (the whole image) below
            `SMALL_IMAGE_SIZE`.
        input_context: optional `tf.distribute.InputContext` (shards by file).

    Returns:
        A `tf.data.Dataset` of `(images, labels)`; the last batch may be smaller.
    """
    _check_image_size(image_size)
    _, center_crop_fraction = crop_settings(image_size, center_crop_fraction=center_crop_fraction)
    per_replica = _check_batch(batch_size, input_context)
    pipelines, pipeline_id, _ = _input_shard(input_context)
    chosen = splits.split(split)
    if chosen.num_examples == 0:
        raise ValueError(f"The {split} split of {splits.name} is empty.")
    elements = _decode(splits, _records(splits, chosen, None, pipelines, pipeline_id, False))
    images = elements.map(
        lambda element: (
            central_crop(element["image"], image_size, center_crop_fraction),
            tf.cast(element["label"], tf.int32),
        ),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )
    batches = images.batch(per_replica)
    if pipelines == 1 and not splits.skip_corrupt_images:
        # Decoding one image per element hides the count; Keras' `fit` wants it for
        # its validation data (or warns that the input "ran out of data").
        count = -(-chosen.num_examples // per_replica)
        batches = batches.apply(tf.data.experimental.assert_cardinality(count))
    return batches.prefetch(tf.data.AUTOTUNE)


def input_error_message(error):
    """The message of a streaming input error (`tf.errors.InvalidArgumentError`), or None.

    The checks of this module fail with `assertion failed: [<message>]`; this returns
    `<message>` so that callers can raise it as a `ValueError`.

    Example:

    >>> input_error_message(tf.errors.InvalidArgumentError(None, None,
    ...     "assertion failed: [Cannot read image a.jpg: bad]"))
    'Cannot read image a.jpg: bad'
    """
    match = _ERROR_PATTERN.search(getattr(error, "message", str(error)))
    # TensorFlow prints string tensors with escaped quotes.
    return match.group(1).replace("\\'", "'") if match else None
