"""A finished `supcon-train` run, read for serving: its models, classes and input spec.

`check_finished_run(model_dir)` refuses, with one sentence, a folder that is missing,
is not a run, or holds a run that has not finished. `InputSpec.of_run(model_dir, source)`
says how the run read its images at evaluation: the size its encoder takes, its
channels, and for a streamed run the central crop (`source` is the run's
`supcon_tf.experiment.DataSource`, as `supcon-eval` reads it).

Example:

>>> spec = InputSpec(height=32, width=32, channels=3, center_crop_fraction=0.875)
>>> spec.streamed, spec.shape
(True, (32, 32, 3))
>>> check_finished_run("/no/such/run")
Traceback (most recent call last):
...
supcon_tf.errors.DataError: --model_dir=/no/such/run does not exist; pass the folder of a \
finished supcon-train run
"""

import dataclasses
import json
import logging

import tensorflow as tf

from supcon_tf.data import folders
from supcon_tf.data.arrays import resolve_dataset
from supcon_tf.data.crops import crop_settings
from supcon_tf.data.sources import open_streaming_dataset
from supcon_tf.errors import DataError
from supcon_tf.evaluation import CLASSIFIER_FILES, ENCODER_FILES
from supcon_tf.evaluation.run import _load_model
from supcon_tf.experiment.inputs import open_inputs
from supcon_tf.experiment.runs import CONFIG_FILE, REPORT_FILE
from supcon_tf.files import is_file, join, read_text
from supcon_tf.serving.module import ServingModule

ENCODER_FILE = ENCODER_FILES["supcon"]
CLASSIFIER_FILE = CLASSIFIER_FILES["supcon"]


def check_finished_run(model_dir):
    """Raises `DataError` unless `model_dir` holds a finished run; returns its report.

    A run folder has `config.json`; a finished one also `report.json`, `encoder.keras`
    and `classifier.keras`.
    """
    model_dir = str(model_dir)
    if not tf.io.gfile.isdir(model_dir):
        raise DataError(
            f"--model_dir={model_dir} does not exist; pass the folder of a finished "
            "supcon-train run"
        )
    if not is_file(join(model_dir, CONFIG_FILE)):
        raise DataError(
            f"--model_dir={model_dir} is not a supcon-train run folder (it has no "
            f"{CONFIG_FILE}); pass the --model_dir that supcon-train wrote"
        )
    if not is_file(join(model_dir, REPORT_FILE)):
        raise DataError(
            f"--model_dir={model_dir} holds an unfinished run (no {REPORT_FILE}); finish it "
            "by running supcon-train again with the same flags"
        )
    for name in (ENCODER_FILE, CLASSIFIER_FILE):
        if not is_file(join(model_dir, name)):
            raise DataError(
                f"--model_dir={model_dir} has no {name}; it is not a complete supcon-train "
                "run: train it again into a new --model_dir"
            )
    try:
        return json.loads(read_text(join(model_dir, REPORT_FILE)))
    except ValueError as error:
        raise DataError(
            f"{join(model_dir, REPORT_FILE)} is not valid JSON ({error}); run supcon-train "
            "again with the same flags to rewrite it"
        ) from error


def load_model(model_dir, name):
    """The Keras model `name` (`encoder.keras`, `classifier.keras`) of a run folder."""
    return _load_model(join(model_dir, name))


@dataclasses.dataclass(frozen=True)
class InputSpec:
    """How a run's encoder reads images, as its evaluation did.

    Attributes:
        height, width, channels: the images the encoder takes, in `[0, 1]`.
        center_crop_fraction: for a streamed run, the side of the central square kept
            before the resize, as a fraction of the shorter side (1.0: the whole
            central square); `None` for a run trained in RAM, whose images are
            resized whole (when their size differs) and never cropped.
    """

    height: int
    width: int
    channels: int
    center_crop_fraction: float | None = None

    @property
    def streamed(self):
        """Whether the run streamed its data (its images were centre-cropped)."""
        return self.center_crop_fraction is not None

    @property
    def shape(self):
        """`(height, width, channels)`."""
        return (self.height, self.width, self.channels)

    @classmethod
    def of_run(cls, encoder, source):
        """The spec of a run, from its encoder (`encoder.keras`) and its `DataSource`."""
        height, width, channels = encoder.input_shape[1:]
        if source.image_size is None:
            return cls(height, width, channels)
        _, fraction = crop_settings(source.image_size, None, source.center_crop_fraction)
        return cls(height, width, channels, float(fraction))

    def to_json(self):
        """A JSON-ready dict of the spec."""
        return dataclasses.asdict(self)


def class_names(source, num_classes):
    """The run's class names, in label order, read from its dataset's listing.

    An image folder names its classes by its folders, TFRecord shards and TFDS by
    their metadata; other datasets (named, `.npz`) by the label indices. A
    class-disjoint run's classifier knows the seen classes only: their names. When the
    dataset cannot be listed any more (moved, deleted), the indices are used, with a
    warning.
    """
    indices = [str(index) for index in range(num_classes)]
    try:
        kind, location = resolve_dataset(source.dataset, source.data_dir)
        if source.split != "standard":
            # The classes it trained on, as the run chose them (the seen ones).
            names = list(open_inputs(source).splits.class_names)
        elif kind == "folder":
            names = list(folders.list_classes(location))
        elif kind in ("tfrecord", "tfds"):
            names = list(open_streaming_dataset(location, source.data_dir).class_names)
        else:
            names = indices
    except (OSError, ValueError, ImportError) as error:
        logging.warning("Class names of %s unavailable (%s); using indices.", source.dataset, error)
        return indices
    if len(names) != num_classes:
        logging.warning(
            "%s lists %d classes, the run trained on %d; using indices.",
            source.dataset,
            len(names),
            num_classes,
        )
        return indices
    return [str(name) for name in names]


def serving_module(model_dir, source, report):
    """The `ServingModule` of a finished run (`check_finished_run` gave its `report`)."""
    encoder = load_model(model_dir, ENCODER_FILE)
    classifier = load_model(model_dir, CLASSIFIER_FILE)
    num_classes = report.get("dataset", {}).get("num_classes") or classifier.output_shape[-1]
    names = class_names(source, int(num_classes))
    return ServingModule(encoder, classifier, InputSpec.of_run(encoder, source), names)
