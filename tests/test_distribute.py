"""Tests of distributed training: global-batch negatives, strategies, precision, fault tolerance.

Multi-device runs happen in fresh subprocesses (tests/_distribute_worker.py): logical
CPU devices must be configured before TensorFlow initialises, and this process has
already imported it. The subprocess writes what the distributed code computed; every
reference here is computed in this process on one device over the whole global batch
(and the loss also by the float64 NumPy oracle of tests/reference.py).
"""

import json
import os
import signal
import socket
import subprocess
import sys
import types
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from supcon_tf import SupervisedContrastiveLoss, supervised_contrastive_loss
from supcon_tf.training.custom_loop import (
    fit_with_custom_loop,
    loss_and_accuracy,
    needs_custom_loop,
)
from supcon_tf.training.distribute import (
    build_strategy,
    default_learning_rate_scaling,
    is_chief,
    loss_scale_optimizer,
    per_replica_batch_size,
    scale_learning_rate,
    set_mixed_precision,
    synchronize_batch_norm,
    worker_model_dir,
)
from tests._distribute_worker import build_embedding_model
from tests.reference import supcon_reference, variant_reference

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
        "weights": (
            rng.random((GLOBAL_BATCH, GLOBAL_BATCH)) * (rng.random((GLOBAL_BATCH,) * 2) < 0.5)
        ).astype("float32"),
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
        **{
            name: single_device(
                arrays,
                lambda z, options=options: SupervisedContrastiveLoss(temperature=0.1, **options)(
                    arrays["weights"] if options.get("pair_weights") else labels, z
                ),
            )
            for name, options in VARIANT_CASES.items()
        },
    }


