"""Subprocess side of the MirroredStrategy test of test_momentum_encoder.py.

Run as `python -m tests._momentum_worker --replicas N --input IN --output OUT`:
configures N logical CPU devices (before TensorFlow initialises), builds
`build_momentum_model(arrays, chunk_size)` under a `MirroredStrategy`, trains it with
`model.fit` on the global batches of `arrays` (plain and gradient-cached steps) and
writes every replica's copy of every key-network weight and the memory bank. The test
computes the single-device reference and does every comparison.
"""

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

LEARNING_RATE = 0.5


def build_momentum_model(arrays, chunk_size):
    """Flatten -> Dense -> tanh encoder on 2x2 images, linear head, momentum encoder, SGD.

    No BatchNorm: per-replica batch statistics would differ from the single-device
    run's, and the comparison is of the momentum update and the queue.
    """
    import keras

    from supcon_tf.losses import SupervisedContrastiveLoss
    from supcon_tf.models import SupConModel
    from supcon_tf.models.layers import ProjectionHead

    encoder = keras.Sequential(
        [
            keras.Input(arrays["x"].shape[2:]),
            keras.layers.Flatten(),
            keras.layers.Dense(arrays["w1"].shape[1], activation="tanh"),
        ]
    )
    model = SupConModel(
        encoder,
        ProjectionHead(output_units=arrays["w2"].shape[1], num_hidden_layers=0),
        gradient_cache_chunk_size=chunk_size,
        memory_size=int(arrays["memory_size"]),
        momentum_encoder=True,
        momentum=float(arrays["momentum"]),
    )
    model.build((None, *arrays["x"].shape[1:]))
    encoder.layers[1].kernel.assign(arrays["w1"])
    encoder.layers[1].bias.assign(arrays["b1"])
    model.projection_head.output_layer.kernel.assign(arrays["w2"])
    model.projection_head.output_layer.bias.assign(arrays["b2"])
    model.key_network.initialize(model.encoder, model.projection_head)
    model.compile(
        optimizer=keras.optimizers.SGD(LEARNING_RATE),
        loss=SupervisedContrastiveLoss(temperature=0.1),
    )
    return model


def fit_steps(model, arrays, global_batch):
    """`model.fit` over the samples of `arrays`, one epoch, in global batches."""
    import tensorflow as tf

    dataset = tf.data.Dataset.from_tensor_slices((arrays["x"], arrays["labels"]))
    return model.fit(dataset.batch(global_batch), epochs=1, verbose=0, shuffle=False)


def run(arguments):
    import numpy as np

    from tests._distribute_worker import _configure_logical_cpus

    devices = _configure_logical_cpus(arguments.replicas)
    import tensorflow as tf

    arrays = dict(np.load(arguments.input))
    strategy = tf.distribute.MirroredStrategy(devices)
    results = {"num_replicas": strategy.num_replicas_in_sync}
    for name, chunk_size in (("plain", None), ("cached", int(arrays["chunk_size"]))):
        with strategy.scope():
            model = build_momentum_model(arrays, chunk_size)
        fit_steps(model, arrays, int(arrays["global_batch"]))
        for index, weight in enumerate(model.key_network.weights):
            copies = strategy.experimental_local_results(weight.value)
            results[f"{name}_key_{index}"] = np.stack([copy.numpy() for copy in copies])
        embeddings, labels = model.memory_bank.contents()
        results[f"{name}_bank_embeddings"] = embeddings.numpy()
        results[f"{name}_bank_labels"] = labels.numpy()
    np.savez(arguments.output, **results)


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", required=True)
    parser.add_argument("--output", required=True)
    parser.add_argument("--replicas", type=int, default=2)
    run(parser.parse_args(argv))


if __name__ == "__main__":
    main(sys.argv[1:])
