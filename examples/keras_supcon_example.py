"""The original Keras SupCon example, reproduced on supcon_tf.

Reproduces keras.io's "Supervised Contrastive Learning" example (Khalid Salama, 2020,
keras-io `examples/vision/supervised-contrastive-learning.py`) with this package's
building blocks instead of TensorFlow Addons:

* encoder: `keras.applications.ResNet50V2(include_top=False, weights=None,
  pooling="avg")` behind a `Normalization` layer adapted to the training images;
* augmentation: horizontal flip, rotation 0.02, random width and height 0.2 (here a
  `RandomZoom` with independent height and width factors: Keras 3 has no
  `RandomWidth` / `RandomHeight`), active in every training phase (the example put it
  inside the encoder; here it runs in the tf.data pipeline, which is equivalent
  because the frozen encoder's BatchNorm runs in inference mode either way);
* pretraining: one view, projection `Dense(128, relu)`, the example's loss
  (`tfa.losses.npairs_loss` on L2-normalised embeddings / temperature 0.05), which is
  `supcon_tf.NPairsLoss` (`--loss=supcon` uses `SupervisedContrastiveLoss` instead);
* classifier: `Dropout(0.5) -> Dense(512, relu) -> Dropout(0.5) -> Dense(10)` on the
  frozen encoder; the baseline trains the same model end to end;
* Adam 1e-3, batch size 265, 50 epochs per phase.

The example's published CIFAR-10 test accuracies: 78.53 % (cross-entropy) and
81.62 % (SupCon), not the 71.14 % / 72.9 % sometimes quoted for it.

Usage (offline, on an image folder with train/<class>/ and test/<class>/):

    tar -xzf ../shared/data/cifar10-jpeg.tar.gz -C /tmp/cifar10
    python examples/keras_supcon_example.py --data_dir=/tmp/cifar10

Without `--data_dir` the CIFAR-10 arrays come from `keras.datasets.cifar10`
(downloaded on a connected machine). `--train_limit`, `--test_limit` and the epoch
flags shrink the run for a CPU.
"""

import json
import time
from pathlib import Path

import keras
import numpy as np
from absl import app, flags

