"""TFRecord shards of `tf.train.Example`s in the TF Model Garden's ImageNet convention.

Each record holds the encoded image bytes under `image/encoded` and the integer class
under `image/class/label` (the keys the TF Model Garden's ImageNet input reads), plus
the class name under `image/class/text` and the source path under `image/filename`.
Shards are named `<split>-00000-of-00016` in one folder: `train-*` for training and
`validation-*` (or `test-*`) for evaluation. `dataset_info.json` beside them records
the class names, the number of records per split and the label offset (0 for shards
written here; 1 for the classic ImageNet shards, whose labels run 1..1000).

`write_shards` converts an image folder (`<root>/train/<class>/`,
`<root>/test/<class>/`) into such shards; the `supcon-prepare` command runs it.

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
>>> sorted(os.listdir(os.path.join(root, "shards")))[:2]
['dataset_info.json', 'train-00000-of-00002']
"""

import json

import numpy as np
import tensorflow as tf

from supcon_tf.data.folders import list_classes, list_images

IMAGE_KEY = "image/encoded"
LABEL_KEY = "image/class/label"
CLASS_NAME_KEY = "image/class/text"
FILENAME_KEY = "image/filename"
INFO_FILE = "dataset_info.json"
# The evaluation split's shard prefixes, in order of preference.
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
    """Decodes `encoded` to prove it is an image; `ValueError` naming `path` if not."""
    try:
        tf.io.decode_image(encoded, channels=3, expand_animations=False)
    except (tf.errors.InvalidArgumentError, tf.errors.UnknownError) as error:
        reason = error.message.splitlines()[0]
        raise ValueError(
            f"Cannot read image {path}: it is not a readable image ({reason})."
        ) from error


def write_shards(root, output_dir, num_shards=16, seed=0, progress=True, skip_corrupt_images=False):
    """Converts an image folder into TFRecord shards and `dataset_info.json`.

    The training images are shuffled (seeded) before being dealt out to the shards, so
    that every shard holds every class; each image is decoded once to check it.

    Args:
        root: folder with `train/<class>/` and `test/<class>/` images.
        output_dir: folder for `train-*-of-*`, `validation-*-of-*` and
            `dataset_info.json` (created; `gs://` paths work).
        num_shards: shards of the training split (the evaluation split gets
            `ceil(num_shards / 8)`, at least 1). Use at least as many shards as input
            pipelines (workers, TPU hosts) will read them.
        seed: seed of the shuffle.
        progress: show a progress bar.
        skip_corrupt_images: leave out images that do not decode (listed in
            `dataset_info.json` under `skipped_images`) instead of raising.

    Returns:
        The dict written to `dataset_info.json`.

    Raises:
        ValueError: an unreadable image (without `skip_corrupt_images`), bad `num_shards`.
    """
    import keras

    if isinstance(num_shards, bool) or not isinstance(num_shards, int) or num_shards < 1:
        raise ValueError(f"`num_shards` must be a positive integer, got {num_shards!r}.")
    class_names = list_classes(root)
    tf.io.gfile.makedirs(str(output_dir))
    splits = {"train": ("train", num_shards), "test": ("validation", max(1, -(-num_shards // 8)))}
    counts, skipped = {}, []
    for split, (prefix, shards) in splits.items():
        paths, labels = list_images(root, split, class_names)
        order = np.random.default_rng(seed).permutation(len(paths))
        bar = keras.utils.Progbar(len(paths), unit_name="image") if progress else None
        if progress:
            print(f"Writing {len(paths)} {split} images to {shards} shards under {output_dir}")
        writers = [
            tf.io.TFRecordWriter(f"{output_dir}/{prefix}-{index:05d}-of-{shards:05d}")
            for index in range(shards)
        ]
        written = 0
        for position, index in enumerate(order, start=1):
            path, label = paths[index], labels[index]
            encoded = tf.io.gfile.GFile(path, "rb").read()
            try:
                _check_image(path, encoded)
            except ValueError:
                if not skip_corrupt_images:
                    raise
                skipped.append(path)
            else:
                example = image_example(encoded, label, class_names[label], path)
                writers[written % shards].write(example.SerializeToString())
                written += 1
            if bar is not None:
                bar.update(position)
        for writer in writers:
            writer.close()
        counts[split] = written
    info = {
        "class_names": list(class_names),
        "num_examples": counts,
        "label_offset": 0,
        "image_key": IMAGE_KEY,
        "label_key": LABEL_KEY,
        "skipped_images": skipped,
    }
    with tf.io.gfile.GFile(f"{output_dir}/{INFO_FILE}", "w") as file:
        file.write(json.dumps(info, indent=2) + "\n")
    return info


def is_shard_folder(path):
    """Whether `path` is a folder holding `train-*` TFRecord shards."""
    return tf.io.gfile.isdir(str(path)) and bool(find_shards(path, TRAIN_PREFIX))


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


def count_records(shards):
    """Number of records in `shards` (reads them all: done once when no info file)."""
    dataset = tf.data.TFRecordDataset(list(shards), num_parallel_reads=tf.data.AUTOTUNE)
    return int(dataset.reduce(np.int64(0), lambda count, _: count + 1))


def largest_label(shards, label_key):
    """The largest label in `shards` (reads them all: done once when no info file)."""
    dataset = tf.data.TFRecordDataset(list(shards), num_parallel_reads=tf.data.AUTOTUNE).map(
        lambda record: tf.io.parse_single_example(
            record, {label_key: tf.io.FixedLenFeature([], tf.int64, default_value=-1)}
        )[label_key],
        num_parallel_calls=tf.data.AUTOTUNE,
    )
    return int(dataset.reduce(np.int64(-1), tf.maximum))
