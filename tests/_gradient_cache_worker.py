"""Subprocess side of the MirroredStrategy tests of test_gradient_cache.py and test_memory_bank.py.

Run as `python -m tests._gradient_cache_worker --replicas N --input IN --output OUT`:
configures N logical CPU devices (before TensorFlow initialises), trains one
`model.fit` step of `build_model(arrays, chunk_size)` on the global batch under a
`MirroredStrategy`, with and without gradient caching, and writes the weights (and
the error that synchronised BatchNorm with caching raises), and, when the inputs
have `memory_size`, the memory-bank queue after two global batches. The tests compute
the single-device references and do every comparison.
"""

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

LEARNING_RATE = 0.5


def network_arrays(rng, chunk_size=2):
    """A batch of 8 samples (3 classes) and the weights of the tests' two-layer network."""
    import numpy as np

    return {
        "x": rng.normal(size=(8, 6)).astype("float32"),
        "labels": np.array([0, 1, 2, 0, 1, 2, 0, 1]),
        "w1": (0.5 * rng.normal(size=(6, 10))).astype("float32"),
        "w2": (0.5 * rng.normal(size=(10, 5))).astype("float32"),
        "b2": (0.1 * rng.normal(size=5)).astype("float32"),
        "chunk_size": np.int64(chunk_size),
    }


def build_model(arrays, chunk_size):
    """Dense -> BatchNorm -> tanh encoder on feature vectors, linear head, SGD, compiled."""
    import keras

    from supcon_tf.losses import SupervisedContrastiveLoss

    num_features = arrays["x"].shape[1]
    encoder = keras.Sequential(
        [
            keras.Input((num_features,)),
            keras.layers.Dense(arrays["w1"].shape[1], use_bias=False),
            keras.layers.BatchNormalization(),
            keras.layers.Activation("tanh"),
        ]
    )
    model = _with_weights(encoder, arrays, gradient_cache_chunk_size=chunk_size)
    model.compile(
        optimizer=keras.optimizers.SGD(LEARNING_RATE),
        loss=SupervisedContrastiveLoss(temperature=0.1),
    )
    return model


def build_memory_model(arrays, memory_size):
    """Dense -> tanh encoder, linear head, a memory bank; SGD with learning rate 0."""
    import keras

    from supcon_tf.losses import SupervisedContrastiveLoss

    num_features = arrays["x"].shape[1]
    encoder = keras.Sequential(
        [keras.Input((num_features,)), keras.layers.Dense(arrays["w1"].shape[1], "tanh")]
    )
    model = _with_weights(encoder, arrays, memory_size=memory_size)
    # Learning rate 0: every step embeds with the initial weights.
    model.compile(
        optimizer=keras.optimizers.SGD(0.0), loss=SupervisedContrastiveLoss(temperature=0.1)
    )
    return model


def _with_weights(encoder, arrays, **options):
    """A built `SupConModel` of `encoder` and a linear head, with the weights of `arrays`."""
    from supcon_tf.models import SupConModel
    from supcon_tf.models.layers import ProjectionHead

    head = ProjectionHead(output_units=arrays["w2"].shape[1], num_hidden_layers=0)
    model = SupConModel(encoder, head, **options)
    model.build((None, arrays["x"].shape[1]))
    encoder.layers[0].kernel.assign(arrays["w1"])
    model.projection_head.output_layer.kernel.assign(arrays["w2"])
    model.projection_head.output_layer.bias.assign(arrays["b2"])
    return model


def fit_one_step(model, arrays):
    """One `fit` step on the whole global batch; returns the trainable weights and loss."""
    import tensorflow as tf

    dataset = tf.data.Dataset.from_tensor_slices((arrays["x"], arrays["labels"]))
    history = model.fit(dataset.batch(len(arrays["x"])), epochs=1, verbose=0)
    weights = [variable.numpy() for variable in model.trainable_variables]
    return weights, history.history["loss"][0]


def run(arguments):
    import numpy as np

    from tests._distribute_worker import _configure_logical_cpus

    devices = _configure_logical_cpus(arguments.replicas)
    import tensorflow as tf

    arrays = dict(np.load(arguments.input))
    strategy = tf.distribute.MirroredStrategy(devices)
    results = {"num_replicas": strategy.num_replicas_in_sync}
    for name, chunk_size in (("cached", int(arrays["chunk_size"])), ("plain", None)):
        with strategy.scope():
            model = build_model(arrays, chunk_size)
        weights, loss = fit_one_step(model, arrays)
        results[f"{name}_loss"] = loss
        results.update({f"{name}_weight_{index}": w for index, w in enumerate(weights)})
    results["synchronized_error"] = _synchronized_batch_norm_error(strategy, arrays)
    if "memory_size" in arrays:
        results.update(_memory_bank_queue(strategy, arrays))
    np.savez(arguments.output, **results)


def _memory_bank_queue(strategy, arrays):
    """Queue contents and losses of `model.fit` over two global batches of 8 samples."""
    import tensorflow as tf

    with strategy.scope():
        model = build_memory_model(arrays, int(arrays["memory_size"]))
    inputs, labels = arrays["memory_x"], arrays["memory_labels"]
    losses = []
    for start in (0, 8):
        dataset = tf.data.Dataset.from_tensor_slices(
            (inputs[start : start + 8], labels[start : start + 8])
        )
        losses.append(model.fit(dataset.batch(8), epochs=1, verbose=0).history["loss"][0])
    embeddings, queue_labels = model.memory_bank.contents()
    return {
        "memory_embeddings": embeddings.numpy(),
        "memory_labels": queue_labels.numpy(),
        "memory_losses": losses,
    }


def _synchronized_batch_norm_error(strategy, arrays):
    """The error of caching with synchronised BatchNorm on several replicas ("" if none)."""
    from supcon_tf.training.distribute import synchronize_batch_norm

    with strategy.scope():
        model = build_model(arrays, int(arrays["chunk_size"]))
        synchronize_batch_norm(model, True)
    try:
        fit_one_step(model, arrays)
    except ValueError as error:
        return str(error)
    return ""


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", required=True)
    parser.add_argument("--output", required=True)
    parser.add_argument("--replicas", type=int, default=2)
    run(parser.parse_args(argv))


if __name__ == "__main__":
    main(sys.argv[1:])