# The loss variants the worker computes gathered (same options as tests/_distribute_worker.py).
VARIANT_CASES = {
    "one_positive": {"denominator_mode": "one_positive", "positives_cap": 2},
    "only_negatives": {
        "denominator_mode": "only_negatives",
        "summation": "in",
        "implementation": "blocked",
        "block_size": 3,
    },
    "weighted": {"pair_weights": True},
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


@pytest.fixture(
    scope="module",
    # 4 replicas run the same code path as 2; opt in with -m slow (the 2-core CI budget).
    params=[2, pytest.param(4, marks=pytest.mark.slow)],
    ids=lambda count: f"{count}_replicas",
)
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

    @pytest.mark.parametrize("case", list(VARIANT_CASES))
    def test_variants_gathered_equal_float64_transcription(self, mirrored_run, case):
        # Each replica's anchors against the gathered global batch: the loss of the whole
        # batch (float64 oracle, tests/reference.py) and single-device gradients.
        arrays, results = mirrored_run
        options = dict(VARIANT_CASES[case])
        options.pop("implementation", None)
        options.pop("block_size", None)
        weights = arrays["weights"] if options.pop("pair_weights", False) else None
        oracle = variant_reference(
            embeddings_float64(arrays, arrays["x"]),
            None if weights is not None else arrays["labels"],
            0.1,
            weights=weights,
            **options,
        ).mean()
        np.testing.assert_allclose(results[f"{case}_loss"], oracle, rtol=LOSS_RTOL)
        expected_loss, expected_gradients = reference_cases(arrays)[case]
        np.testing.assert_allclose(results[f"{case}_loss"], expected_loss, rtol=LOSS_RTOL)
        assert_gradients_close(worker_gradients(results, case), expected_gradients)

    def test_unequal_shards_equal_single_device_full_batch(self, mirrored_run):
        # A partial last batch splits unevenly; anchors are offset by the shard sizes.
        arrays, results = mirrored_run
        expected_loss, expected_gradients = reference_cases(arrays)["labels"]
        np.testing.assert_allclose(results["uneven_loss"], expected_loss, rtol=LOSS_RTOL)
        assert_gradients_close(worker_gradients(results, "uneven"), expected_gradients)

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


def run_two_workers(command, timeout, alongside=()):
    """Runs `command` as two MultiWorkerMirroredStrategy workers on 127.0.0.1.

    Each worker gets its `TF_CONFIG`; the `alongside` commands (e.g. a single-process
    reference) run at the same time without one. Every process must exit 0.
    """
    environment = dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="2")
    workers = [f"127.0.0.1:{port}" for port in free_ports(2)]
    launches = [(other, environment) for other in alongside]
    for index in range(2):
        config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
        launches.append((command, dict(environment, TF_CONFIG=json.dumps(config))))
    processes = [
        subprocess.Popen(
            arguments,
            cwd=ROOT,
            env=process_environment,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for arguments, process_environment in launches
    ]
    try:
        outputs = [process.communicate(timeout=timeout)[0] for process in processes]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
    for process, output in zip(processes, outputs, strict=True):
        assert process.returncode == 0, output[-6000:]


class TestMultiWorkerMirroredStrategy:
    def test_two_workers_equal_one_process_on_the_global_batch(self, tmp_path):
        arrays = make_inputs(tmp_path / "inputs.npz")
        run_two_workers(
            [
                sys.executable,
                "-m",
                "tests._distribute_worker",
                "multi_worker",
                f"--input={tmp_path / 'inputs.npz'}",
                f"--output={tmp_path / 'results.npz'}",
            ],
            timeout=300,
        )
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


class TestFaultTolerance:
    EPOCHS, STEPS = 3, 8

    def train_command(self, folder, name, kill_after=0):
        return [
            "train",
            f"--backup_dir={folder / 'backup'}",
            f"--progress={folder / (name + '.progress')}",
            f"--output={folder / (name + '.json')}",
            f"--epochs={self.EPOCHS}",
            f"--steps={self.STEPS}",
            "--save_freq=3",
            f"--kill_after={kill_after}",
        ]

    def run_killed(self, folder, name, kill_after):
        """Runs the worker until it kills itself; returns the global steps it logged."""
        environment = dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="2")
        command = [sys.executable, "-m", "tests._distribute_worker"]
        victim = subprocess.run(
            [*command, *self.train_command(folder, name, kill_after)],
            cwd=ROOT,
            env=environment,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert victim.returncode == -signal.SIGKILL, victim.stderr[-6000:]
        return [int(step) for step in (folder / f"{name}.progress").read_text().split()]

    def test_run_killed_twice_mid_epoch_resumes_on_the_right_batches(self, tmp_path):
        uninterrupted, killed = tmp_path / "uninterrupted", tmp_path / "killed"
        uninterrupted.mkdir()
        killed.mkdir()
        run_worker(self.train_command(uninterrupted, "run"))
        # First life: killed at global step 11 (epoch 1, step 3; last checkpoint at 9).
        first = self.run_killed(killed, "first", kill_after=11)
        assert first == list(range(1, 12))
        # Second life: resumes after batch 9, killed at step 19 (checkpoint at 18).
        second = self.run_killed(killed, "second", kill_after=10)
        assert second == list(range(10, 20))
        # Third life: resumes after batch 18 (epoch 2, step 2), not at epoch 0 or 1.
        run_worker(self.train_command(killed, "third"))
        third = [int(step) for step in (killed / "third.progress").read_text().split()]
        assert third == list(range(19, self.EPOCHS * self.STEPS + 1))
        expected = json.loads((uninterrupted / "run.json").read_text())
        resumed = json.loads((killed / "third.json").read_text())
        assert resumed["completed_steps"] == expected["completed_steps"] == 24
        # Same batches, same dropout draws, same optimizer state: the same weights.
        for got, want in zip(resumed["weights"], expected["weights"], strict=True):
            np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)
        np.testing.assert_allclose(resumed["final_loss"], expected["final_loss"], rtol=1e-6)


