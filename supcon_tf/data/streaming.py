"""Streaming `tf.data` pipelines for datasets too large for RAM, of images of any size.

This module gathers the parts, one job each: `sources` (listing a dataset),
`parsing` (reading and decoding records), `crops` (training and evaluation crops) and
`batching` (the training and evaluation streams).

`open_streaming_dataset` lists a dataset without reading its images: an image folder
(`<root>/train/<class>/`, `<root>/test/<class>/`; JPEG, PNG, BMP, GIF of any size,
greyscale, RGB or CMYK), a folder of TFRecord shards (`train-*`, `validation-*`; see
`supcon_tf.data.tfrecords`) or a TFDS dataset by name (`"tfds:imagenet2012"`, read from
its prepared TFRecord files; needs the `tensorflow-datasets` extra).

`make_training_stream` reads it epoch by epoch: the files are shuffled with a seed
derived from `(seed, epoch)`, sharded over the input pipelines by file (`InputContext`),
read in parallel (shards with `interleave`), shuffled in a bounded buffer (records),
decoded, cropped and batched in parallel, and prefetched. Each training view is a
random-resized crop of the image at `image_size` (the SimCLR/SupCon convention; a JPEG
decodes only the crop's window, see `random_resized_crops`) drawn with a stateless seed
of `(seed, epoch, position in the epoch)`, so the stream is the same whether or not a
run was interrupted: `initial_epoch` and `initial_step` resume it at a given batch
without decoding what came before. The flip and colour augmentation are left to the
model, on the accelerator (or, passed as `augment`, applied in the stream on the CPU:
see `AUGMENT_PLACEMENTS`).
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

from supcon_tf.data.batching import (
    AUGMENT_PLACEMENTS,
    input_error_message,
    make_evaluation_stream,
    make_training_stream,
    training_steps_per_epoch,
)
from supcon_tf.data.crops import (
    EVALUATION_CROP_FRACTION,
    SMALL_IMAGE_SIZE,
    central_crop,
    check_fraction,
    crop_settings,
    random_resized_crop,
    random_resized_crops,
)
from supcon_tf.data.parsing import (
    SHUFFLE_BUFFER_RECORDS,
)
from supcon_tf.data.sources import (
    TFDS_PREFIX,
    StreamingSplits,
    StreamSplit,
    is_streamed,
    open_streaming_dataset,
)

__all__ = [
    "AUGMENT_PLACEMENTS",
    "EVALUATION_CROP_FRACTION",
    "SHUFFLE_BUFFER_RECORDS",
    "SMALL_IMAGE_SIZE",
    "StreamSplit",
    "StreamingSplits",
    "TFDS_PREFIX",
    "central_crop",
    "check_fraction",
    "crop_settings",
    "input_error_message",
    "is_streamed",
    "make_evaluation_stream",
    "make_training_stream",
    "open_streaming_dataset",
    "random_resized_crop",
    "random_resized_crops",
    "training_steps_per_epoch",
]
