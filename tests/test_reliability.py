"""Faults and bad input in a training run: kills, preemption, locks, damaged files, pickles.

The kill tests run `supcon-train --deterministic` in subprocesses through
`tests._fault_injection`, which kills the process (SIGKILL) after a given number of
batches or in the middle of a checkpoint write, or sends it SIGTERM; the resumed run
must end on the weights of an uninterrupted run.
"""

import json
import os
import random
import signal
import socket
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from supcon_tf.data import load_dataset
from supcon_tf.evaluation.run import _load_model
from supcon_tf.experiment import ExperimentConfig, run_experiment, runs
from supcon_tf.experiment.runs import RunDirectory, RunLockedError
from supcon_tf.files import read_text, write_atomically

ROOT = Path(__file__).resolve().parents[1]
EXIT_STOPPED = 75

# 10 batches per epoch; 3 + 1 epochs: 40 batches, a checkpoint every 3 and at epoch ends.
TRAIN_FLAGS = [
    "--dataset=digits",
    "--width_multiplier=0.125",
    "--batch_size=128",
    "--pretrain_epochs=3",
    "--classifier_epochs=1",
    "--nobaseline",
    "--backup_steps=3",
    "--noevaluate",
    "--noknn_monitor",
    "--deterministic",
    "--verbose=0",
]


def _launch(model_dir, *faults):
    environment = dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests._fault_injection",
            *faults,
            "--",
            *TRAIN_FLAGS,
            f"--model_dir={model_dir}",
        ],
        cwd=ROOT,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _finish(process, expected_status, context):
    try:
        output = process.communicate(timeout=900)[0]
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == expected_status, f"{context}\n{output[-6000:]}"
    return output


def _weights(model_dir):
    return {
        name: keras.saving.load_model(Path(model_dir) / name, safe_mode=True).get_weights()
        for name in ("encoder.keras", "classifier.keras")
    }


def _faults(kills, rng):
    """`kills` faults: SIGKILL at random batches, one of them during a checkpoint write.

    Checkpoint writes 1-3 of a process include the very first one (no backup folder yet).
    """
    faults = [f"--kill_after={rng.randint(1, 9)}" for _ in range(kills - 1)]
    faults.insert(rng.randrange(kills), f"--kill_in_write={rng.randint(1, 3)}")
    return faults


def _killed_run_matches_uninterrupted(tmp_path, kills, preempt=False, seed=None):
    """Kills, reruns and compares; `seed` (random by default, printed on failure) picks the faults."""
    if seed is None:
        seed = random.SystemRandom().randrange(2**32)
    rng = random.Random(seed)
    faults = _faults(kills, rng)
    context = f"faults {faults} (seed {seed})"
    reference = _launch(tmp_path / "uninterrupted")
    killed_dir = tmp_path / "killed"
    for fault in faults:
        output = _finish(
            _launch(killed_dir, fault), -signal.SIGKILL, f"{context}: {fault} did not kill"
        )
        assert not (killed_dir / "report.json").exists(), output[-3000:]
    if preempt:
        output = _finish(
            _launch(killed_dir, f"--term_after={rng.randint(1, 5)}"), EXIT_STOPPED, context
        )
        assert "Run the same command again to resume" in output
    _finish(_launch(killed_dir), 0, context)
    _finish(reference, 0, "the uninterrupted run")
    assert not (killed_dir / "run.lock").exists()
    assert not any((killed_dir / "backup").iterdir())
    expected, got = _weights(tmp_path / "uninterrupted"), _weights(killed_dir)
    for name in expected:
        for want, have in zip(expected[name], got[name], strict=True):
            np.testing.assert_allclose(have, want, rtol=0, atol=1e-6, err_msg=f"{name}, {context}")
    reports = [
        json.loads((folder / "report.json").read_text())
        for folder in (tmp_path / "uninterrupted", killed_dir)
    ]
    assert reports[1]["supcon"] == pytest.approx(reports[0]["supcon"], abs=1e-6)


def test_killed_during_a_checkpoint_write_resumes_to_the_same_weights(tmp_path):
    _killed_run_matches_uninterrupted(tmp_path, kills=1)


@pytest.mark.slow
@pytest.mark.parametrize(("kills", "preempt"), [(2, True), (3, False)])
def test_killed_several_times_resumes_to_the_same_weights(tmp_path, kills, preempt):
    _killed_run_matches_uninterrupted(tmp_path, kills, preempt)


class TestLock:
    def write_lock(self, folder, pid, host=None):
        folder.mkdir(parents=True, exist_ok=True)
        owner = {"pid": pid, "host": host or socket.gethostname(), "started": 0.0}
        (folder / "run.lock").write_text(json.dumps(owner))

    def test_a_second_run_is_refused_naming_the_first(self, tmp_path):
        first = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        try:
            self.write_lock(tmp_path / "run", first.pid)
            config = ExperimentConfig(model_dir=str(tmp_path / "run"), verbose=0)
            with pytest.raises(RunLockedError) as refused:
                run_experiment(config)
        finally:
            first.kill()
            first.wait()
        message = str(refused.value)
        assert f"in use by process {first.pid} on host {socket.gethostname()}" in message
        assert not (tmp_path / "run" / "config.json").exists()

    def test_a_stale_lock_is_taken_over(self, tmp_path, caplog):
        gone = subprocess.Popen([sys.executable, "-c", "pass"])
        gone.wait()
        self.write_lock(tmp_path, gone.pid)
        with RunDirectory(tmp_path).lock():
            owner = json.loads((tmp_path / "run.lock").read_text())
            assert owner["pid"] == os.getpid()
        assert f"Taking over the stale lock {tmp_path / 'run.lock'} of process {gone.pid}" in (
            caplog.text
        )
        assert not (tmp_path / "run.lock").exists()

    def test_a_damaged_lock_is_stale_and_another_hosts_is_not(self, tmp_path):
        (tmp_path / "run.lock").write_text('{"pid": 12')
        with RunDirectory(tmp_path).lock():
            pass
        self.write_lock(tmp_path, 1, host="another-host")
        with pytest.raises(RunLockedError, match="in use by process 1 on host another-host"):
            RunDirectory(tmp_path).lock().__enter__()


