"""Tests of distributed training: global-batch negatives, strategies, precision, fault tolerance.

Multi-device runs happen in fresh subprocesses (tests/_distribute_worker.py): logical
CPU devices must be configured before TensorFlow initialises, and this process has
already imported it. The subprocess writes what the distributed code computed; every
reference here is computed in this process on one device over the whole global batch
(and the loss also by the float64 NumPy oracle of tests/reference.py).
"""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from supcon_tf import SupervisedContrastiveLoss, supervised_contrastive_loss
from tests._distribute_worker import build_embedding_model
from tests.reference import supcon_reference

ROOT = Path(__file__).resolve().parents[1]
GLOBAL_BATCH = 8
LOSS_RTOL = 1e-5
GRADIENT_RTOL = 1e-4


def run_worker(arguments, timeout=300, env=None):
    """Runs tests/_distribute_worker.py in a fresh Python process from the repository root."""
    environment = dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="2")
    environment.update(env or {})
    result = subprocess.run(
        [sys.executable, "-m", "tests._distribute_worker", *arguments],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-6000:]
    return result


def make_inputs(path, seed=1):
    """A global batch, labels, custom mask and model weights for the worker and the references."""
    rng = np.random.default_rng(seed)
    views, features, hidden, dim = 2, 6, 10, 5
    arrays = {
        "x": rng.normal(size=(GLOBAL_BATCH, views, features)).astype("float32"),
        "labels": np.array([0, 1, 2, 0, 1, 2, 0, 1]),
        "mask": rng.random((GLOBAL_BATCH, GLOBAL_BATCH)) < 0.3,
        "w1": (0.5 * rng.normal(size=(features, hidden))).astype("float32"),
        "b1": (0.1 * rng.normal(size=hidden)).astype("float32"),
        "w2": (0.5 * rng.normal(size=(hidden, dim))).astype("float32"),
        "b2": (0.1 * rng.normal(size=dim)).astype("float32"),
        "learning_rate": np.float32(0.5),
        "batch_norm_inputs": (2 * rng.normal(size=(GLOBAL_BATCH, 3)) + 1).astype("float32"),
    }
    np.savez(path, **arrays)
    return arrays


def embeddings_float64(arrays, x):
    """The worker's model in float64 NumPy (for the independent loss oracle)."""
    hidden = np.tanh(x.astype("float64") @ arrays["w1"] + arrays["b1"])
    return hidden @ arrays["w2"] + arrays["b2"]


def single_device(arrays, loss_of_embeddings, x=None):
    """Loss and gradients of the whole global batch on one device (this process)."""
    model = build_embedding_model(arrays)
    with tf.GradientTape() as tape:
        loss = loss_of_embeddings(model(arrays["x"] if x is None else x, training=True))
    return float(loss), [g.numpy() for g in tape.gradient(loss, model.trainable_variables)]


def reference_cases(arrays):
    """Single-device loss and gradients of each case the worker computes distributed."""
    labels, mask = arrays["labels"], arrays["mask"]
    loss = SupervisedContrastiveLoss(temperature=0.1)
    return {
        "labels": single_device(arrays, lambda z: loss(labels, z)),
        "simclr": single_device(arrays, lambda z: loss(None, z)),
        "mask": single_device(
            arrays,
            lambda z: tf.reduce_mean(
                supervised_contrastive_loss(None, z, temperature=0.1, positive_mask=mask)
            ),
        ),
    }


def per_shard_reference(arrays, replicas):
    """Gathering off: the mean over shards of each shard's own (local-negative) loss."""
    shard = GLOBAL_BATCH // replicas
    total_loss, total_gradients = 0.0, None
    for replica in range(replicas):
        rows = slice(replica * shard, (replica + 1) * shard)
        loss, gradients = single_device(
            arrays,
            lambda z, rows=rows: SupervisedContrastiveLoss(temperature=0.1)(
                arrays["labels"][rows], z
            ),
            x=arrays["x"][rows],
        )
        total_loss += loss / replicas
        gradients = [g / replicas for g in gradients]
        total_gradients = (
            gradients
            if total_gradients is None
            else [a + b for a, b in zip(total_gradients, gradients, strict=True)]
        )
    return total_loss, total_gradients


def assert_gradients_close(got, expected, rtol=GRADIENT_RTOL):
    for index, gradient in enumerate(expected):
        scale = np.abs(gradient).max()
        np.testing.assert_allclose(
            got[index], gradient, rtol=rtol, atol=rtol * scale, err_msg=f"gradient {index}"
        )


def assert_sgd_step(arrays, results, prefix, gradients):
    """The weight change of one SGD step equals `-learning_rate x` the reference gradient."""
    initial = [arrays["w1"], arrays["b1"], arrays["w2"], arrays["b2"]]
    learning_rate = float(arrays["learning_rate"])
    for index, (weight, gradient) in enumerate(zip(initial, gradients, strict=True)):
        expected = -learning_rate * gradient
        np.testing.assert_allclose(
            results[f"{prefix}_weight_{index}"] - weight,
            expected,
            rtol=GRADIENT_RTOL,
            atol=GRADIENT_RTOL * np.abs(expected).max(),
            err_msg=f"{prefix} weight {index}",
        )


