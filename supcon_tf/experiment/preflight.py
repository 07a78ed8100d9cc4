"""Preflight: the whole run resolved in seconds, before anything is written or trained.

`preflight(config)` checks, in this order, and stops at the first mistake with a
`supcon_tf.errors.UsageError` (a flag or a combination) or `DataError` (the data)
whose one sentence says what is wrong and what to do:

1. the paths exist: `dataset` (a known name, an `.npz` file, an image folder, TFRecord
   shards or `tfds:<name>`) and `data_dir`;
2. the dataset and `image_size` agree (streamed datasets need one, in-RAM ones take
   none), and the crops fit the encoder;
3. the data opens: the first images of each split decode (a sample, never a scan of
   the whole folder), and a folder of mixed image sizes without `image_size` is sent
   to `--image_size`;
4. the splits are listed (streamed) or loaded (in RAM), and every stage's batch size
   fits its training split: pretraining, classifier, baseline, hybrid.

It returns a `Preflight`: the opened inputs (reused by the run, so nothing is read
twice), each stage's batch size and the notes a run states at its start (preset
values kept or overridden, unequal budgets of the two arms). The configuration's own
checks ran when it was built (`ExperimentConfig`).

Example:

>>> from supcon_tf.experiment import ExperimentConfig
>>> checked = preflight(ExperimentConfig(dataset="digits", batch_size=32))
>>> checked.batch_sizes
{'pretrain': 32, 'classifier': 32, 'baseline': 32}
>>> preflight(ExperimentConfig(dataset="digits", batch_size=2000))
Traceback (most recent call last):
...
supcon_tf.errors.DataError: The pretrain stage's batch size 2000 exceeds the 1293 \
training images of digits; set --batch_size to at most 1293.
"""

import dataclasses
import logging
import re
import time

import tensorflow as tf

from supcon_tf.data import folders, tfrecords
from supcon_tf.data.arrays import resolve_dataset
from supcon_tf.errors import DataError, UsageError
from supcon_tf.experiment.inputs import check_image_size, check_streaming, downsampling_factor
from supcon_tf.experiment.inputs import open_inputs as load_inputs
from supcon_tf.experiment.presets import get_preset, preset_notes
from supcon_tf.experiment.report import budget, dataset_summary

# Images decoded per split, from as many classes: enough to catch unreadable or
# mixed-size folders, few enough for seconds on any dataset.
SAMPLE_IMAGES = 4

# The smallest side every encoder takes; smaller in-RAM images are checked against it.
_SAFE_SIDE = 32


@dataclasses.dataclass
class Preflight:
    """What preflight found: the opened inputs, each stage's batch size, the notes.

    Attributes:
        inputs: the run's `ArrayInputs` or `StreamInputs`.
        batch_sizes: `{stage: global batch size}` of the stages this run trains.
        notes: lines a run states at its start (preset changes, unequal budgets).
        seconds: how long preflight took.
    """

    inputs: object
    batch_sizes: dict
    notes: list
    seconds: float

    def summary(self):
        """A JSON-compatible summary (what `dry_run` returns)."""
        inputs = self.inputs
        return {
            "dataset": dataset_summary(inputs),
            "batch_sizes": dict(self.batch_sizes),
            "notes": list(self.notes),
            "preflight_seconds": self.seconds,
        }


def preflight(config):
    """Checks that `config` can run, reading only what it must; see the module docstring.

    Args:
        config: an `ExperimentConfig`.

    Returns:
        A `Preflight`.

    Raises:
        UsageError: flags that do not fit the data (`image_size`, a preset's values).
        DataError: a missing path, an unreadable image, a split too small for a batch.
    """
    start = time.perf_counter()
    kind, location = resolve_dataset(config.dataset, config.data_dir)
    streamed = _check_streaming(config, kind)
    if streamed:
        check_image_size(config.image_size, config.encoder, config.stem)
    sample_images(
        kind,
        location,
        mixed_sizes_allowed=streamed,
        skip_corrupt=streamed and config.skip_corrupt_images,
    )
    inputs = open_inputs(config, kind)
    if not streamed and min(inputs.input_shape[:2]) < _SAFE_SIDE:
        check_image_side(inputs, config.encoder, config.stem)
    batch_sizes = check_batch_sizes(config, inputs)
    notes = preset_notes(config.preset, dataclasses.asdict(config))
    arms = budget(config)
    if arms and arms["note"]:
        notes.append(arms["note"])
    if inputs.streamed:
        logging.info("Validation split: %s.", inputs.validation_source)
    selecting = config.select_best_epoch or config.early_stopping_patience
    if selecting and inputs.num_validation == 0:
        notes.append(
            f"{inputs.name} has no validation split (--validation_fraction=0): best-epoch "
            "selection and early stopping are off, each classifier keeps its last epoch."
        )
    return Preflight(inputs, batch_sizes, notes, time.perf_counter() - start)