from supcon_tf import (
    NPairsLoss,
    ProjectionHead,
    SupConModel,
    SupervisedContrastiveLoss,
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
flags.DEFINE_enum(
    "encoder",
    "resnet50v2",
    ["resnet50v2", "small_cnn", "resnet18"],
    "resnet50v2 is the example's encoder; the others are faster substitutes.",
)
flags.DEFINE_enum("loss", "npairs", ["npairs", "supcon"], "Pretraining loss.")
flags.DEFINE_integer("pretrain_epochs", 50, "Epochs of contrastive pretraining.", lower_bound=1)
flags.DEFINE_integer(
    "classifier_epochs", 50, "Epochs of the frozen-encoder classifier.", lower_bound=1
)
flags.DEFINE_integer("baseline_epochs", 50, "Epochs of the cross-entropy baseline.", lower_bound=1)
flags.DEFINE_bool("baseline", True, "Train the cross-entropy baseline.")
flags.DEFINE_integer("batch_size", 265, "Batch size (the example's 265).", lower_bound=2)
flags.DEFINE_float("learning_rate", 1e-3, "Adam learning rate.", lower_bound=0.0)
flags.DEFINE_float("temperature", 0.05, "Loss temperature.", lower_bound=1e-6)
flags.DEFINE_integer(
    "train_limit", 0, "Use a random subset of this many training images (0: all).", lower_bound=0
)
flags.DEFINE_integer(
    "test_limit", 0, "Use a random subset of this many test images (0: all).", lower_bound=0
)
flags.DEFINE_integer("seed", 0, "Random seed.")
flags.DEFINE_integer("verbose", 2, "Keras progress mode.", lower_bound=0, upper_bound=2)
flags.DEFINE_string("output", None, "Write the results as JSON to this path.")


_FLAG_NAMES = (
    "data_dir",
    "encoder",
    "loss",
    "pretrain_epochs",
    "classifier_epochs",
    "baseline_epochs",
    "baseline",
    "batch_size",
    "learning_rate",
    "temperature",
    "train_limit",
    "test_limit",
    "seed",
)


def augmentation(seed):
    """The example's flip and rotation, and its random width / height as a zoom.

    Keras 3 has no `RandomWidth` / `RandomHeight`; `RandomZoom` with independent
    height and width factors of 0.2 stretches the content the same way but keeps the
    32x32 size (the original fed resized images to the size-agnostic ResNet50V2).
    The normalisation is in the encoder.
    """
    return keras.Sequential(
        [
            keras.layers.RandomFlip("horizontal", seed=seed),
            keras.layers.RandomRotation(0.02, seed=seed),
            keras.layers.RandomZoom(height_factor=(-0.2, 0.2), width_factor=(-0.2, 0.2), seed=seed),
        ],
        name="augmentation",
    )


def create_encoder(name, x_train):
    """The example's encoder: Normalization (adapted) + ResNet50V2 from scratch, pooled."""
    channels = x_train.shape[-1]
    if name != "resnet50v2":
        return build_encoder(name, x_train.shape[1:])
    normalization = keras.layers.Normalization(name="normalization")
    normalization.adapt(x_train)
    inputs = keras.Input((None, None, channels), name="images")
    resnet = keras.applications.ResNet50V2(
        include_top=False, weights=None, input_shape=(None, None, channels), pooling="avg"
    )
    return build_encoder(keras.Model(inputs, resnet(normalization(inputs)), name="encoder"))


def subset(x, y, limit, seed):
    if not limit or limit >= len(x):
        return x, y
    index = np.random.default_rng(seed).permutation(len(x))[:limit]
    return x[index], y[index]


def fit_classifier(model, x_train, y_train, epochs, augment):
    model.compile(
        optimizer=keras.optimizers.Adam(FLAGS.learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
    )
    batches = make_dataset(
        x_train, y_train, FLAGS.batch_size, shuffle=True, seed=FLAGS.seed, augment=augment
    )
    model.fit(batches, epochs=epochs, shuffle=False, verbose=FLAGS.verbose)


def evaluate(model, x_test, y_test):
    _, accuracy = model.evaluate(make_dataset(x_test, y_test, FLAGS.batch_size), verbose=0)
    return float(accuracy)


def main(argv):
    del argv
    keras.utils.set_random_seed(FLAGS.seed)
    data = load_dataset(FLAGS.data_dir or "cifar10", validation_fraction=0.0, seed=FLAGS.seed)
    x_train, y_train = subset(data.x_train, data.y_train, FLAGS.train_limit, FLAGS.seed)
    x_test, y_test = subset(data.x_test, data.y_test, FLAGS.test_limit, FLAGS.seed + 1)
    augment = augmentation(FLAGS.seed)
    results = {
        "flags": {name: FLAGS[name].value for name in _FLAG_NAMES},
        "train_images": len(x_train),
        "test_images": len(x_test),
        "timings": {},
    }

    if FLAGS.baseline:
        start = time.perf_counter()
        baseline = build_cross_entropy_classifier(
            create_encoder(FLAGS.encoder, x_train), data.num_classes, hidden_units=512, dropout=0.5
        )
        fit_classifier(baseline, x_train, y_train, FLAGS.baseline_epochs, augment)
        results["cross_entropy_test_accuracy"] = evaluate(baseline, x_test, y_test)
        results["timings"]["baseline_seconds"] = time.perf_counter() - start
        print(f"Cross-entropy test accuracy: {100 * results['cross_entropy_test_accuracy']:.2f}%")

    start = time.perf_counter()
    encoder = create_encoder(FLAGS.encoder, x_train)
    model = SupConModel(
        encoder,
        projection_head=ProjectionHead(
            output_units=128, num_hidden_layers=0, output_activation="relu"
        ),
        num_views=1,
    )
    loss = (
        NPairsLoss(temperature=FLAGS.temperature)
        if FLAGS.loss == "npairs"
        else SupervisedContrastiveLoss(temperature=FLAGS.temperature)
    )
    model.compile(optimizer=keras.optimizers.Adam(FLAGS.learning_rate), loss=loss)
    batches = make_dataset(
        x_train, y_train, FLAGS.batch_size, shuffle=True, seed=FLAGS.seed, augment=augment
    )
    history = model.fit(batches, epochs=FLAGS.pretrain_epochs, shuffle=False, verbose=FLAGS.verbose)
    results["timings"]["pretrain_seconds"] = time.perf_counter() - start
    results["pretrain_loss"] = [float(value) for value in history.history["loss"]]

    start = time.perf_counter()
    classifier = build_linear_classifier(encoder, data.num_classes, hidden_units=512, dropout=0.5)
    fit_classifier(classifier, x_train, y_train, FLAGS.classifier_epochs, augment)
    results["supcon_test_accuracy"] = evaluate(classifier, x_test, y_test)
    results["timings"]["classifier_seconds"] = time.perf_counter() - start
    print(f"SupCon ({FLAGS.loss}) test accuracy: {100 * results['supcon_test_accuracy']:.2f}%")
    if FLAGS.output:
        Path(FLAGS.output).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    app.run(main)
