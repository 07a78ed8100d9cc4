"""Subprocess side of tests/test_distribute.py (run as `python -m tests._distribute_worker`).

Distribution tests need a fresh process: logical CPU devices must be configured before
TensorFlow initialises its devices, and `TF_CONFIG` must be set before a multi-worker
strategy starts. Each mode reads its inputs from an `.npz` file written by the test,
computes with the distributed code path, and writes the results to an `.npz` (or JSON)
file; the test computes the single-device references and does every comparison.

Modes:
    mirrored --replicas N: custom loop (`strategy.run`) and `model.fit` on N logical
        CPU devices, with and without gathering, plus synchronised BatchNorm.
    multi_worker: one worker of a `MultiWorkerMirroredStrategy` (`TF_CONFIG` in the
        environment); the chief writes the results.
    train: a small `model.fit` with `TrainingCheckpoint` that logs every step to a
        progress file and kills itself (SIGKILL) after `--kill_after` batches.
"""

import argparse
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _configure_logical_cpus(count):
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(count)]
    )
    return [f"/cpu:{index}" for index in range(count)]


def build_embedding_model(arrays):
    """Two dense layers applied per view: inputs `[B, V, F]` -> embeddings `[B, V, D]`."""
    import keras

    num_views, num_features = arrays["x"].shape[1:]
    model = keras.Sequential(
        [
            keras.Input((num_views, num_features)),
            keras.layers.Dense(arrays["w1"].shape[1], activation="tanh"),
            keras.layers.Dense(arrays["w2"].shape[1]),
        ]
    )
    model.set_weights([arrays["w1"], arrays["b1"], arrays["w2"], arrays["b2"]])
    return model


def _shards(strategy, array):
    """Per-replica values: replica r gets rows `r*B .. (r+1)*B - 1` of the global batch."""
    shard = array.shape[0] // strategy.num_replicas_in_sync
    return strategy.experimental_distribute_values_from_function(
        lambda context: array[
            context.replica_id_in_sync_group * shard : (context.replica_id_in_sync_group + 1)
            * shard
        ]
    )


def _custom_loop_cases(strategy, model, arrays):
    """Loss (summed over replicas) and all-reduced gradients of every loss variant.

    All variants run in one `tf.function` (one trace) to keep the subprocess short.
    """
    import tensorflow as tf

    from supcon_tf import SupervisedContrastiveLoss, supervised_contrastive_loss

    global_batch = arrays["x"].shape[0]
    with strategy.scope():
        gathered = SupervisedContrastiveLoss(temperature=0.1)
        local = SupervisedContrastiveLoss(temperature=0.1, gather_across_replicas=False)

        # Loss variants (tests/test_distribute.py VARIANT_CASES): gathered like the rest.
        one_positive = SupervisedContrastiveLoss(
            temperature=0.1, denominator_mode="one_positive", positives_cap=2
        )
        only_negatives = SupervisedContrastiveLoss(
            temperature=0.1,
            denominator_mode="only_negatives",
            summation="in",
            implementation="blocked",
            block_size=3,
        )
        weighted = SupervisedContrastiveLoss(temperature=0.1, pair_weights=True)

    def masked(mask_rows, embeddings):
        per_sample = supervised_contrastive_loss(
            None, embeddings, temperature=0.1, positive_mask=mask_rows
        )
        return tf.nn.compute_average_loss(per_sample, global_batch_size=global_batch)

    cases = {
        "labels": lambda labels, _, __, embeddings: gathered(labels, embeddings),
        "simclr": lambda _, __, ___, embeddings: gathered(None, embeddings),
        "mask": lambda _, mask_rows, __, embeddings: masked(mask_rows, embeddings),
        "local": lambda labels, _, __, embeddings: local(labels, embeddings),
        "one_positive": lambda labels, _, __, embeddings: one_positive(labels, embeddings),
        "only_negatives": lambda labels, _, __, embeddings: only_negatives(labels, embeddings),
        # This replica's rows of the global [G, G] weight matrix.
        "weighted": lambda _, __, weight_rows, embeddings: weighted(weight_rows, embeddings),
    }

    @tf.function
    def step(inputs, labels, mask_rows, weight_rows):
        def replica_step(x, labels, mask_rows, weight_rows):
            context = tf.distribute.get_replica_context()
            outputs = {}
            for name, loss_function in cases.items():
                with tf.GradientTape() as tape:
                    loss = loss_function(labels, mask_rows, weight_rows, model(x, training=True))
                gradients = tape.gradient(loss, model.trainable_variables)
                outputs[name] = (loss, context.all_reduce("sum", gradients))
            return outputs

        outputs = strategy.run(replica_step, args=(inputs, labels, mask_rows, weight_rows))
        return {
            name: (strategy.reduce("sum", loss, axis=None), gradients)
            for name, (loss, gradients) in outputs.items()
        }

    outputs = step(*(_shards(strategy, arrays[key]) for key in ("x", "labels", "mask", "weights")))
    results = {}
    for name, (loss, gradients) in outputs.items():
        results[f"{name}_loss"] = float(loss)
        for index, gradient in enumerate(gradients):
            local_values = strategy.experimental_local_results(gradient)
            results[f"{name}_gradient_{index}"] = local_values[0].numpy()
    return results


