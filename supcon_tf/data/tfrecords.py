"""TFRecord shards of `tf.train.Example`s in the TF Model Garden's ImageNet convention.

Each record holds the encoded image bytes under `image/encoded` and the integer class
under `image/class/label` (the keys the TF Model Garden's ImageNet input reads), plus
the class name under `image/class/text` and the source path under `image/filename`.
Shards are named `<split>-00000-of-00016` in one folder: `train-*` for training and
`test-*` for the test split (`write_shards` names each split after its image folder;
the classic ImageNet shards' `validation-*` are read as the test split too).
`dataset_info.json` beside them records the class names, the number of records and
shards per split, the records of each shard (`shard_lengths`, which give the held-out
validation split its exact size without reading the shards) and the label offset (0 for shards written here; 1 for the classic
ImageNet shards, whose labels run 1..1000).

`write_shards` converts an image folder (`<root>/train/<class>/`,
`<root>/test/<class>/`) into such shards; the `supcon-prepare` command runs it. It
refuses a folder that already holds files unless asked to overwrite, and replaces a
set only once the new one is complete (`replace_shards`). `check_shards`, called
wherever shards are opened, refuses a folder whose shards do not form one set.

Example:

>>> import os, tempfile
>>> import numpy as np, tensorflow as tf
>>> root = tempfile.mkdtemp()
>>> for split in ("train", "test"):
...     for name in ("cat", "dog"):
...         os.makedirs(os.path.join(root, split, name))
...         image = np.full((6, 9, 3), 200 if name == "cat" else 50, np.uint8)
...         tf.io.write_file(os.path.join(root, split, name, "a.png"), tf.io.encode_png(image))
>>> info = write_shards(root, os.path.join(root, "shards"), num_shards=2, progress=False)
>>> info["class_names"], info["num_examples"]
(['cat', 'dog'], {'train': 2, 'test': 2})
>>> sorted(os.listdir(os.path.join(root, "shards")))
['dataset_info.json', 'test-00000-of-00001', 'train-00000-of-00002', 'train-00001-of-00002']
>>> check_shards(os.path.join(root, "shards"))  # One whole set: no error.
"""

import json
import re
import sys

import numpy as np
import tensorflow as tf

from supcon_tf.data.folders import list_classes, list_images
from supcon_tf.errors import DataError, UsageError

IMAGE_KEY = "image/encoded"
LABEL_KEY = "image/class/label"
CLASS_NAME_KEY = "image/class/text"
FILENAME_KEY = "image/filename"
INFO_FILE = "dataset_info.json"
# `<prefix>-<index>-of-<count>`: the Model Garden's shard names.
SHARD_NAME = re.compile(r"^(?P<prefix>train|validation|test)-(?P<index>\d+)-of-(?P<count>\d+)$")
# The test split's shard prefixes, in order of preference.
TRAIN_PREFIX = "train"
EVALUATION_PREFIXES = ("validation", "test")


def _bytes_feature(value):
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))


def image_example(encoded, label, class_name="", filename=""):
    """A `tf.train.Example` with the image bytes, its label, class name and file name."""
    return tf.train.Example(
        features=tf.train.Features(
            feature={
                IMAGE_KEY: _bytes_feature(encoded),
                LABEL_KEY: tf.train.Feature(int64_list=tf.train.Int64List(value=[int(label)])),
                CLASS_NAME_KEY: _bytes_feature(class_name.encode()),
                FILENAME_KEY: _bytes_feature(filename.encode()),
            }
        )
    )


def _check_image(path, encoded):
    """Decodes `encoded` to prove it is an image; `DataError` naming `path` if not."""
    try:
        tf.io.decode_image(encoded, channels=3, expand_animations=False)
    except (tf.errors.InvalidArgumentError, tf.errors.UnknownError) as error:
        reason = error.message.splitlines()[0]
        raise DataError(
            f"Cannot read image {path}: it is not a readable image ({reason}); remove it, "
            "or pass --skip_corrupt_images to leave it out"
        ) from error


