"""Embeddings of a dataset on disk, streamed: what `supcon-embed` writes.

`embed_images(module, images)` yields the L2-normalised embeddings of `Images` batch by
batch; `write_embeddings(module, images, output)` writes them to `output`:

- `embeddings.npy`: float32 `[N, D]`, L2-normalised, written batch by batch into a
  memory-mapped file (memory holds one batch, whatever N);
- `labels.npy`: int64 `[N]`, indices into the class names;
- `names.json`: the `N` names (file paths, or indices in the split for shards and
  arrays), in row order;
- `embeddings.json`: what was embedded (class names, count, dimension, seconds, and
  the caller's `details`).

Example:

>>> import keras, numpy as np, tempfile
>>> from supcon_tf.serving.module import ServingModule
>>> from supcon_tf.serving.runs import InputSpec
>>> encoder = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(),
...                             keras.layers.Dense(4)])
>>> module = ServingModule(encoder, encoder, InputSpec(8, 8, 1), [str(n) for n in range(4)])
>>> images = open_images("digits", "test", module.spec, batch_size=128)
>>> summary = write_embeddings(module, images, tempfile.mkdtemp(), progress=False)
>>> summary["count"], summary["dimension"]
(360, 4)
"""

import json
import sys
import time

import keras
import numpy as np

from supcon_tf.files import join
from supcon_tf.serving.images import open_images
from supcon_tf.serving.outputs import check_output, prepare_output
from supcon_tf.serving.runs import check_finished_run, serving_module


def embed_images(module, images):
    """`(embeddings, labels)` of each batch of `images`, through `module.encode`."""
    for batch, labels in images.batches:
        embeddings = module.encode(batch).numpy()
        yield embeddings, np.asarray(labels).reshape(-1).astype(np.int64)


def write_embeddings(module, images, output, details=None, progress=True):
    """Writes the embeddings, labels and names of `images` into the folder `output`.

    Args:
        module: a `supcon_tf.serving.module.ServingModule` (its `encode`).
        images: `supcon_tf.serving.images.Images`.
        output: an existing local folder.
        details: a JSON-ready dict added to `embeddings.json` (the run, the data).
        progress: a progress bar on a terminal (standard output), nothing elsewhere.

    Returns:
        The dict written to `embeddings.json`.
    """
    start = time.perf_counter()
    bar = None
    if progress and sys.stdout.isatty():
        bar = keras.utils.Progbar(images.count, unit_name="image")
    embeddings = None
    labels = np.zeros(images.count, np.int64)
    done = 0
    for batch, batch_labels in embed_images(module, images):
        if embeddings is None:
            embeddings = np.lib.format.open_memmap(
                join(output, "embeddings.npy"),
                mode="w+",
                dtype=np.float32,
                shape=(images.count, batch.shape[1]),
            )
        embeddings[done : done + len(batch)] = batch
        labels[done : done + len(batch)] = batch_labels
        done += len(batch)
        if bar is not None:
            bar.update(done)
    if done != images.count:
        raise RuntimeError(f"{done} images were embedded, {images.count} were listed.")
    embeddings.flush()
    np.save(join(output, "labels.npy"), labels)
    with open(join(output, "names.json"), "w", encoding="utf-8") as file:
        json.dump(images.names, file, indent=0)
    summary = {
        **(details or {}),
        "count": images.count,
        "dimension": int(embeddings.shape[1]),
        "embedding": "encoder output (before the projection head), L2-normalised",
        "class_names": images.class_names,
        "files": {"embeddings": "embeddings.npy", "labels": "labels.npy", "names": "names.json"},
        "seconds": round(time.perf_counter() - start, 3),
    }
    with open(join(output, "embeddings.json"), "w", encoding="utf-8") as file:
        json.dump(summary, file, indent=2)
    return summary


def embed_run(
    model_dir, source, data, split, output, overwrite=False, batch_size=256, progress=True
):
    """What `supcon-embed` runs: the run's embeddings of one split of `data`, on disk.

    Args:
        model_dir: a finished run folder.
        source: the run's `supcon_tf.experiment.DataSource` (see
            `supcon_tf.cli.evaluate.run_source`).
        data: a dataset as `supcon-train --dataset` takes it (`None`: the run's own).
        split: `"train"` (every training image) or `"test"`.
        output: a local folder, new or empty (replaced with `overwrite`).
        batch_size: images per forward pass.
        progress: a progress bar on a terminal.

    Returns:
        The dict written to `embeddings.json`.
    """
    check_output(output, overwrite)
    report = check_finished_run(model_dir)
    module = serving_module(model_dir, source, report)
    data_dir = source.data_dir
    data = source.dataset if data is None else data
    images = open_images(data, split, module.spec, batch_size, data_dir)
    prepare_output(output, overwrite)
    details = {"source_run": str(model_dir), "data": str(data), "split": split}
    return write_embeddings(module, images, output, details, progress)