def _uneven_shards(strategy, array):
    """Per-replica values of unequal sizes (as a partial last batch gives), in order."""
    replicas = strategy.num_replicas_in_sync
    # Replica r gets rows bounds[r] .. bounds[r + 1] - 1: sizes 3, 5 or 1, 2, 2, 3.
    bounds = {2: [0, 3, 8], 4: [0, 1, 3, 5, 8]}[replicas]
    return strategy.experimental_distribute_values_from_function(
        lambda context: array[
            bounds[context.replica_id_in_sync_group] : bounds[context.replica_id_in_sync_group + 1]
        ]
    )


def _uneven_shards_case(strategy, model, arrays):
    """Loss and gradients with shards of unequal sizes (global mean over all samples)."""
    import tensorflow as tf

    from supcon_tf import supervised_contrastive_loss

    global_batch = arrays["x"].shape[0]

    @tf.function
    def step(inputs, labels):
        def replica_step(x, labels):
            with tf.GradientTape() as tape:
                per_sample = supervised_contrastive_loss(labels, model(x, training=True))
                loss = tf.nn.compute_average_loss(per_sample, global_batch_size=global_batch)
            gradients = tape.gradient(loss, model.trainable_variables)
            return loss, tf.distribute.get_replica_context().all_reduce("sum", gradients)

        loss, gradients = strategy.run(replica_step, args=(inputs, labels))
        return strategy.reduce("sum", loss, axis=None), gradients

    loss, gradients = step(
        _uneven_shards(strategy, arrays["x"]), _uneven_shards(strategy, arrays["labels"])
    )
    results = {"uneven_loss": float(loss)}
    for index, gradient in enumerate(gradients):
        results[f"uneven_gradient_{index}"] = strategy.experimental_local_results(gradient)[
            0
        ].numpy()
    return results


def _custom_loop_update(strategy, arrays):
    """Weights after one SGD step of a custom loop (the optimizer all-reduces gradients)."""
    import keras
    import tensorflow as tf

    from supcon_tf import SupervisedContrastiveLoss

    with strategy.scope():
        model = build_embedding_model(arrays)
        optimizer = keras.optimizers.SGD(float(arrays["learning_rate"]))
        loss_object = SupervisedContrastiveLoss(temperature=0.1)

    @tf.function
    def step(inputs, labels):
        def replica_step(x, labels):
            with tf.GradientTape() as tape:
                loss = loss_object(labels, model(x, training=True))
            gradients = tape.gradient(loss, model.trainable_variables)
            optimizer.apply_gradients(zip(gradients, model.trainable_variables, strict=True))
            return loss

        return strategy.reduce("sum", strategy.run(replica_step, args=(inputs, labels)), None)

    loss = step(_shards(strategy, arrays["x"]), _shards(strategy, arrays["labels"]))
    results = {f"update_weight_{index}": w for index, w in enumerate(model.get_weights())}
    results["update_loss"] = float(loss)
    return results


def _fit_one_step(strategy, arrays):
    """Weights after one `model.fit` SGD step on the whole global batch."""
    import keras

    from supcon_tf import SupervisedContrastiveLoss

    with strategy.scope():
        model = build_embedding_model(arrays)
        model.compile(
            optimizer=keras.optimizers.SGD(float(arrays["learning_rate"])),
            loss=SupervisedContrastiveLoss(temperature=0.1),
        )
    import tensorflow as tf

    global_batch = arrays["x"].shape[0]
    # The global batch; the strategy splits it over the replicas (and workers).
    dataset = tf.data.Dataset.from_tensor_slices((arrays["x"], arrays["labels"])).batch(
        global_batch
    )
    history = model.fit(dataset, epochs=1, verbose=0)
    results = {f"fit_weight_{index}": w for index, w in enumerate(model.get_weights())}
    results["fit_loss"] = history.history["loss"][0]
    return results


def _batch_norm_outputs(strategy, arrays, synchronized):
    """Training-mode BatchNorm outputs of the global batch, sharded over the replicas."""
    import keras
    import tensorflow as tf

    from supcon_tf.training.distribute import synchronize_batch_norm

    features = arrays["batch_norm_inputs"]
    with strategy.scope():
        model = keras.Sequential(
            [keras.Input(features.shape[1:]), keras.layers.BatchNormalization()]
        )
        synchronize_batch_norm(model, synchronized)

    @tf.function
    def step(inputs):
        return strategy.run(lambda x: model(x, training=True), args=(inputs,))

    outputs = step(_shards(strategy, features))
    return tf.concat(strategy.experimental_local_results(outputs), axis=0).numpy()


def _square_mask_error(strategy, model, arrays):
    """The error message for a per-replica `[B, B]` mask under gathering ("" if none)."""
    from supcon_tf import supervised_contrastive_loss

    shard = arrays["x"].shape[0] // strategy.num_replicas_in_sync

    def replica_step(x):
        return supervised_contrastive_loss(
            None, model(x), positive_mask=arrays["mask"][:shard, :shard]
        )

    try:
        strategy.run(replica_step, args=(_shards(strategy, arrays["x"]),))
    except ValueError as error:
        return str(error)
    return ""


