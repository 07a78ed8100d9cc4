"""The files of a run folder on any `tf.io.gfile` file system: local, `gs://`, `ram://`.

A run folder (`model_dir`) is a local path or the URL of a file system TensorFlow
reads and writes: `gs://bucket/run` on Cloud TPU VMs, `ram://run` (in memory, what
the tests use in place of a bucket), `hdfs://...`. These helpers keep paths as
strings (`pathlib` would turn `gs://bucket` into `gs:/bucket`) and do all their I/O
through `tf.io.gfile`. `write_atomically` writes under a temporary name and renames
(with `overwrite=True`): a reader sees the old file or the whole new one. On a
local disk the rename is atomic; on an object store (`gs://`) it is a copy and a
delete, so a reader never sees a partial file but the swap itself is not atomic.

Example:

>>> import tempfile
>>> path = join(tempfile.mkdtemp(), "phases", "pretrain.json")
>>> write_atomically(path, '{"loss": 0.5}')
>>> read_text(path)
'{"loss": 0.5}'
>>> is_file(path), is_remote(path), is_remote("gs://bucket/run")
(True, False, True)
>>> join("gs://bucket/run", "logs", "pretrain")
'gs://bucket/run/logs/pretrain'
"""

import contextlib
import os

import tensorflow as tf


def join(folder, *names):
    """`folder/name/...` as a string, keeping a `scheme://` prefix intact."""
    return tf.io.gfile.join(os.fspath(folder), *names)


def is_remote(path):
    """Whether `path` is a URL (`gs://...`, `ram://...`) rather than a local path."""
    return "://" in os.fspath(path)


def is_file(path):
    """Whether `path` exists and is not a folder."""
    path = os.fspath(path)
    return tf.io.gfile.exists(path) and not tf.io.gfile.isdir(path)


def read_text(path):
    """The text of the file `path` (UTF-8)."""
    with tf.io.gfile.GFile(os.fspath(path), "rb") as file:
        return file.read().decode("utf-8")


def write_atomically(path, data):
    """Writes `data` (bytes or str) to `path` through a temporary file and a rename.

    A reader sees the old file or the complete new one, never a part; works on every
    `tf.io.gfile` file system (local, `gs://`). The folder is created if missing.

    Example:

    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "a", "b.txt")
    >>> write_atomically(path, "hello")
    >>> open(path).read()
    'hello'
    """
    path = os.fspath(path)
    folder = os.path.dirname(path)
    if folder:
        tf.io.gfile.makedirs(folder)
    temporary = f"{path}.tmp-{os.getpid()}"
    mode = "wb" if isinstance(data, bytes) else "w"
    with tf.io.gfile.GFile(temporary, mode) as file:
        file.write(data)
    tf.io.gfile.rename(temporary, path, overwrite=True)


def remove(path):
    """Deletes the file `path` if it exists."""
    with contextlib.suppress(tf.errors.NotFoundError):
        tf.io.gfile.remove(os.fspath(path))
