"""`export_run`: a finished run as one SavedModel (what `supcon-export` runs).

It writes into `output`:

- `saved_model/`: the `ServingModule` of the run (`tf.saved_model.save`), with the
  signatures `embed`, `classify` and, with a gallery, `search` (uint8 images; `*_float`
  for float32 images in `[0, 1]`); `tf.saved_model.load` reads it without Keras or
  `supcon_tf`;
- `encoder.tflite` (optional): the encoder on preprocessed images (float32
  `[N, height, width, channels]` in `[0, 1]`) to L2-normalised embeddings;
- `export.json`: the signatures, the input spec, the class names, the source run, the
  gallery, and the agreement measured on a seeded batch of random images: the
  SavedModel loaded back against the module it was saved from, and the TFLite file
  against the SavedModel (largest absolute differences).

Example:

>>> import keras, tempfile
>>> from supcon_tf.serving.module import ServingModule
>>> from supcon_tf.serving.runs import InputSpec
>>> encoder = keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Flatten(),
...                             keras.layers.Dense(3)])
>>> classifier = keras.Sequential([encoder, keras.layers.Dense(2)])
>>> module = ServingModule(encoder, classifier, InputSpec(4, 4, 1), ["cat", "dog"])
>>> record = export_module(module, tempfile.mkdtemp())
>>> record["agreement"]["saved_model"]["embeddings"] < 1e-6
True
"""

import contextlib
import json
import logging
import time
import warnings

import numpy as np
import tensorflow as tf
from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

from supcon_tf import checks
from supcon_tf.files import join
from supcon_tf.serving.embed import embed_images
from supcon_tf.serving.images import open_images
from supcon_tf.serving.module import ServingModule
from supcon_tf.serving.outputs import check_output, prepare_output
from supcon_tf.serving.preprocessing import preprocess
from supcon_tf.serving.runs import check_finished_run, serving_module

SAVED_MODEL = "saved_model"
TFLITE_FILE = "encoder.tflite"
EXPORT_FILE = "export.json"
# Images in the agreement check.
PROBE_IMAGES = 8

_OUTPUTS = {
    "embed": {"embeddings": "float32 [N, D], L2-normalised encoder output"},
    "classify": {
        "probabilities": "float32 [N, C], softmax of the linear classifier",
        "labels": "int64 [N], the most probable class",
        "class_names": "string [N], its name",
    },
    "search": {
        "ids": "string [N, k], gallery ids (file paths or indices), best first",
        "indices": "int64 [N, k], gallery rows",
        "scores": "float32 [N, k], cosine similarities",
        "labels": "int64 [N, k], gallery labels",
    },
}


