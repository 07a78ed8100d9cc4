"""The streams themselves: training and evaluation batches, steps per epoch, input errors."""

import re

import tensorflow as tf

from supcon_tf.data.crops import (
    central_crop,
    check_image_size,
    crop_settings,
    random_resized_crops,
)
from supcon_tf.data.parsing import _decode, _input_shard, _records

_ERROR_PATTERN = re.compile(r"assertion failed: \[(.*?)\]", re.DOTALL)
# Where a training stream's flip and colour augmentation run: in the model on the
# accelerator (the stream only decodes and crops), or in the stream on the CPU.
AUGMENT_PLACEMENTS = ("device", "pipeline")


def _check_batch(batch_size, input_context):
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"`batch_size` must be a positive integer, got {batch_size!r}.")
    if input_context is None:
        return batch_size
    return input_context.get_per_replica_batch_size(batch_size)


def training_steps_per_epoch(splits, batch_size):
    """Global batches of `batch_size` per training epoch (the remainder is dropped).

    Example:

    >>> from supcon_tf.data.sources import StreamingSplits, StreamSplit
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
            `training=True`, in parallel, on the CPU (`augment_placement="pipeline"`);
            `None` leaves the flip and colour augmentation to the model, on the
            accelerator (the default placement: the stream only decodes and crops).
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
    check_image_size(image_size)
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
    seed_base = seed * 1_000_003 + pipeline_id
    count = 1 if views is None else views

    def crops(encoded, element):
        crop_seed = tf.stack(
            [tf.constant(seed_base, tf.int64), element["epoch"] * 2**32 + element["index"]]
        )
        if views is None:
            seeds = crop_seed[None]
        else:
            seeds = [
                tf.random.experimental.stateless_fold_in(crop_seed, view) for view in range(views)
            ]
        images = random_resized_crops(encoded, image_size, seeds, min_crop_area)
        return images[0] if views is None else images

    def blank():
        return tf.zeros(
            [image_size, image_size, 3] if views is None else [count, image_size, image_size, 3]
        )

    elements = _decode(splits, elements.skip(initial_step * pipeline_batch), crops, blank)
    batches = elements.map(
        lambda element: (element["image"], tf.cast(element["label"], tf.int32)),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )
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
    check_image_size(image_size)
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
