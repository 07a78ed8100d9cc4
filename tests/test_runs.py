"""Tests of supcon_tf.experiment.runs: the run folder, its configuration check and phase markers."""

import json

import pytest
import tensorflow as tf

from supcon_tf.experiment.runs import RunDirectory
from supcon_tf.files import read_text, write_atomically


class TestRunDirectory:
    def test_phase_paths(self, tmp_path):
        paths = RunDirectory(tmp_path).phase_paths("classifier")
        assert paths.backup == str(tmp_path / "backup" / "classifier")
        assert paths.logs == str(tmp_path / "logs" / "classifier")
        assert paths.marker == str(tmp_path / "phases" / "classifier.json")

    def test_record_config_writes_and_accepts_the_same_one(self, tmp_path):
        run = RunDirectory(tmp_path / "run")
        run.record_config({"temperature": 0.1, "verbose": 1})
        run.record_config({"temperature": 0.1, "verbose": 1})
        assert json.loads((tmp_path / "run" / "config.json").read_text()) == {
            "temperature": 0.1,
            "verbose": 1,
        }

    def test_record_config_refuses_another_configuration(self, tmp_path):
        run = RunDirectory(tmp_path)
        run.record_config({"temperature": 0.1, "views": 2})
        with pytest.raises(
            ValueError, match=r"different configuration \(temperature: 0.1 -> 0.2\)"
        ):
            run.record_config({"temperature": 0.2, "views": 2})

    def test_record_config_allows_resumable_fields_to_change(self, tmp_path):
        run = RunDirectory(tmp_path)
        run.record_config({"temperature": 0.1, "verbose": 1}, resumable_fields=("verbose",))
        run.record_config({"temperature": 0.1, "verbose": 0}, resumable_fields=("verbose",))
        assert json.loads((tmp_path / "config.json").read_text())["verbose"] == 0

    def test_an_option_newer_than_the_run_counts_as_unchanged_at_its_default(self, tmp_path):
        run = RunDirectory(tmp_path)
        run.record_config({"temperature": 0.1})  # written before `split` existed
        defaults = {"temperature": 0.1, "split": "standard"}
        run.check_config({"temperature": 0.1, "split": "standard"}, defaults=defaults)
        with pytest.raises(ValueError, match=r"split: 'standard' -> 'class_disjoint'"):
            run.check_config({"temperature": 0.1, "split": "class_disjoint"}, defaults=defaults)
        with pytest.raises(ValueError, match=r"split: None -> 'standard'"):
            run.check_config({"temperature": 0.1, "split": "standard"})

    def test_run_phase_writes_a_marker_and_does_not_rerun(self, tmp_path):
        run = RunDirectory(tmp_path)
        calls = []

        def train():
            calls.append(1)
            return {"loss": 0.25}

        first = run.run_phase("pretrain", train, seed=3)
        second = run.run_phase("pretrain", train, seed=3)
        assert calls == [1]
        assert first["loss"] == second["loss"] == 0.25
        assert second["seconds"] == first["seconds"] >= 0
        marker = json.loads((tmp_path / "phases" / "pretrain.json").read_text())
        assert marker == first


class TestRunDirectoryOnGfile:
    """The same run folder on `ram://`, TensorFlow's in-memory file system (as `gs://`)."""

    def test_paths_keep_the_scheme(self, ram_dir):
        run = RunDirectory(f"{ram_dir}/run")
        assert run.root == f"{ram_dir}/run"
        assert not tf.io.gfile.exists(run.root)  # nothing is written before the run claims it
        with run.lock():
            assert tf.io.gfile.isdir(run.root)
        assert run.phase_paths("pretrain").marker == f"{ram_dir}/run/phases/pretrain.json"

    def test_record_config_and_markers(self, ram_dir):
        run = RunDirectory(ram_dir)
        run.record_config({"temperature": 0.1, "verbose": 1}, resumable_fields=("verbose",))
        run.record_config({"temperature": 0.1, "verbose": 0}, resumable_fields=("verbose",))
        assert json.loads(read_text(f"{ram_dir}/config.json")) == {
            "temperature": 0.1,
            "verbose": 0,
        }
        with pytest.raises(ValueError, match=r"different configuration \(temperature: 0.1 -> 0.3"):
            run.record_config({"temperature": 0.3, "verbose": 0})
        calls = []

        def train():
            calls.append(1)
            return {"loss": 0.25}

        first = run.run_phase("pretrain", train, seed=0)
        assert run.run_phase("pretrain", train, seed=0) == first
        assert calls == [1]
        assert json.loads(read_text(f"{ram_dir}/phases/pretrain.json")) == first

    def test_finished_phase_removes_its_backup(self, ram_dir):
        run = RunDirectory(ram_dir)
        backup = run.phase_paths("classifier").backup
        write_atomically(f"{backup}/ckpt-3.npz", b"state")
        run.run_phase("classifier", lambda: {"loss": 0.5}, seed=0)
        assert not tf.io.gfile.exists(backup)