def probe_images(spec, seed=0):
    """A seeded batch of random uint8 images `[PROBE_IMAGES, height, width, channels]`."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (PROBE_IMAGES, *spec.shape), dtype=np.uint8)


def _largest_differences(expected, actual):
    """`{output name: max |expected - actual|}` over the float outputs; exact for the rest."""
    differences = {}
    for name, value in expected.items():
        value, other = np.asarray(value), np.asarray(actual[name])
        if value.dtype.kind == "f":
            differences[name] = float(np.max(np.abs(value - other))) if value.size else 0.0
        else:
            differences[f"{name}_equal"] = bool(np.array_equal(value, other))
    return differences


def _outputs(functions, images):
    return {
        name: {key: value.numpy() for key, value in function(images).items()}
        for name, function in functions.items()
    }


def export_module(module, output, tflite=False, details=None):
    """Saves `module` into the existing folder `output`; returns the `export.json` record.

    Args:
        module: a `supcon_tf.serving.module.ServingModule`.
        output: a local folder (empty).
        tflite: also write `encoder.tflite` and measure its agreement.
        details: a JSON-ready dict added to the record (the source run, the gallery).
    """
    start = time.perf_counter()
    signatures = module.signatures()
    path = join(output, SAVED_MODEL)
    with _tensorflow_info_hidden():
        tf.saved_model.save(module, path, signatures=signatures)
    probe = probe_images(module.spec)
    names = [name for name in ("embed", "classify", "search") if name in signatures]
    expected = _outputs({name: signatures[name] for name in names}, tf.constant(probe))
    loaded = tf.saved_model.load(path)
    actual = _outputs({name: loaded.signatures[name] for name in names}, tf.constant(probe))
    agreement = {"probe": f"{PROBE_IMAGES} seeded random uint8 images", "saved_model": {}}
    for name in names:
        for key, value in _largest_differences(expected[name], actual[name]).items():
            agreement["saved_model"][key if name != "search" else f"search_{key}"] = value
    if tflite:
        with _tensorflow_info_hidden():
            agreement["tflite"] = _write_tflite(module, output, probe, expected["embed"])
    record = {
        **(details or {}),
        "saved_model": SAVED_MODEL,
        "load": f"tf.saved_model.load('{SAVED_MODEL}'); model.signatures['embed'](images=...)",
        "signatures": _signature_record(signatures),
        "input": {
            **module.spec.to_json(),
            "dtypes": {"uint8": "pixels in [0, 255]", "float32": "pixels in [0, 1] (*_float)"},
            "shape": "[N, H, W, C], any H and W; C the channels (or 1 for RGB models)",
        },
        "class_names": [name.decode() for name in module.class_names.numpy()],
        "embedding": {
            "what": "encoder output (before the projection head), L2-normalised",
            "dimension": int(expected["embed"]["embeddings"].shape[1]),
        },
        "tflite": TFLITE_FILE if tflite else None,
        "agreement": agreement,
    }
    record["seconds"] = round(time.perf_counter() - start, 3)
    with open(join(output, EXPORT_FILE), "w", encoding="utf-8") as file:
        json.dump(record, file, indent=2)
    return record


@contextlib.contextmanager
def _tensorflow_info_hidden():
    """Hides the INFO lines TensorFlow logs while saving and converting (renamed inputs,
    assets, fingerprints): they say nothing a user can act on. Warnings still show."""
    loggers = [tf.get_logger(), logging.getLogger("absl")]
    levels = [logger.level for logger in loggers]
    for logger, level in zip(loggers, levels, strict=True):
        logger.setLevel(max(level, logging.WARNING))
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def _signature_record(signatures):
    record = {}
    for name, function in signatures.items():
        base = name.removesuffix("_float") if name != "serving_default" else "embed"
        spec = tf.nest.flatten(function.structured_input_signature)[0]
        record[name] = {
            "inputs": {"images": f"{spec.dtype.name} [N, H, W, C]"},
            "outputs": _OUTPUTS[base],
        }
    return record


def _write_tflite(module, output, probe, expected):
    """Writes `encoder.tflite`; returns its agreement with the SavedModel's embeddings."""
    # The converter keeps Keras 3 weights as resource variables that the interpreter
    # never initialises (its outputs are NaN): the weights are folded in as constants.
    frozen = convert_variables_to_constants_v2(module.encode_function())
    converter = tf.lite.TFLiteConverter.from_concrete_functions([frozen])
    path = join(output, TFLITE_FILE)
    with open(path, "wb") as file:
        file.write(converter.convert())
    with warnings.catch_warnings():  # tf.lite.Interpreter's notice that LiteRT replaces it
        warnings.simplefilter("ignore", UserWarning)
        interpreter = tf.lite.Interpreter(model_path=path)
    preprocessed = preprocess(probe, module.spec).numpy()
    index = interpreter.get_input_details()[0]["index"]
    interpreter.resize_tensor_input(index, preprocessed.shape)
    interpreter.allocate_tensors()
    interpreter.set_tensor(index, preprocessed)
    interpreter.invoke()
    embeddings = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    return {
        "embeddings": float(np.max(np.abs(embeddings - expected["embeddings"]))),
        "input": "float32 [N, height, width, channels] in [0, 1] (preprocessed)",
    }


def export_run(
    model_dir,
    source,
    output,
    gallery=None,
    gallery_split="train",
    top_k=10,
    tflite=False,
    overwrite=False,
    batch_size=256,
):
    """Exports the finished run in `model_dir` into `output` (see the module docstring).

    Args:
        model_dir: the run folder.
        source: the run's `supcon_tf.experiment.DataSource` (how it read its data; see
            `supcon_tf.cli.evaluate.run_source`).
        output: the export folder (new or empty; replaced with `overwrite`).
        gallery: optional dataset embedded into the `search` signature (as
            `supcon-train --dataset` takes it, read as the run reads images).
        gallery_split: its split, `"train"` or `"test"`.
        top_k: results per query of `search`.
        tflite: also write `encoder.tflite`.
        overwrite: replace what `output` holds.
        batch_size: images per forward pass while embedding the gallery.

    Returns:
        The `export.json` record.

    Raises:
        DataError: `model_dir` does not hold a finished run; an unreadable gallery.
        UsageError: `output` is not empty (without `overwrite`); a bad `top_k`.
    """
    top_k = checks.integer("top_k", top_k, minimum=1)
    check_output(output, overwrite)
    report = check_finished_run(model_dir)
    module = serving_module(model_dir, source, report)
    details = {"source_run": str(model_dir), "method": report.get("method"), "search": None}
    if gallery is not None:
        images = open_images(gallery, gallery_split, module.spec, batch_size, source.data_dir)
        parts = list(embed_images(module, images))
        embeddings = np.concatenate([part[0] for part in parts])
        labels = np.concatenate([part[1] for part in parts])
        module = ServingModule(
            module.encoder,
            module.classifier,
            module.spec,
            [name.decode() for name in module.class_names.numpy()],
            gallery=(embeddings, labels, images.names),
            top_k=top_k,
        )
        details["search"] = {
            "gallery": str(gallery),
            "split": gallery_split,
            "size": images.count,
            "top_k": module.top_k,
            "class_names": images.class_names,
            "ties": "equal scores: the lower gallery index first",
        }
    prepare_output(output, overwrite)
    return export_module(module, output, tflite=tflite, details=details)