class TestGatherOption:
    def test_config_round_trip(self):
        loss = SupervisedContrastiveLoss(temperature=0.2, gather_across_replicas=False)
        config = loss.get_config()
        assert config["gather_across_replicas"] is False
        restored = SupervisedContrastiveLoss.from_config(config)
        assert restored.gather_across_replicas is False
        rebuilt = keras.losses.deserialize(keras.losses.serialize(loss))
        assert rebuilt.gather_across_replicas is False
        assert SupervisedContrastiveLoss().gather_across_replicas is True

    @pytest.mark.parametrize("value", ["yes", 1, None])
    def test_non_boolean_is_rejected(self, value):
        with pytest.raises(ValueError, match="`gather_across_replicas` must be True or False"):
            SupervisedContrastiveLoss(gather_across_replicas=value)
        with pytest.raises(ValueError, match="`gather_across_replicas` must be True or False"):
            supervised_contrastive_loss(
                [0, 1], np.ones((2, 2, 3), "float32"), gather_across_replicas=value
            )

    def test_no_effect_with_one_replica(self):
        rng = np.random.default_rng(2)
        features = rng.normal(size=(6, 2, 4)).astype("float32")
        labels = np.array([0, 1, 0, 1, 2, 2])
        expected = supcon_reference(features, labels, 0.1)
        strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
        for gather in (True, False):
            eager = supervised_contrastive_loss(labels, features, gather_across_replicas=gather)
            np.testing.assert_allclose(eager.numpy(), expected, rtol=2e-4)
            replica = strategy.run(
                lambda gather=gather: supervised_contrastive_loss(
                    labels, features, gather_across_replicas=gather
                )
            )
            np.testing.assert_allclose(replica.numpy(), expected, rtol=2e-4)

    def test_square_per_replica_mask_is_rejected_when_gathering(self, mirrored_run):
        _, results = mirrored_run
        message = str(results["mask_error"])
        assert "this replica's rows of the global mask" in message
        assert "gather_across_replicas=False" in message


class TestStrategies:
    def test_default_and_single_device_mirrored(self):
        assert build_strategy("default") is tf.distribute.get_strategy()
        mirrored = build_strategy("mirrored", devices=["/cpu:0"])
        assert isinstance(mirrored, tf.distribute.MirroredStrategy)
        assert mirrored.num_replicas_in_sync == 1

    def test_unknown_strategy(self):
        with pytest.raises(ValueError, match="Unknown strategy 'horovod'"):
            build_strategy("horovod")

    @pytest.mark.parametrize(
        "arguments", [{"tpu": "node-1"}, {"tpu_zone": "us-central1-b"}, {"gcp_project": "p"}]
    )
    def test_tpu_arguments_need_the_tpu_strategy(self, arguments):
        with pytest.raises(ValueError, match="only apply to the 'tpu' strategy"):
            build_strategy("mirrored", **arguments)

    def test_devices_need_the_mirrored_strategy(self):
        with pytest.raises(ValueError, match="`devices` only applies to the 'mirrored'"):
            build_strategy("default", devices=["/cpu:0"])

    def test_worker_model_dir_keeps_a_gs_url(self):
        # A non-chief worker of a two-worker cluster (a stand-in with the resolver's API).
        cluster = tf.train.ClusterSpec({"worker": ["host1:1", "host2:2"]})
        resolver = types.SimpleNamespace(
            task_type="worker", task_id=1, cluster_spec=lambda: cluster
        )
        worker = types.SimpleNamespace(cluster_resolver=resolver)
        assert not is_chief(worker)
        assert worker_model_dir("gs://bucket/run", worker) == "gs://bucket/run/workers/worker_1"
        assert worker_model_dir("gs://bucket/run", build_strategy("default")) == "gs://bucket/run"


class TestGlobalBatch:
    class FakeStrategy:
        num_replicas_in_sync = 8

    def test_global_batch_is_split_over_replicas(self):
        assert per_replica_batch_size(1024, self.FakeStrategy()) == 128
        assert per_replica_batch_size(64, build_strategy("default")) == 64

    @pytest.mark.parametrize("batch", [100, 4, 0])
    def test_batch_must_be_a_multiple_of_the_replicas(self, batch):
        with pytest.raises(ValueError, match=f"global batch size {batch} must be a positive"):
            per_replica_batch_size(batch, self.FakeStrategy())

    @pytest.mark.parametrize("batch", [64.0, True, "64"])
    def test_batch_must_be_an_integer(self, batch):
        with pytest.raises(ValueError, match="must be an integer"):
            per_replica_batch_size(batch, self.FakeStrategy())