def run_mirrored(arguments):
    import numpy as np

    devices = _configure_logical_cpus(arguments.replicas)
    import tensorflow as tf

    arrays = dict(np.load(arguments.input))
    strategy = tf.distribute.MirroredStrategy(devices)
    with strategy.scope():
        model = build_embedding_model(arrays)
    results = {"num_replicas": strategy.num_replicas_in_sync}
    results.update(_custom_loop_cases(strategy, model, arrays))
    results.update(_fit_one_step(strategy, arrays))
    results.update(_uneven_shards_case(strategy, model, arrays))
    results["mask_error"] = _square_mask_error(strategy, model, arrays)
    results["sync_batch_norm"] = _batch_norm_outputs(strategy, arrays, True)
    results["local_batch_norm"] = _batch_norm_outputs(strategy, arrays, False)
    np.savez(arguments.output, **results)


def run_multi_worker(arguments):
    import numpy as np

    from supcon_tf.training.distribute import build_strategy, is_chief

    arrays = dict(np.load(arguments.input))
    strategy = build_strategy("multi_worker")
    with strategy.scope():
        model = build_embedding_model(arrays)
    results = {"num_replicas": strategy.num_replicas_in_sync}
    results.update(_custom_loop_cases(strategy, model, arrays))
    # Keras 3's `model.fit` fails under MultiWorkerMirroredStrategy before the first
    # step (keras-team/keras#20585): multi-worker training runs a custom loop.
    results.update(_custom_loop_update(strategy, arrays))
    if is_chief(strategy):
        np.savez(arguments.output, **results)


def run_train(arguments):
    import signal

    import keras
    import numpy as np
    import tensorflow as tf

    from supcon_tf import SupervisedContrastiveLoss
    from supcon_tf.training.checkpoints import TrainingCheckpoint

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    samples = arguments.steps * arguments.batch_size
    labels = rng.integers(0, 4, size=samples)
    centres = rng.normal(size=(4, 16))
    inputs = (centres[labels][:, None, :] + 0.8 * rng.normal(size=(samples, 2, 16))).astype(
        "float32"
    )
    model = keras.Sequential(
        [
            keras.Input((2, 16)),
            keras.layers.Dense(32, activation="relu"),
            keras.layers.Dropout(0.2),
            keras.layers.Dense(8),
        ]
    )
    model.compile(
        optimizer=keras.optimizers.SGD(0.05, momentum=0.9), loss=SupervisedContrastiveLoss()
    )
    model.build((None, 2, 16))
    checkpoint = TrainingCheckpoint(
        arguments.backup_dir,
        steps_per_epoch=arguments.steps,
        epochs=arguments.epochs,
        save_every=arguments.save_freq,
    )
    epoch, step = checkpoint.restore(model)
    batches_run = []

    class ProgressLog(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            batches_run.append(checkpoint.global_step)
            with open(arguments.progress, "a") as progress:
                progress.write(f"{checkpoint.global_step}\n")
            if len(batches_run) == arguments.kill_after:
                os.kill(os.getpid(), signal.SIGKILL)

    def stream(first_epoch, first_step, end_epoch):
        one_epoch = tf.data.Dataset.from_tensor_slices((inputs, labels)).batch(arguments.batch_size)
        return one_epoch.repeat(end_epoch - first_epoch).skip(first_step)

    # The rest of an interrupted epoch, then whole epochs (as supcon_tf.experiment.phases does).
    segments = [(epoch, epoch + 1, arguments.steps - step, step)] if step else []
    segments.append((epoch + (1 if step else 0), arguments.epochs, arguments.steps, 0))
    for first_epoch, end_epoch, steps, first_step in segments:
        if first_epoch < end_epoch:
            model.fit(
                stream(first_epoch, first_step, end_epoch),
                initial_epoch=first_epoch,
                epochs=end_epoch,
                steps_per_epoch=steps,
                verbose=0,
                callbacks=[checkpoint, ProgressLog()],
            )
    report = {
        "completed_steps": checkpoint.global_step,
        "weights": [weight.tolist() for weight in model.get_weights()],
        "final_loss": float(
            model.evaluate(inputs, labels, batch_size=arguments.batch_size, verbose=0)
        ),
    }
    with open(arguments.output, "w") as output:
        json.dump(report, output)


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["mirrored", "multi_worker", "train"])
    parser.add_argument("--input")
    parser.add_argument("--output", required=True)
    parser.add_argument("--replicas", type=int, default=2)
    parser.add_argument("--backup_dir")
    parser.add_argument("--progress")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--save_freq", type=int, default=2)
    parser.add_argument("--kill_after", type=int, default=0)
    arguments = parser.parse_args(argv)
    {"mirrored": run_mirrored, "multi_worker": run_multi_worker, "train": run_train}[
        arguments.mode
    ](arguments)


if __name__ == "__main__":
    main(sys.argv[1:])
