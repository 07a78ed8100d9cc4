"""The first Keras SupCon example (2020/11/01), exactly, on supcon_tf.

Reproduces the first version of keras.io's "Supervised Contrastive Learning" example
(Khalid Salama, created and last modified 2020/11/01; the later revision, with a
ResNet50V2 encoder and augmentation, is `examples/keras_supcon_example.py`):

* encoder `keras_example_cnn`: Conv2D(32, 3, relu) -> MaxPool(2) -> Conv2D(64, 3, relu)
  -> MaxPool(2) -> Flatten -> Dense(128), 314,432 parameters on 32x32x3 images, fed
  images in [0, 1] as they are (no normalisation, no augmentation);
* pretraining: one view, no projection head (the loss sees the encoder's 128-d output),
  the example's loss `tfa.losses.npairs_loss` on L2-normalised features / temperature
  0.05, which is `supcon_tf.NPairsLoss`;
* classifier: Dropout(0.5) -> Dense(64) (linear) -> Dropout(0.5) -> Dense(10) on the
  frozen encoder, 323,338 parameters in all; experiment 1 (the baseline) trains the same
  model end to end with cross-entropy;
* Adam (Keras' default learning rate 1e-3), batch 256, 50 epochs per phase; the last
  epoch is evaluated on the test split.

Published CIFAR-10 test accuracies: 71.14 % (cross-entropy) and 72.9 % (SupCon). The
only change: the classifier outputs logits (`from_logits=True`) instead of a softmax,
which is the same model and loss.

Usage (offline, on the CIFAR-10 JPEG folder of `../shared/data`):

    tar -xzf ../shared/data/cifar10-jpeg.tar.gz -C /tmp/cifar10
    python examples/keras_supcon_example_2020.py --data_dir=/tmp/cifar10 --output=2020.json

The same protocol through `supcon-train` is `--preset=keras_example_2020`.
"""

import json
import time
from pathlib import Path

import keras
from absl import app, flags

from supcon_tf import (
    NPairsLoss,
    SupConModel,
    build_cross_entropy_classifier,
    build_encoder,
    build_linear_classifier,
    load_dataset,
    make_dataset,
)

FLAGS = flags.FLAGS
flags.DEFINE_string(
    "data_dir",
    None,
    "Image folder with train/<class>/ and test/<class>/ (or an .npz file); default: "
    "keras.datasets.cifar10 (downloads).",
)
flags.DEFINE_integer("epochs", 50, "Epochs of each phase (the example's 50).", lower_bound=1)
flags.DEFINE_integer("batch_size", 256, "Batch size (the example's 256).", lower_bound=2)
flags.DEFINE_float("temperature", 0.05, "N-pairs loss temperature (the example's 0.05).")
flags.DEFINE_bool("baseline", True, "Train the cross-entropy baseline (experiment 1).")
flags.DEFINE_integer("seed", 0, "Random seed.")
flags.DEFINE_integer("verbose", 2, "Keras progress mode.", lower_bound=0, upper_bound=2)
flags.DEFINE_string("output", None, "Write the results as JSON to this path.")

HIDDEN_UNITS = 64  # Dense(64), linear
DROPOUT = 0.5


def create_classifier(encoder, num_classes, trainable):
    """The example's `create_classifier`: dropout, Dense(64), dropout, Dense(classes)."""
    build = build_cross_entropy_classifier if trainable else build_linear_classifier
    return build(
        encoder,
        num_classes,
        hidden_units=HIDDEN_UNITS,
        dropout=DROPOUT,
        hidden_activation="linear",
    )


def fit(model, x, y, loss, metrics=()):
    model.compile(optimizer=keras.optimizers.Adam(), loss=loss, metrics=list(metrics))
    batches = make_dataset(x, y, FLAGS.batch_size, shuffle=True, seed=FLAGS.seed)
    return model.fit(batches, epochs=FLAGS.epochs, shuffle=False, verbose=FLAGS.verbose)


def fit_classifier(model, data):
    fit(
        model,
        data.x_train,
        data.y_train,
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        [keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
    )
    batches = make_dataset(data.x_test, data.y_test, FLAGS.batch_size)
    _, accuracy = model.evaluate(batches, verbose=0)
    return float(accuracy)


def main(argv):
    del argv
    keras.utils.set_random_seed(FLAGS.seed)
    data = load_dataset(FLAGS.data_dir or "cifar10", validation_fraction=0.0, seed=FLAGS.seed)
    results = {
        "flags": {name: FLAGS[name].value for name in ("data_dir", "epochs", "batch_size")},
        "train_images": len(data.x_train),
        "test_images": len(data.x_test),
        "timings": {},
    }

    if FLAGS.baseline:  # Experiment 1: the classifier trained end to end.
        start = time.perf_counter()
        encoder = build_encoder("keras_example_cnn", data.input_shape)
        baseline = create_classifier(encoder, data.num_classes, trainable=True)
        results["cross_entropy_test_accuracy"] = fit_classifier(baseline, data)
        results["timings"]["baseline_seconds"] = time.perf_counter() - start
        print(f"Cross-entropy test accuracy: {100 * results['cross_entropy_test_accuracy']:.2f}%")

    # Experiment 2: pretrain the encoder with the n-pairs loss, then the frozen classifier.
    start = time.perf_counter()
    encoder = build_encoder("keras_example_cnn", data.input_shape)
    model = SupConModel(encoder, projection_head=keras.layers.Identity(), num_views=1)
    history = fit(model, data.x_train, data.y_train, NPairsLoss(temperature=FLAGS.temperature))
    results["pretrain_loss"] = [float(value) for value in history.history["loss"]]
    results["timings"]["pretrain_seconds"] = time.perf_counter() - start
    start = time.perf_counter()
    classifier = create_classifier(encoder, data.num_classes, trainable=False)
    results["supcon_test_accuracy"] = fit_classifier(classifier, data)
    results["timings"]["classifier_seconds"] = time.perf_counter() - start
    print(f"SupCon (n-pairs) test accuracy: {100 * results['supcon_test_accuracy']:.2f}%")
    if FLAGS.output:
        Path(FLAGS.output).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    app.run(main)