class TestLearningRateScaling:
    @pytest.mark.parametrize(
        "rule,batch,expected",
        [
            ("linear", 256, 0.5),
            ("linear", 4096, 0.5 * 16),
            ("linear", 128, 0.25),
            ("sqrt", 4096, 0.5 * 4),
            ("sqrt", 64, 0.25),
            ("none", 4096, 0.5),
        ],
    )
    def test_rules(self, rule, batch, expected):
        assert scale_learning_rate(0.5, batch, rule) == pytest.approx(expected, rel=1e-12)

    def test_reference_batch_size(self):
        assert scale_learning_rate(0.1, 1024, "linear", reference_batch_size=512) == 0.2

    def test_optimizer_defaults(self):
        assert default_learning_rate_scaling("sgd") == "linear"
        assert default_learning_rate_scaling("LARS") == "linear"
        assert default_learning_rate_scaling("lamb") == "sqrt"
        for name in ("adam", "adamw", "rmsprop"):
            assert default_learning_rate_scaling(name) == "none"

    @pytest.mark.parametrize(
        "arguments,match",
        [
            ((0.1, 256, "cubic"), "`rule` must be one of 'none', 'linear', 'sqrt', got 'cubic'"),
            ((0.1, 0, "linear"), "`batch_size` must be an integer >= 1"),
            ((0.1, 256.0, "linear"), "`batch_size` must be an integer"),
            ((0.1, 256, "linear", 0), "`reference_batch_size` must be an integer >= 1"),
            (("0.1", 256, "linear"), "`base_learning_rate` must be a finite number"),
            ((-0.1, 256, "linear"), "`base_learning_rate` must be > 0.0"),
        ],
    )
    def test_errors(self, arguments, match):
        with pytest.raises(ValueError, match=match):
            scale_learning_rate(*arguments)


@pytest.fixture
def restore_dtype_policy():
    policy = keras.mixed_precision.global_policy()
    yield
    keras.mixed_precision.set_global_policy(policy)


def small_training_set(seed=0, samples=32):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 4, size=samples)
    centres = rng.normal(size=(4, 8))
    inputs = centres[labels][:, None, :] + 0.5 * rng.normal(size=(samples, 2, 8))
    return inputs.astype("float32"), labels


def small_model():
    return keras.Sequential(
        [keras.Input((2, 8)), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(8)]
    )


