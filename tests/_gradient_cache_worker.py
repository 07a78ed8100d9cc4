"""Subprocess side of the MirroredStrategy tests of tests/test_gradient_cache.py.

Run as `python -m tests._gradient_cache_worker --replicas N --input IN --output OUT`:
configures N logical CPU devices (before TensorFlow initialises), trains one
`model.fit` step of `build_model(arrays, chunk_size)` on the global batch under a
`MirroredStrategy`, with and without gradient caching, and writes the weights (and
the error that synchronised BatchNorm with caching raises). The test computes the
single-device references and does every comparison.
"""

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

LEARNING_RATE = 0.5


def build_model(arrays, chunk_size):
    """Dense -> BatchNorm -> tanh encoder on feature vectors, linear head, SGD, compiled."""
    import keras

    from supcon_tf.layers import ProjectionHead
    from supcon_tf.losses import SupervisedContrastiveLoss
    from supcon_tf.models import SupConModel

    num_features = arrays["x"].shape[1]
    encoder = keras.Sequential(
        [
            keras.Input((num_features,)),
            keras.layers.Dense(arrays["w1"].shape[1], use_bias=False),
            keras.layers.BatchNormalization(),
            keras.layers.Activation("tanh"),
        ]
    )
    model = SupConModel(
        encoder,
        ProjectionHead(output_units=arrays["w2"].shape[1], num_hidden_layers=0),
        gradient_cache_chunk_size=chunk_size,
    )
    model.build((None, num_features))
    encoder.layers[0].kernel.assign(arrays["w1"])
    model.projection_head.output_layer.kernel.assign(arrays["w2"])
    model.projection_head.output_layer.bias.assign(arrays["b2"])
    model.compile(
        optimizer=keras.optimizers.SGD(LEARNING_RATE),
        loss=SupervisedContrastiveLoss(temperature=0.1),
    )
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
    np.savez(arguments.output, **results)


def _synchronized_batch_norm_error(strategy, arrays):
    """The error of caching with synchronised BatchNorm on several replicas ("" if none)."""
    from supcon_tf.distribute import synchronize_batch_norm

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
