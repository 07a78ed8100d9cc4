"""Tests of supcon_tf.files: run-folder I/O on local paths and on `ram://` (for `gs://`)."""

import tensorflow as tf

from supcon_tf.files import is_file, is_remote, join, read_text, remove, write_atomically


def test_join_keeps_the_scheme():
    assert join("gs://bucket/run", "logs", "pretrain") == "gs://bucket/run/logs/pretrain"
    assert join("ram://run/", "phases", "a.json") == "ram://run/phases/a.json"


def test_is_remote():
    assert is_remote("gs://bucket/run") and is_remote("ram://run")
    assert not is_remote("runs/supcon") and not is_remote("/tmp/run")


def test_write_atomically_creates_replaces_and_leaves_no_temporary(ram_dir):
    path = join(ram_dir, "a", "b", "report.json")
    write_atomically(path, '{"é": 1}')
    assert read_text(path) == '{"é": 1}'
    write_atomically(path, b"\x89PNG")
    with tf.io.gfile.GFile(path, "rb") as file:
        assert file.read() == b"\x89PNG"
    assert tf.io.gfile.listdir(join(ram_dir, "a", "b")) == ["report.json"]


def test_write_atomically_on_a_local_path(tmp_path):
    path = tmp_path / "new" / "config.json"
    write_atomically(path, "first")
    write_atomically(str(path), "second")
    assert path.read_text() == "second"
    assert sorted(item.name for item in path.parent.iterdir()) == ["config.json"]


def test_is_file_and_remove(ram_dir):
    path = join(ram_dir, "run.lock")
    assert not is_file(path)
    write_atomically(path, "{}")
    assert is_file(path)
    assert not is_file(ram_dir)  # a folder
    remove(path)
    assert not is_file(path)
    remove(path)  # a missing file is no error