@pytest.mark.usefixtures("restore_dtype_policy")
class TestMixedPrecision:
    @pytest.mark.parametrize(
        "policy,compute_dtype", [("mixed_float16", "float16"), ("mixed_bfloat16", "bfloat16")]
    )
    def test_fit_computes_loss_in_float32_and_trains(self, policy, compute_dtype):
        assert set_mixed_precision(policy).name == policy
        inputs, labels = small_training_set()
        model = small_model()
        assert model(inputs[:2]).dtype == compute_dtype
        assert model.layers[0].kernel.dtype == "float32"
        loss = SupervisedContrastiveLoss(temperature=0.1)
        assert loss(labels[:4], model(inputs[:4])).dtype == "float32"
        model.compile(optimizer=keras.optimizers.SGD(0.05), loss=loss)
        # float16 needs loss scaling (Keras wraps the optimizer); bfloat16 does not.
        wrapped = isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
        assert wrapped == (policy == "mixed_float16")
        history = model.fit(inputs, labels, batch_size=16, epochs=4, verbose=0).history["loss"]
        assert np.all(np.isfinite(history))
        assert history[-1] < history[0]

    def test_custom_loop_with_loss_scale_optimizer(self):
        set_mixed_precision("mixed_float16")
        inputs, labels = small_training_set(1)
        model = small_model()
        optimizer = loss_scale_optimizer(keras.optimizers.SGD(0.05))
        assert isinstance(optimizer, keras.optimizers.LossScaleOptimizer)
        assert loss_scale_optimizer(optimizer) is optimizer
        loss_object = SupervisedContrastiveLoss(temperature=0.1)
        losses = []
        for _ in range(5):
            with tf.GradientTape() as tape:
                loss = loss_object(labels, model(inputs, training=True))
                scaled = optimizer.scale_loss(loss)
            assert loss.dtype == "float32"
            gradients = tape.gradient(scaled, model.trainable_variables)
            optimizer.apply(gradients, model.trainable_variables)
            losses.append(float(loss))
        assert np.all(np.isfinite(losses)) and losses[-1] < losses[0]
        assert float(optimizer.dynamic_scale) > 1

    def test_float32_policies_leave_the_optimizer_alone(self):
        sgd = keras.optimizers.SGD()
        assert loss_scale_optimizer(sgd, "mixed_bfloat16") is sgd
        assert set_mixed_precision("none").name == "float32"
        assert loss_scale_optimizer(sgd) is sgd

    def test_unknown_policy(self):
        with pytest.raises(ValueError, match="Unknown mixed precision policy 'float8'"):
            set_mixed_precision("float8")


class TestSynchronizeBatchNorm:
    def test_nested_layers_are_switched(self):
        inner = keras.Sequential([keras.Input((4,)), keras.layers.BatchNormalization()])
        model = keras.Sequential(
            [keras.Input((4,)), inner, keras.layers.Dense(4), keras.layers.BatchNormalization()]
        )
        assert synchronize_batch_norm(model) == 2
        assert inner.layers[0].synchronized and model.layers[-1].synchronized
        assert synchronize_batch_norm(model, False) == 2
        assert not inner.layers[0].synchronized

    def test_layers_inside_subclassed_layers(self):
        from supcon_tf.models.layers import ProjectionHead

        head = ProjectionHead(output_units=4, batch_norm=True)
        model = keras.Sequential([keras.Input((8,)), keras.layers.BatchNormalization(), head])
        assert synchronize_batch_norm(model) == 2

    def test_needs_a_model(self):
        with pytest.raises(ValueError, match="must be a Keras model with `layers`"):
            synchronize_batch_norm(keras.layers.Dense(2))