class TestLockOnGfile:
    """`run.lock` on `ram://` (as on `gs://`): no exclusive create, so written and read back."""

    def write_lock(self, folder, pid, host=None):
        owner = {"pid": pid, "host": host or socket.gethostname(), "started": 0.0}
        write_atomically(f"{folder}/run.lock", json.dumps(owner))

    def test_another_hosts_lock_is_refused_naming_its_pid(self, ram_dir):
        self.write_lock(ram_dir, 4242, host="tpu-worker-7")
        with pytest.raises(RunLockedError) as refused:
            RunDirectory(ram_dir).lock().__enter__()
        assert f"{ram_dir} is in use by process 4242 on host tpu-worker-7" in str(refused.value)
        assert f"delete {ram_dir}/run.lock" in str(refused.value)
        assert json.loads(read_text(f"{ram_dir}/run.lock"))["pid"] == 4242  # left alone

    def test_a_live_process_lock_refuses_a_run_before_it_writes(self, ram_dir):
        first = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        try:
            self.write_lock(ram_dir, first.pid)
            with pytest.raises(RunLockedError) as refused:
                run_experiment(ExperimentConfig(model_dir=ram_dir, verbose=0))
        finally:
            first.kill()
            first.wait()
        message = str(refused.value)
        assert f"in use by process {first.pid} on host {socket.gethostname()}" in message
        assert tf.io.gfile.listdir(ram_dir) == ["run.lock"]

    def test_held_released_and_a_stale_one_taken_over(self, ram_dir, caplog):
        gone = subprocess.Popen([sys.executable, "-c", "pass"])
        gone.wait()
        self.write_lock(ram_dir, gone.pid)
        with RunDirectory(ram_dir).lock():
            owner = json.loads(read_text(f"{ram_dir}/run.lock"))
            assert (owner["pid"], owner["host"]) == (os.getpid(), socket.gethostname())
            with pytest.raises(RunLockedError, match=f"in use by process {os.getpid()} "):
                RunDirectory(ram_dir).lock().__enter__()
        assert f"Taking over the stale lock {ram_dir}/run.lock of process {gone.pid}" in (
            caplog.text
        )
        assert not tf.io.gfile.exists(f"{ram_dir}/run.lock")

    def test_a_lock_overwritten_while_it_settles_belongs_to_the_other(self, ram_dir, monkeypatch):
        # Two processes start together: the other's lock lands after this one wrote its own.
        def other_process_writes(seconds):
            assert seconds == runs.REMOTE_LOCK_SETTLE_SECONDS
            self.write_lock(ram_dir, 4242, host="tpu-worker-7")

        monkeypatch.setattr(runs.time, "sleep", other_process_writes)
        with pytest.raises(RunLockedError, match="in use by process 4242 on host tpu-worker-7"):
            RunDirectory(ram_dir).lock().__enter__()
        assert json.loads(read_text(f"{ram_dir}/run.lock"))["pid"] == 4242


class TestDamagedRunFiles:
    def test_truncated_config_is_a_clear_error(self, tmp_path):
        (tmp_path / "config.json").write_text('{"temperature": 0.')
        with pytest.raises(ValueError, match="Cannot read the run's configuration .*config.json"):
            RunDirectory(tmp_path).record_config({"temperature": 0.1})

    def test_truncated_marker_reruns_the_phase(self, tmp_path, caplog):
        run = RunDirectory(tmp_path)
        run.run_phase("pretrain", lambda: {"loss": 0.5}, seed=0)
        marker = tmp_path / "phases" / "pretrain.json"
        marker.write_text(marker.read_text()[:7])
        assert run.run_phase("pretrain", lambda: {"loss": 0.25}, seed=0)["loss"] == 0.25
        assert "Cannot read the pretrain completion marker" in caplog.text


class TestUntrustedFiles:
    def test_npz_with_a_pickled_object_array_is_refused(self, tmp_path):
        path = tmp_path / "evil.npz"
        objects = np.empty(2, dtype=object)
        objects[:] = [{"a": 1}, [2]]
        np.savez(path, x_train=objects, y_train=np.zeros(2), x_test=objects, y_test=np.zeros(2))
        with pytest.raises(ValueError, match=r"Cannot read the \.npz dataset .*allow_pickle=False"):
            load_dataset(str(path))

    def test_model_with_python_code_is_refused(self, tmp_path):
        model = keras.Sequential([keras.Input((2,)), keras.layers.Lambda(lambda t: t * 2)])
        model.save(tmp_path / "encoder.keras")
        with pytest.raises(ValueError, match="Could not load the Keras model .*safe_mode"):
            _load_model(tmp_path / "encoder.keras")
