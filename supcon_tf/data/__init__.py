"""Datasets: in-RAM NumPy splits for small data, streaming `tf.data` pipelines for large.

Which path a dataset takes (`is_streamed`):

* In RAM (`load_dataset`, `make_dataset`): `"digits"`, the Keras datasets, `.npz`
  files and image folders of same-size images without an `image_size`. The images
  are decoded once into float32 arrays; fastest for small data.
* Streaming (`open_streaming_dataset`, `make_training_stream`,
  `make_evaluation_stream`): TFRecord shard folders, TFDS datasets (`"tfds:<name>"`)
  and image folders given an `image_size`. Nothing beyond bounded buffers is held in
  memory; images may have any size and are cropped per view.

`supcon_tf.data.tfrecords.write_shards` (the `supcon-prepare` command) converts an
image folder into TFRecord shards.

Example:

>>> splits = load_dataset("digits", validation_fraction=0.2, seed=1)
>>> len(splits.x_train), len(splits.x_val), len(splits.x_test)
(1150, 287, 360)
"""

from supcon_tf.data.arrays import DATASETS, DatasetSplits, load_dataset, make_dataset
from supcon_tf.data.streaming import (
    StreamingSplits,
    StreamSplit,
    is_streamed,
    make_evaluation_stream,
    make_training_stream,
    open_streaming_dataset,
)
from supcon_tf.data.tfrecords import write_shards

__all__ = [
    "DATASETS",
    "DatasetSplits",
    "StreamSplit",
    "StreamingSplits",
    "is_streamed",
    "load_dataset",
    "make_dataset",
    "make_evaluation_stream",
    "make_training_stream",
    "open_streaming_dataset",
    "write_shards",
]