def worker_gradients(results, name):
    return [results[f"{name}_gradient_{index}"] for index in range(4)]


@pytest.fixture(scope="module", params=[2, 4], ids=lambda count: f"{count}_replicas")
def mirrored_run(request, tmp_path_factory):
    """Runs the MirroredStrategy worker once per replica count; returns (inputs, results)."""
    folder = tmp_path_factory.mktemp(f"mirrored_{request.param}")
    arrays = make_inputs(folder / "inputs.npz")
    run_worker(
        [
            "mirrored",
            f"--replicas={request.param}",
            f"--input={folder / 'inputs.npz'}",
            f"--output={folder / 'results.npz'}",
        ]
    )
    return arrays, dict(np.load(folder / "results.npz"))


class TestMirroredStrategy:
    @pytest.mark.parametrize("case", ["labels", "simclr", "mask"])
    def test_custom_loop_equals_single_device_full_batch(self, mirrored_run, case):
        arrays, results = mirrored_run
        assert int(results["num_replicas"]) in (2, 4)
        expected_loss, expected_gradients = reference_cases(arrays)[case]
        np.testing.assert_allclose(results[f"{case}_loss"], expected_loss, rtol=LOSS_RTOL)
        assert_gradients_close(worker_gradients(results, case), expected_gradients)

    def test_loss_matches_float64_oracle(self, mirrored_run):
        arrays, results = mirrored_run
        embeddings = embeddings_float64(arrays, arrays["x"])
        oracle = supcon_reference(embeddings, arrays["labels"], 0.1).mean()
        np.testing.assert_allclose(results["labels_loss"], oracle, rtol=LOSS_RTOL)
        simclr = supcon_reference(embeddings, None, 0.1).mean()
        np.testing.assert_allclose(results["simclr_loss"], simclr, rtol=LOSS_RTOL)

    def test_gather_off_reproduces_per_shard_loss(self, mirrored_run):
        arrays, results = mirrored_run
        replicas = int(results["num_replicas"])
        expected_loss, expected_gradients = per_shard_reference(arrays, replicas)
        np.testing.assert_allclose(results["local_loss"], expected_loss, rtol=LOSS_RTOL)
        assert_gradients_close(worker_gradients(results, "local"), expected_gradients)
        # Fewer negatives per anchor: clearly not the global-batch loss.
        assert abs(results["local_loss"] - results["labels_loss"]) > 0.05

    def test_fit_step_equals_single_device_step(self, mirrored_run):
        arrays, results = mirrored_run
        loss, gradients = reference_cases(arrays)["labels"]
        assert_sgd_step(arrays, results, "fit", gradients)
        np.testing.assert_allclose(results["fit_loss"], loss, rtol=LOSS_RTOL)

    def test_synchronized_batch_norm_uses_global_statistics(self, mirrored_run):
        arrays, results = mirrored_run
        inputs = arrays["batch_norm_inputs"].astype("float64")
        epsilon = keras.layers.BatchNormalization().epsilon
        expected = (inputs - inputs.mean(0)) / np.sqrt(inputs.var(0) + epsilon)
        np.testing.assert_allclose(results["sync_batch_norm"], expected, rtol=1e-4, atol=1e-5)
        # Without synchronisation each shard is normalised by its own statistics.
        replicas = int(results["num_replicas"])
        shards = np.split(inputs, replicas)
        per_shard = np.concatenate([(s - s.mean(0)) / np.sqrt(s.var(0) + epsilon) for s in shards])
        np.testing.assert_allclose(results["local_batch_norm"], per_shard, rtol=1e-4, atol=1e-5)
        assert np.abs(results["local_batch_norm"] - expected).max() > 1e-2


def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


class TestMultiWorkerMirroredStrategy:
    def test_two_workers_equal_one_process_on_the_global_batch(self, tmp_path):
        arrays = make_inputs(tmp_path / "inputs.npz")
        workers = [f"127.0.0.1:{port}" for port in free_ports(2)]
        environment = dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="2")
        processes = []
        for index in range(2):
            config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
            processes.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "tests._distribute_worker",
                        "multi_worker",
                        f"--input={tmp_path / 'inputs.npz'}",
                        f"--output={tmp_path / 'results.npz'}",
                    ],
                    cwd=ROOT,
                    env=dict(environment, TF_CONFIG=json.dumps(config)),
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    text=True,
                )
            )
        try:
            outputs = [process.communicate(timeout=300)[0] for process in processes]
        finally:
            for process in processes:
                if process.poll() is None:
                    process.kill()
        for process, output in zip(processes, outputs, strict=True):
            assert process.returncode == 0, output[-6000:]
        results = dict(np.load(tmp_path / "results.npz"))
        assert int(results["num_replicas"]) == 2
        references = reference_cases(arrays)
        for case in ("labels", "simclr", "mask"):
            expected_loss, expected_gradients = references[case]
            np.testing.assert_allclose(results[f"{case}_loss"], expected_loss, rtol=LOSS_RTOL)
            assert_gradients_close(worker_gradients(results, case), expected_gradients)
        # One optimizer step of the custom loop equals the single-device SGD step.
        loss, gradients = references["labels"]
        assert_sgd_step(arrays, results, "update", gradients)
        np.testing.assert_allclose(results["update_loss"], loss, rtol=LOSS_RTOL)
