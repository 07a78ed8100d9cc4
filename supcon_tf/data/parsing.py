"""Reading a stream: files sharded over input pipelines, records parsed, images decoded."""

import logging
import os

import tensorflow as tf

# their file list is permuted as a whole every epoch).
SHUFFLE_BUFFER_RECORDS = 4096
_BUFFER_SEED = 7919
# Records of a shard whose held-out hashes (`supcon_tf.data.holdout`) are computed together.
_HOLDOUT_BLOCK = 1024
# Elements decoded together in one small dataset (see `_decode`).
DECODE_GROUP = 16
# A label value that no record has: marks a record without the label feature.
_MISSING_LABEL = -(2**62)


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
    """The split's files, permuted by `shuffle_seed`, this pipeline's share.

    Each element is `(file, label, index, skip, take)`: the label of an image file (0
    for shards), the file's index in `split.files` (which a `Holdout` hashes) and the
    records of the file that the split reads (`skip` first, then `take`; -1: all).
    """
    if len(split.files) < pipelines:
        raise ValueError(
            f"{splits.name} has {len(split.files)} files for {pipelines} input pipelines; "
            "each pipeline reads whole files, so write at least one shard per pipeline."
        )
    count = len(split.files)
    ranges = split.ranges if split.ranges is not None else [(0, -1)] * count
    columns = (
        tf.constant(split.files),
        tf.constant(split.labels if split.labels is not None else [0] * count, tf.int64),
        tf.range(count, dtype=tf.int64),
        tf.constant([skip for skip, _ in ranges], tf.int64),
        tf.constant([take for _, take in ranges], tf.int64),
    )
    if shuffle_seed is not None:
        order = tf.random.experimental.stateless_shuffle(tf.range(count), shuffle_seed)
        columns = tuple(tf.gather(column, order) for column in columns)
    return tf.data.Dataset.from_tensor_slices(columns).shard(pipelines, pipeline_id)


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
        records = files.map(lambda path, label, *_: {"name": path, "payload": "", "label": label})
        return records.repeat() if repeat else records

    def read_shard(shard, _, index, skip, take):
        records = tf.data.TFRecordDataset(shard).skip(skip).take(take)
        if split.holdout is not None:
            # Hashed a block at a time: as fast as reading (one record at a time: 1/3 of it).
            blocks = records.enumerate().batch(_HOLDOUT_BLOCK)
            records = blocks.map(
                lambda positions, block: tf.boolean_mask(
                    block, split.holdout.keeps(index, positions)
                )
            ).unbatch()
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


def _encoded(element):
    """The element's encoded image: its record's payload, or the bytes of its file."""
    encoded = element["payload"]
    return tf.cond(
        tf.strings.length(encoded) > 0, lambda: encoded, lambda: tf.io.read_file(element["name"])
    )


def _whole_image(encoded, element):
    """Decodes to uint8 RGB `[H, W, 3]` (greyscale is repeated, CMYK and alpha converted)."""
    del element
    image = tf.io.decode_image(encoded, channels=3, expand_animations=False)
    return tf.ensure_shape(image, [None, None, 3])


def _blank_image():
    return tf.zeros([1, 1, 3], tf.uint8)


def _available_cores():
    """The CPU cores this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _decoded_group(group, decode, blank):
    """The elements of `group` (a batch of elements) with their `image`, in order.

    Decoding runs with errors ignored; an element whose decode failed shows as a gap in
    the positions that come out. Each element that comes out carries the names of the
    elements missing just before it (`unreadable`, usually none), and a last, blank
    element (`closing`) carries those missing at the end of the group.
    """
    size = tf.shape(group["name"], out_type=tf.int64)[0]
    positions = tf.data.Dataset.from_tensor_slices(group).enumerate()
    decoded = positions.map(
        lambda position, item: (position, {**item, "image": decode(_encoded(item), item)})
    ).ignore_errors()
    first = tf.nest.map_structure(lambda column: column[0], group)
    closing = tf.data.Dataset.from_tensors((size, {**first, "image": blank()}))

    def mark(expected, positioned):
        position, item = positioned
        return position + 1, {
            **item,
            "unreadable": group["name"][expected:position],
            "closing": position == size,
        }

    return decoded.concatenate(closing).scan(tf.constant(0, tf.int64), mark)


def _decode(splits, elements, decode=_whole_image, blank=_blank_image):
    """Decodes in parallel; stops on (or, when configured, leaves out) unreadable images.

    `decode(encoded, element)` gives an element's `image` (by default the whole image,
    uint8 `[H, W, 3]`; the training stream decodes its crops); `blank()` is a stand-in
    of the same rank. The elements are decoded in groups of `DECODE_GROUP`, each group
    a small dataset of its own (one per element cost about 15 % of the decoding rate
    of 224-px JPEG crops), two groups per available core at a time; the order of the
    elements is kept, and unreadable images are met in that order.
    """
    if splits.skip_corrupt_images:

        def record_skip(names):
            for name in names.numpy():
                path = name.decode()
                if path not in splits.skipped_images:  # an epoch may read a file twice
                    splits.skipped_images.append(path)
                    logging.warning("Skipping unreadable image %s (skip_corrupt_images).", path)
            return True

        def on_unreadable(names):
            return tf.py_function(record_skip, [names], tf.bool)

    else:
        where = "in TFRecord file " if splits.kind != "folder" else ""

        def on_unreadable(names):
            return _assertion(
                False,
                f"Cannot read image {where}",
                names[0],
                ": it is not a readable image (corrupt or truncated). Remove or replace it, "
                "or skip unreadable images (skip_corrupt_images=True, --skip_corrupt_images).",
            )

    def keep(element):
        """Meets the unreadable images before `element`; False for a group's closing one."""
        unreadable = element["unreadable"]
        done = tf.cond(
            tf.size(unreadable) > 0, lambda: on_unreadable(unreadable), lambda: tf.constant(True)
        )
        with tf.control_dependencies([done]):
            return tf.logical_not(element["closing"])

    decoded = elements.batch(DECODE_GROUP).interleave(
        lambda group: _decoded_group(group, decode, blank),
        cycle_length=min(64, 2 * _available_cores()),
        block_length=DECODE_GROUP,
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )
    return decoded.filter(keep)