def _check_streaming(config, kind):
    """Whether the dataset streams; a clash with a preset's `image_size` names the preset."""
    try:
        return check_streaming(kind, config.dataset, config.image_size)
    except UsageError as error:
        preset_size = (
            get_preset(config.preset)["flags"].get("image_size") if config.preset else None
        )
        if preset_size is None or preset_size != config.image_size:
            raise
        raise UsageError(
            f"--preset={config.preset} sets --image_size={preset_size} for a streamed "
            f"dataset, but {config.dataset!r} is loaded into RAM; give --dataset an image "
            "folder, TFRecord shards or tfds:<name>."
        ) from error


def open_inputs(config, kind):
    """The run's inputs: the streamed splits listed, or the dataset loaded into RAM.

    Errors of the data become `DataError`s that name the file and the fix.
    """
    try:
        return load_inputs(config.data_source())
    except (UsageError, DataError):
        raise
    except (ValueError, OSError) as error:
        raise DataError(str(error)) from error
    except Exception as error:
        if kind != "named":
            raise
        # A named dataset that needs a download this machine cannot make.
        raise DataError(
            f"Cannot download dataset {config.dataset!r} ({type(error).__name__}: {error}); "
            f"put a copy in --data_dir as {config.dataset}.npz, or run where the download works."
        ) from error


def sample_images(kind, location, mixed_sizes_allowed, skip_corrupt=False):
    """Decodes the first images of each split of an image folder or TFRecord shards.

    Reads `SAMPLE_IMAGES` images per split (one from each of the first classes, or the
    first records of the first shard), so that it takes seconds on any dataset.

    Raises:
        DataError: an image does not decode (unless `skip_corrupt`), or the images have
            different sizes while `mixed_sizes_allowed` is False.
    """
    if kind == "folder":
        samples = _folder_samples(location)
    elif kind == "tfrecord":
        samples = _shard_samples(location)
    else:
        return
    shapes = {}
    for where, read in samples:
        try:
            image = tf.io.decode_image(read(), expand_animations=False)
        except (tf.errors.InvalidArgumentError, tf.errors.UnknownError) as error:
            if skip_corrupt:
                logging.warning("Preflight: %s does not decode; it will be skipped.", where)
                continue
            raise DataError(
                f"Cannot read image {where} ({_decode_reason(error)}); replace or remove it (or pass "
                "--skip_corrupt_images with --image_size to leave such images out)."
            ) from error
        shapes[where] = tuple(image.shape)
    if not mixed_sizes_allowed and len(set(shapes.values())) > 1:
        (first, first_shape), (other, other_shape) = _two_sizes(shapes)
        raise DataError(
            f"The images of {location} have different sizes ({first}: {first_shape}, "
            f"{other}: {other_shape}); set --image_size to stream them as square crops "
            "(32 for CIFAR-size images, 224 for ImageNet-size ones)."
        )


def _two_sizes(shapes):
    items = list(shapes.items())
    first = items[0]
    other = next(item for item in items if item[1] != first[1])
    return first, other


def _folder_samples(root):
    """`(path, read)` of one image from each of the first classes of every split."""
    class_names = _listing(folders.list_classes, root)
    samples = []
    for split in ("train", "test"):
        folder = f"{str(root).rstrip('/')}/{split}"
        for class_name in class_names[:SAMPLE_IMAGES]:
            class_dir = f"{folder}/{class_name}"
            if not tf.io.gfile.isdir(class_dir):
                continue
            names = sorted(
                name
                for name in tf.io.gfile.listdir(class_dir)
                if name.lower().endswith(folders.IMAGE_EXTENSIONS)
            )
            if names:
                path = f"{class_dir}/{names[0]}"
                samples.append((path, lambda path=path: tf.io.read_file(path)))
    return samples