def write_shards(
    root,
    output_dir,
    num_shards=16,
    seed=0,
    progress=True,
    skip_corrupt_images=False,
    overwrite=False,
):
    """Converts an image folder into TFRecord shards and `dataset_info.json`.

    The training images are shuffled (seeded) before being dealt out to the shards, so
    that every shard holds every class; each image is decoded once to check it. The
    shards are written into `.<name>.staging` beside `output_dir` and moved into `output_dir` only
    when complete (see `replace_shards`), so that readers never see a half-written or
    mixed set.

    Args:
        root: folder with `train/<class>/` and `test/<class>/` images.
        output_dir: folder for `train-*-of-*`, `test-*-of-*` and `dataset_info.json`
            (created; `gs://` paths work). It must be empty or new, unless `overwrite`.
        num_shards: shards of the training split (the test split gets
            `ceil(num_shards / 8)`, at least 1). Use at least as many shards as input
            pipelines (workers, TPU hosts) will read them.
        seed: seed of the shuffle.
        progress: say what is written, with a progress bar on a terminal.
        skip_corrupt_images: leave out images that do not decode (listed in
            `dataset_info.json` under `skipped_images`) instead of raising.
        overwrite: replace the shard set already in `output_dir`.

    Returns:
        The dict written to `dataset_info.json`.

    Raises:
        UsageError: `output_dir` is not empty (without `overwrite`), or holds files
            that are not shards; bad `num_shards`.
        DataError: an unreadable image (without `skip_corrupt_images`).
    """
    import keras

    if isinstance(num_shards, bool) or not isinstance(num_shards, int) or num_shards < 1:
        raise UsageError(f"`num_shards` must be a positive integer, got {num_shards!r}.")
    output_dir = str(output_dir).rstrip("/")
    finish_interrupted_overwrite(output_dir)
    _check_output(output_dir, overwrite)
    class_names = list_classes(root)
    staging = beside(output_dir, "staging")
    if tf.io.gfile.exists(staging):
        tf.io.gfile.rmtree(staging)
    tf.io.gfile.makedirs(staging)
    splits = {"train": num_shards, "test": max(1, -(-num_shards // 8))}
    counts, lengths, skipped = {}, {}, []
    for split, shards in splits.items():
        paths, labels = list_images(root, split, class_names)
        order = np.random.default_rng(seed).permutation(len(paths))
        on_terminal = progress and sys.stdout.isatty()
        bar = keras.utils.Progbar(len(paths), unit_name="image") if on_terminal else None
        if progress:
            print(
                f"Writing {len(paths)} {split} images to {shards} {split}-* shards of {output_dir}"
            )
        writers = [
            tf.io.TFRecordWriter(f"{staging}/{shard_name(split, index, shards)}")
            for index in range(shards)
        ]
        written, per_shard = 0, [0] * shards
        for position, index in enumerate(order, start=1):
            path, label = paths[index], labels[index]
            encoded = tf.io.gfile.GFile(path, "rb").read()
            try:
                _check_image(path, encoded)
            except DataError:
                if not skip_corrupt_images:
                    raise
                skipped.append(path)
            else:
                example = image_example(encoded, label, class_names[label], path)
                writers[written % shards].write(example.SerializeToString())
                per_shard[written % shards] += 1
                written += 1
            if bar is not None:
                bar.update(position)
        for writer in writers:
            writer.close()
        counts[split], lengths[split] = written, per_shard
    info = {
        "class_names": list(class_names),
        "num_examples": counts,
        "num_shards": splits,
        "shard_lengths": lengths,
        "label_offset": 0,
        "image_key": IMAGE_KEY,
        "label_key": LABEL_KEY,
        "skipped_images": skipped,
    }
    # Written last: a staging folder with its info file holds a complete set.
    with tf.io.gfile.GFile(f"{staging}/{INFO_FILE}", "w") as file:
        file.write(json.dumps(info, indent=2) + "\n")
    replace_shards(staging, output_dir)
    return info


def shard_name(prefix, index, count):
    """`<prefix>-<index>-of-<count>`, five digits each (`train-00003-of-00016`)."""
    return f"{prefix}-{index:05d}-of-{count:05d}"


def _is_ours(name):
    return name.rstrip("/") == INFO_FILE or bool(SHARD_NAME.match(name.rstrip("/")))


def _check_output(output_dir, overwrite):
    """Refuses an output folder that holds anything, unless `overwrite` and only shards."""
    if not tf.io.gfile.exists(output_dir):
        return
    if not tf.io.gfile.isdir(output_dir):
        raise UsageError(f"--output={output_dir} is a file; pass a folder for the shards")
    entries = sorted(tf.io.gfile.listdir(output_dir))
    if not entries:
        return
    if not overwrite:
        raise UsageError(
            f"--output={output_dir} is not empty ({len(entries)} files); pass --overwrite "
            "to replace its shards, or an empty or new folder"
        )
    foreign = [entry for entry in entries if not _is_ours(entry)]
    if foreign:
        raise UsageError(
            f"--output={output_dir} holds files that are not shards ({', '.join(foreign[:3])}"
            f"{', ...' if len(foreign) > 3 else ''}); --overwrite replaces only a shard "
            "folder: pass an empty or new folder"
        )


def _is_local(path):
    return "://" not in path or path.startswith("file://")


def beside(output_dir, role):
    """The folder `.<name>.<role>` beside `output_dir`, where `write_shards` stages
    (`role="staging"`) a new set and moves the old one aside (`"previous"`).

    Example:

    >>> beside("gs://bucket/imagenet", "staging")
    'gs://bucket/.imagenet.staging'
    """
    parent, _, name = str(output_dir).rstrip("/").rpartition("/")
    return f"{parent}/.{name}.{role}" if parent else f".{name}.{role}"


def replace_shards(staging, output_dir):
    """Moves the complete shard set in `staging` into `output_dir`, replacing its set.

    On a local disk the folders are swapped by two renames (`output_dir` ->
    `.<name>.previous`, `staging` -> `output_dir`), each atomic: a process killed
    at any point leaves `output_dir` with the old complete set or the new one (or, in
    the instant between the two renames, no folder, with the new set in `staging`).

    On object stores (`gs://`) a folder rename copies object by object, so the files
    are moved one by one, in the order that keeps a killed move detectable: the old
    `dataset_info.json` first, then the old shards, then the new shards, and the new
    `dataset_info.json` last (a move resumed after a kill, with new shards already
    moved, deletes nothing). A kill leaves the old complete set, the new complete set,
    or an incomplete set that `check_shards` refuses. In every case the next
    `write_shards` into `output_dir` (or `finish_interrupted_overwrite`) completes the
    move from `staging`, which keeps the new set until then.
    """
    if _is_local(output_dir):
        previous = beside(output_dir, "previous")
        if tf.io.gfile.exists(previous):
            tf.io.gfile.rmtree(previous)
        if tf.io.gfile.exists(output_dir):
            tf.io.gfile.rename(output_dir, previous)
        tf.io.gfile.rename(staging, output_dir)
        if tf.io.gfile.exists(previous):
            tf.io.gfile.rmtree(previous)
        return
    tf.io.gfile.makedirs(output_dir)
    staged = {entry.rstrip("/") for entry in tf.io.gfile.listdir(staging)}
    new_shards = {
        shard_name(split, index, count)
        for split, count in read_info(staging)["num_shards"].items()
        for index in range(count)
    }
    if new_shards <= staged:  # Nothing moved yet: the old set goes first, its info first.
        old = [entry.rstrip("/") for entry in tf.io.gfile.listdir(output_dir)]
        for name in sorted(filter(_is_ours, old), key=lambda entry: entry != INFO_FILE):
            tf.io.gfile.remove(f"{output_dir}/{name}")
    for name in sorted(sorted(staged), key=lambda entry: entry == INFO_FILE):
        tf.io.gfile.rename(f"{staging}/{name}", f"{output_dir}/{name}", overwrite=True)
    tf.io.gfile.rmtree(staging)


def finish_interrupted_overwrite(output_dir):
    """Completes a `replace_shards` that a killed process left; True if there was one.

    A staging folder with its `dataset_info.json` holds a complete new set: it is moved
    in. A staging folder without one is a write that never finished: it is removed.
    """
    output_dir = str(output_dir).rstrip("/")
    staging, previous = beside(output_dir, "staging"), beside(output_dir, "previous")
    finished = False
    if tf.io.gfile.exists(f"{staging}/{INFO_FILE}"):
        replace_shards(staging, output_dir)
        finished = True
    elif tf.io.gfile.exists(staging):
        tf.io.gfile.rmtree(staging)
    if tf.io.gfile.exists(previous) and tf.io.gfile.exists(output_dir):
        tf.io.gfile.rmtree(previous)
    return finished


def is_shard_folder(path):
    """Whether `path` is a folder holding TFRecord shards (`train-*`, `test-*`, ...)."""
    return tf.io.gfile.isdir(str(path)) and any(
        find_shards(path, prefix) for prefix in (TRAIN_PREFIX, *EVALUATION_PREFIXES)
    )


def find_shards(directory, prefix):
    """The sorted shard paths `<directory>/<prefix>-*` (`[]` if none)."""
    return sorted(tf.io.gfile.glob(f"{directory}/{prefix}-*"))


def read_info(directory):
    """The `dataset_info.json` of a shard folder as a dict, or `None` when it has none."""
    path = f"{directory}/{INFO_FILE}"
    if not tf.io.gfile.exists(path):
        return None
    with tf.io.gfile.GFile(path) as file:
        return json.loads(file.read())


def check_shards(directory):
    """Raises `DataError` unless each split's shards in `directory` form one whole set.

    A whole set is `<prefix>-00000-of-N` ... `<prefix>-<N-1>-of-N`, every name with the
    same `N`, matching `num_shards` of `dataset_info.json` where it has them; the
    evaluation split is `validation-*` or `test-*`, not both. Only names are read (no
    records), so the check costs one listing.

    Example:

    >>> import tempfile
    >>> folder = tempfile.mkdtemp()
    >>> for name in ("train-00000-of-00002", "train-00000-of-00001", "test-00000-of-00001"):
    ...     open(f"{folder}/{name}", "w").close()
    >>> check_shards(folder)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    supcon_tf.errors.DataError: ... mixes shard sets: train-*-of-00001 (1 file), ...
    """
    directory = str(directory).rstrip("/")
    info = read_info(directory) or {}
    listed = info.get("num_shards", {})
    remedy = (
        "write the shards again with supcon-prepare --overwrite (into this folder or an empty one)"
    )
    present = [prefix for prefix in EVALUATION_PREFIXES if find_shards(directory, prefix)]
    if len(present) > 1:
        raise DataError(
            f"{directory} holds both validation-* and test-* shards, two evaluation sets; {remedy}"
        )
    if not find_shards(directory, TRAIN_PREFIX):
        raise DataError(f"{directory} has no train-* shards; {remedy}")
    for prefix in (TRAIN_PREFIX, *present):
        names = [path.rstrip("/").rsplit("/", 1)[-1] for path in find_shards(directory, prefix)]
        matches = [SHARD_NAME.match(name) for name in names]
        odd = [name for name, match in zip(names, matches, strict=True) if not match]
        if odd:
            raise DataError(
                f"{directory} holds {prefix}-* files not named {prefix}-NNNNN-of-NNNNN "
                f"({', '.join(odd[:3])}); move them out, or {remedy}"
            )
        by_count = {}
        for match in matches:
            by_count.setdefault(int(match["count"]), set()).add(int(match["index"]))
        if len(by_count) > 1:
            sets = ", ".join(
                f"{prefix}-*-of-{count:05d} ({len(indices)} file{'s' * (len(indices) > 1)})"
                for count, indices in sorted(by_count.items())
            )
            raise DataError(f"{directory} mixes shard sets: {sets}; {remedy}")
        ((count, indices),) = by_count.items()
        if indices != set(range(count)):
            missing = sorted(set(range(count)) - indices)
            what = (
                f"missing {shard_name(prefix, missing[0], count)}"
                if missing
                else f"numbered past {count - 1}"
            )
            raise DataError(
                f"{directory} has {len(indices)} {prefix}-*-of-{count:05d} shards, not "
                f"{count} ({what}); {remedy}"
            )
        split = TRAIN_PREFIX if prefix == TRAIN_PREFIX else "test"
        if split in listed and int(listed[split]) != count:
            raise DataError(
                f"{directory}/{INFO_FILE} lists {listed[split]} {prefix} shards, the folder "
                f"holds {count} ({prefix}-*-of-{count:05d}); {remedy}"
            )


def count_records(shards):
    """Number of records in `shards` (reads them all: done once when no info file)."""
    dataset = tf.data.TFRecordDataset(list(shards), num_parallel_reads=tf.data.AUTOTUNE)
    return int(dataset.reduce(np.int64(0), lambda count, _: count + 1))


def shard_lengths(shards):
    """The number of records of each of `shards`, in order (reads them all, streaming:
    done once for shard sets whose `dataset_info.json` lacks `shard_lengths`).

    Example:

    >>> import tempfile
    >>> folder = tempfile.mkdtemp()
    >>> for index, count in enumerate((3, 1)):
    ...     with tf.io.TFRecordWriter(f"{folder}/train-{index}") as writer:
    ...         for _ in range(count):
    ...             writer.write(b"record")
    >>> shard_lengths([f"{folder}/train-0", f"{folder}/train-1"])
    [3, 1]
    """
    files = tf.data.Dataset.from_tensor_slices(tf.constant(list(shards), tf.string))
    counts = files.map(
        lambda shard: tf.data.TFRecordDataset(shard).reduce(
            np.int64(0), lambda count, _: count + 1
        ),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )
    return [int(count) for count in counts.as_numpy_iterator()]


def largest_label(shards, label_key):
    """The largest label in `shards` (reads them all: done once when no info file)."""
    dataset = tf.data.TFRecordDataset(list(shards), num_parallel_reads=tf.data.AUTOTUNE).map(
        lambda record: tf.io.parse_single_example(
            record, {label_key: tf.io.FixedLenFeature([], tf.int64, default_value=-1)}
        )[label_key],
        num_parallel_calls=tf.data.AUTOTUNE,
    )
    return int(dataset.reduce(np.int64(-1), tf.maximum))