class TestExperimentDistributionOptions:
    """The issue-4 settings of `ExperimentConfig` and their `supcon-train` flags."""

    @pytest.mark.parametrize(
        "fields,match",
        [
            ({"strategy": "horovod"}, "`strategy` must be one of .*got 'horovod'"),
            ({"tpu": "node-1"}, "tpu only apply to strategy='tpu'"),
            ({"strategy": "mirrored", "tpu_zone": "z"}, "tpu_zone only apply to strategy='tpu'"),
            ({"mixed_precision": "float8"}, "`mixed_precision` must be one of .*got 'float8'"),
            (
                {"learning_rate_scaling": "cubic"},
                "`learning_rate_scaling` must be one of .*'cubic'",
            ),
            ({"backup_steps": -1}, "`backup_steps` must be an integer >= 0, got -1"),
        ],
    )
    def test_invalid_settings(self, fields, match):
        from supcon_tf.experiment import ExperimentConfig

        with pytest.raises(ValueError, match=match):
            ExperimentConfig(**fields)

    @pytest.mark.parametrize(
        "optimizer,scaling,expected",
        [
            ("sgd", "auto", 0.1 * 1024 / 256),
            ("lamb", "auto", 0.1 * 2),
            ("adam", "auto", 0.1),
            ("adam", "linear", 0.1 * 4),
            ("sgd", "none", 0.1),
        ],
    )
    def test_learning_rate_follows_the_global_batch(self, optimizer, scaling, expected):
        from supcon_tf.experiment import ExperimentConfig

        config = ExperimentConfig(
            optimizer=optimizer, learning_rate=0.1, batch_size=1024, learning_rate_scaling=scaling
        )
        assert config.scaled_learning_rate() == pytest.approx(expected, rel=1e-12)

    def test_flags_map_to_the_config(self):
        from absl import flags

        from supcon_tf.cli.flags import config_from_flags, define_flags

        flag_values = flags.FlagValues()
        define_flags(flag_values)
        flag_values(
            [
                "supcon-train",
                "--strategy=tpu",
                "--tpu=node-1",
                "--tpu_zone=us-central1-b",
                "--gcp_project=my-project",
                "--mixed_precision=mixed_bfloat16",
                "--sync_batchnorm",
                "--learning_rate_scaling=linear",
                "--backup_steps=50",
                "--batch_size=4096",
            ]
        )
        config = config_from_flags(flag_values)
        assert (config.strategy, config.tpu, config.tpu_zone, config.gcp_project) == (
            "tpu",
            "node-1",
            "us-central1-b",
            "my-project",
        )
        assert config.mixed_precision == "mixed_bfloat16" and config.sync_batchnorm
        assert config.learning_rate_scaling == "linear" and config.backup_steps == 50
        assert config.batch_size == 4096

    def test_tpu_flags_need_the_tpu_strategy(self):
        from absl import flags

        from supcon_tf.cli.flags import define_flags

        flag_values = flags.FlagValues()
        define_flags(flag_values)
        with pytest.raises(flags.IllegalFlagValueError, match="need --strategy=tpu"):
            flag_values(["supcon-train", "--strategy=mirrored", "--tpu=node-1"])

    @pytest.mark.usefixtures("restore_dtype_policy")
    def test_run_with_mirrored_bfloat16_sync_batchnorm_and_step_backups(self, tmp_path):
        from supcon_tf.experiment import ExperimentConfig, run_experiment

        before = keras.mixed_precision.global_policy().name
        config = ExperimentConfig(
            pretrain_epochs=1,
            classifier_epochs=1,
            baseline=False,
            width_multiplier=0.25,
            batch_size=64,
            optimizer="sgd",
            learning_rate=0.1,
            strategy="mirrored",
            mixed_precision="mixed_bfloat16",
            sync_batchnorm=True,
            backup_steps=3,
            model_dir=str(tmp_path),
            verbose=0,
        )
        report = run_experiment(config)
        assert report["distribution"] == {
            "strategy": "mirrored",
            "num_replicas": 1,
            "global_batch_size": 64,
            "learning_rate": pytest.approx(0.1 * 64 / 256),
            "mixed_precision": "mixed_bfloat16",
        }
        assert np.isfinite(report["history"]["pretrain"]["loss"]).all()
        assert 0.0 <= report["supcon"]["test_accuracy"] <= 1.0
        # The run leaves the global dtype policy as it found it.
        assert keras.mixed_precision.global_policy().name == before