def _shard_samples(directory):
    """`(shard #record, read)` of the first records of the first train and evaluation shard."""
    info = tfrecords.read_info(directory) or {}
    image_key = info.get("image_key", tfrecords.IMAGE_KEY)
    shards = tfrecords.find_shards(directory, tfrecords.TRAIN_PREFIX)[:1]
    for prefix in tfrecords.EVALUATION_PREFIXES:
        found = tfrecords.find_shards(directory, prefix)
        if found:
            shards.append(found[0])
            break
    samples = []
    for shard in shards:
        try:
            records = list(tf.data.TFRecordDataset(shard).take(SAMPLE_IMAGES // 2 or 1))
        except tf.errors.OpError as error:
            raise DataError(
                f"Cannot read the TFRecord shard {shard} ({error.message.splitlines()[0]}); "
                "write the shards again with supcon-prepare --overwrite."
            ) from error
        for index, record in enumerate(records):
            example = tf.train.Example.FromString(record.numpy())
            feature = example.features.feature.get(image_key)
            if feature is None or not feature.bytes_list.value:
                raise DataError(
                    f"Record {index} of {shard} has no image under {image_key!r}; set "
                    "image_key in dataset_info.json or write the shards with supcon-prepare."
                )
            payload = feature.bytes_list.value[0]
            samples.append((f"{shard} record {index}", lambda payload=payload: payload))
    return samples


def _listing(function, *arguments):
    """Runs a folder listing; its errors become `DataError`s."""
    try:
        return function(*arguments)
    except DataError:
        raise
    except (ValueError, OSError) as error:
        raise DataError(str(error)) from error


def check_image_side(inputs, encoder, stem):
    """`UsageError` when the in-RAM images are smaller than `encoder` downsamples."""
    side = min(inputs.input_shape[:2])
    factor = downsampling_factor(encoder, stem)
    if side < factor:
        raise UsageError(
            f"The images of {inputs.name} are {side} pixels a side, but encoder {encoder} "
            f"(stem {stem}) downsamples by {factor}; choose a smaller encoder such as "
            "small_cnn, or stream larger crops of an image folder with --image_size."
        )


def check_batch_sizes(config, inputs):
    """`{stage: batch size}` of the stages that train; `DataError` when one exceeds the split.

    A stage trains on whole batches only, so its batch must fit in the training split.
    """
    batch_sizes = {"pretrain": config.batch_size}
    batch_sizes["classifier"] = config.classifier_stage().batch_size
    if config.baseline:
        batch_sizes["baseline"] = config.batch_size
    if config.method == "hybrid":
        batch_sizes["hybrid"] = config.batch_size
    preset = get_preset(config.preset)["flags"] if config.preset else {}
    for stage, size in batch_sizes.items():
        if size <= inputs.num_train:
            continue
        flag = "classifier_batch_size" if stage == "classifier" else "batch_size"
        if stage == "classifier" and config.classifier_batch_size is None:
            flag = "batch_size"
        origin = f" (set by --preset={config.preset})" if preset.get(flag) == size else ""
        raise DataError(
            f"The {stage} stage's batch size {size}{origin} exceeds the {inputs.num_train} "
            f"training images of {inputs.name}; set --{flag} to at most {inputs.num_train}."
        )
    return batch_sizes


def _decode_reason(error):
    """TensorFlow's decode error without its op and function-node decorations.

    >>> _decode_reason(tf.errors.InvalidArgumentError(None, None,
    ...     "{{function_node __wrapped__DecodeImage_device_/job:localhost}} Unknown image "
    ...     "file format. One of JPEG, PNG required. [Op:DecodeImage] name: "))
    'Unknown image file format. One of JPEG, PNG required.'
    """
    reason = error.message.splitlines()[0]
    reason = re.sub(r"\{\{function_node [^}]*\}\}\s*", "", reason)
    return re.sub(r"\s*\[Op:\w+\].*$", "", reason).strip()
