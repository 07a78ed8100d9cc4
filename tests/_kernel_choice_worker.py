"""Which loss kernel runs: a run-time counter, and its MirroredStrategy subprocess side.

`count_kernel_runs()` wraps `kernels._row_terms` so that every executed call (not every
trace: a `tf.cond` traces both kernels) appends `"dense"` or `"blocked"` to a list.

Run as `python -m tests._kernel_choice_worker --input=IN.npz --output=OUT.npz`: on two
logical CPU devices under `MirroredStrategy`, each replica computes the gathered loss of
its shard and the gradients of the summed loss, for two global batches (one above and one
below a lowered dense threshold), with sizes known only at run time; it writes the
per-sample losses, the gradients and the kernels that ran.
"""

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# A dense-memory budget small enough that the tests' batches cross it: 400 float32 logits
# in the dense kernel's matrices (200 float64 ones). 16 x 2 anchor views against 32 x 2
# contrasts (2048 logits) is above, 3 x 2 against 6 x 2 (72) below.
TEST_BUDGET = 400 * 3 * 4


def count_kernel_runs(kernels):
    """Patches `kernels._row_terms` to record each kernel that runs; returns the record.

    Returns:
        `(runs, restore)`: the list of kernel names, appended to at run time, and a
        function that undoes the patch.
    """
    import tensorflow as tf

    original = kernels._row_terms
    runs = []

    def counting(*arguments, block_size=None, **options):
        terms = original(*arguments, block_size=block_size, **options)
        kind = "dense" if block_size is None else "blocked"

        def record():
            runs.append(kind)
            return 0

        marker = tf.py_function(record, [], tf.int32)
        with tf.control_dependencies([marker]):
            return tuple(tf.identity(term) for term in terms)

    kernels._row_terms = counting

    def restore():
        kernels._row_terms = original

    return runs, restore


def run(input_path, output_path):
    import numpy as np
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(2)]
    )
    from supcon_tf import supervised_contrastive_loss
    from supcon_tf.losses import kernels

    runs, _ = count_kernel_runs(kernels)
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    arrays = dict(np.load(input_path))
    results = {}

    def replica_step(features, labels):
        with tf.GradientTape() as tape:
            tape.watch(features)
            per_sample = supervised_contrastive_loss(
                labels, features, temperature=0.1, dense_memory_budget=TEST_BUDGET
            )
            total = tf.reduce_sum(per_sample)
        return per_sample, tape.gradient(total, features)

    @tf.function(
        input_signature=[tf.TensorSpec([None, 2, 8], tf.float32), tf.TensorSpec([None], tf.int64)]
    )
    def step(features, labels):
        half = tf.shape(features)[0] // 2
        shards = strategy.experimental_distribute_values_from_function(
            lambda context: (
                features[context.replica_id_in_sync_group * half :][:half],
                labels[context.replica_id_in_sync_group * half :][:half],
            )
        )
        per_sample, gradient = strategy.run(replica_step, args=shards)
        return (
            tf.concat(strategy.experimental_local_results(per_sample), 0),
            tf.concat(strategy.experimental_local_results(gradient), 0),
        )

    for name in ("large", "small"):
        before = len(runs)
        per_sample, gradient = step(arrays[f"{name}_features"], arrays[f"{name}_labels"])
        results[f"{name}_loss"] = per_sample.numpy()
        results[f"{name}_gradient"] = gradient.numpy()
        results[f"{name}_runs"] = np.array(runs[before:])
    np.savez(output_path, **results)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", required=True)
    parser.add_argument("--output", required=True)
    arguments = parser.parse_args(sys.argv[1:])
    run(arguments.input, arguments.output)