class TestCustomLoop:
    """`fit_with_custom_loop` / `loss_and_accuracy`: the multi-worker replacements of fit."""

    def classifier(self):
        keras.utils.set_random_seed(3)
        model = keras.Sequential(
            [
                keras.Input((6,)),
                keras.layers.Dense(8, activation="relu"),
                keras.layers.BatchNormalization(),
                keras.layers.Dense(3),
            ]
        )
        model.compile(
            optimizer=keras.optimizers.SGD(0.1, momentum=0.9),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
        )
        return model

    def data(self):
        rng = np.random.default_rng(4)
        inputs = rng.normal(size=(96, 6)).astype("float32")
        labels = (inputs[:, 0] > 0).astype("int64") + (inputs[:, 1] > 1).astype("int64")
        return inputs, labels

    def test_custom_loop_equals_fit(self):
        inputs, labels = self.data()
        dataset = tf.data.Dataset.from_tensor_slices((inputs, labels)).batch(16).repeat(3)
        validation = tf.data.Dataset.from_tensor_slices((inputs, labels)).batch(40)
        expected = self.classifier()
        history = expected.fit(dataset, epochs=3, steps_per_epoch=6, verbose=0)
        model = self.classifier()
        got = fit_with_custom_loop(
            model, dataset, epochs=3, steps_per_epoch=6, validation_data=validation
        )
        assert int(model.optimizer.iterations) == 18
        for weight, reference in zip(model.get_weights(), expected.get_weights(), strict=True):
            np.testing.assert_allclose(weight, reference, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(got.history["loss"], history.history["loss"], rtol=1e-5)
        loss, accuracy = expected.evaluate(validation, verbose=0)
        assert got.history["val_loss"][-1] == pytest.approx(loss, rel=1e-5)
        assert got.history["val_accuracy"][-1] == pytest.approx(accuracy, rel=1e-6)

    def test_callbacks_and_resuming_epoch(self):
        inputs, labels = self.data()
        dataset = tf.data.Dataset.from_tensor_slices((inputs, labels)).batch(16).repeat()
        seen = []

        class Record(keras.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                seen.append(epoch)
                self.model.stop_training = epoch == 3

        model = self.classifier()
        history = fit_with_custom_loop(
            model, dataset, epochs=6, steps_per_epoch=2, callbacks=[Record()], initial_epoch=2
        )
        assert seen == [2, 3] and len(history.history["loss"]) == 2
        assert int(model.optimizer.iterations) == 4

    def test_uncompiled_model_is_rejected(self):
        model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2)])
        dataset = tf.data.Dataset.from_tensor_slices((np.ones((4, 2)), [0, 1, 0, 1])).batch(2)
        with pytest.raises(ValueError, match="must be compiled"):
            fit_with_custom_loop(model, dataset, epochs=1, steps_per_epoch=1)
        with pytest.raises(ValueError, match="must be compiled with a loss"):
            loss_and_accuracy(model, dataset)

    def test_only_multi_worker_strategies_need_it(self):
        assert not needs_custom_loop(build_strategy("default"))
        assert not needs_custom_loop(build_strategy("mirrored", devices=["/cpu:0"]))
        assert is_chief(build_strategy("default"))


@pytest.mark.slow
class TestMultiWorkerSupconTrain:
    def command(self, model_dir, strategy):
        return [
            sys.executable,
            "-m",
            "supcon_tf.train",
            f"--strategy={strategy}",
            "--sync_batchnorm",
            "--pretrain_epochs=1",
            "--classifier_epochs=1",
            "--nobaseline",
            "--width_multiplier=0.25",
            "--batch_size=64",
            "--optimizer=sgd",
            "--learning_rate=0.4",
            "--verbose=0",
            f"--model_dir={model_dir}",
        ]

    def test_two_workers_train_like_one_process(self, tmp_path):
        run_two_workers(
            self.command(tmp_path / "cluster", "multi_worker"),
            timeout=1200,
            alongside=[self.command(tmp_path / "single", "default")],
        )
        report = json.loads((tmp_path / "cluster" / "report.json").read_text())
        assert report["distribution"]["num_replicas"] == 2
        assert report["distribution"]["learning_rate"] == pytest.approx(0.1)
        # The second worker wrote its (identical) files into a folder of its own.
        worker_dir = tmp_path / "cluster" / "workers" / "worker_1"
        encoders = {
            name: keras.saving.load_model(folder / "encoder.keras")
            for name, folder in [
                ("single", tmp_path / "single"),
                ("chief", tmp_path / "cluster"),
                ("worker", worker_dir),
            ]
        }
        chief = encoders["chief"].get_weights()
        for got, expected in zip(encoders["worker"].get_weights(), chief, strict=True):
            np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-7)
        # Global batch, synchronised BatchNorm and gathered negatives: one process's run.
        for got, expected in zip(chief, encoders["single"].get_weights(), strict=True):
            np.testing.assert_allclose(got, expected, rtol=1e-3, atol=1e-4)
