"""The original Keras SupCon example's protocol on a CIFAR-10 image folder, measured.

Protocol of keras.io/examples/vision/supervised-contrastive-learning (2020/11/30):
ResNet50V2 encoder (no pretrained weights) behind Normalization + RandomFlip +
RandomRotation(0.02) + RandomWidth/Height(0.2) (here RandomZoom(0.2, 0.2): Keras 3
has no RandomWidth/RandomHeight); Adam 1e-3; batch 265; temperature 0.05;
Dense(128, relu) projection; classifier Dropout 0.5 / Dense(512, relu) / Dropout 0.5 /
Dense(10). Experiment 1 trains encoder + classifier end to end with cross-entropy;
experiment 2 pretrains encoder + projection with the supervised contrastive loss
(here: `supcon_tf.SupervisedContrastiveLoss` on one view, in place of the example's
tfa N-pairs loss), then trains the classifier on the frozen encoder.

Differences from the example, all forced by the machine and stated in RESULTS.md: a
class-balanced subset of the JPEG-compressed CIFAR-10 archive, fewer epochs, and model
selection: the epoch with the best accuracy on a validation split carved from the
training subset is kept, and the test subset is evaluated once at the end.

Run (writes a JSON report):

    python benchmarks/reproduce_keras_example.py --data_dir=/tmp/cifar10_subset \
        --epochs=5 --output=/tmp/keras_example.json
"""

import json
import time
from pathlib import Path

import keras
import numpy as np
from absl import app, flags, logging

from supcon_tf.losses import SupervisedContrastiveLoss
from supcon_tf.training.optimizers import build_optimizer

FLAGS = flags.FLAGS
flags.DEFINE_string("data_dir", None, "Image folder with train/<class>/ and test/<class>/.")
flags.DEFINE_integer("epochs", 5, "Epochs of each phase (the example uses 50).")
flags.DEFINE_integer("batch_size", 265, "Batch size (the example's 265).")
flags.DEFINE_float("learning_rate", 1e-3, "Adam learning rate (the example's 1e-3).")
flags.DEFINE_float("temperature", 0.05, "Loss temperature (the example's 0.05).")
flags.DEFINE_float("validation_fraction", 0.1, "Fraction of the training images held out.")
flags.DEFINE_integer("seed", 0, "Random seed.")
flags.DEFINE_string("output", "keras_example_report.json", "Where the JSON report goes.")
flags.mark_flag_as_required("data_dir")


def load_split(folder):
    """Returns float32 images in [0, 255] and int labels, classes in sorted folder order."""
    dataset = keras.utils.image_dataset_from_directory(
        folder, image_size=(32, 32), batch_size=None, shuffle=False, label_mode="int"
    )
    images, labels = [], []
    for image, label in dataset.as_numpy_iterator():
        images.append(image)
        labels.append(label)
    return np.stack(images).astype("float32"), np.array(labels, dtype="int32")


def stratified_split(labels, fraction, seed):
    rng = np.random.default_rng(seed)
    validation = []
    for label in np.unique(labels):
        indices = rng.permutation(np.flatnonzero(labels == label))
        validation.extend(indices[: max(1, round(fraction * len(indices)))])
    mask = np.zeros(len(labels), dtype=bool)
    mask[validation] = True
    return np.flatnonzero(~mask), np.flatnonzero(mask)


def build_encoder(x_train):
    normalization = keras.layers.Normalization()
    normalization.adapt(x_train)
    augmentation = keras.Sequential(
        [
            normalization,
            keras.layers.RandomFlip("horizontal"),
            keras.layers.RandomRotation(0.02),
            # Keras 3 has no RandomWidth/RandomHeight (they resized the image); a zoom
            # with independent height and width factors of 0.2 stands in for them.
            keras.layers.RandomZoom(height_factor=0.2, width_factor=0.2),
        ]
    )
    resnet = keras.applications.ResNet50V2(
        include_top=False, weights=None, input_shape=(32, 32, 3), pooling="avg"
    )
    inputs = keras.Input((32, 32, 3))
    return keras.Model(inputs, resnet(augmentation(inputs)), name="cifar10_encoder")


def build_classifier(encoder, trainable):
    encoder.trainable = trainable
    inputs = keras.Input((32, 32, 3))
    # Called without `training`: augmentation stays on while fitting, as in the example,
    # and a frozen encoder's BatchNormalization runs in inference mode.
    features = encoder(inputs)
    features = keras.layers.Dropout(0.5)(features)
    features = keras.layers.Dense(512, activation="relu")(features)
    features = keras.layers.Dropout(0.5)(features)
    outputs = keras.layers.Dense(10)(features)
    model = keras.Model(inputs, outputs, name="cifar10_classifier")
    model.compile(
        optimizer=build_optimizer("adam", learning_rate=FLAGS.learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model


def fit_and_select(model, data, checkpoint):
    """Fits, keeps the weights of the best validation epoch, returns (history, seconds)."""
    x_train, y_train, x_val, y_val = data
    callback = keras.callbacks.ModelCheckpoint(
        checkpoint,
        monitor="val_accuracy",
        mode="max",
        save_best_only=True,
        save_weights_only=True,
    )
    start = time.time()
    history = model.fit(
        x_train,
        y_train,
        batch_size=FLAGS.batch_size,
        epochs=FLAGS.epochs,
        validation_data=(x_val, y_val),
        callbacks=[callback],
        verbose=2,
    )
    seconds = time.time() - start
    model.load_weights(checkpoint)
    return history.history, seconds


def main(argv):
    del argv
    keras.utils.set_random_seed(FLAGS.seed)
    root = Path(FLAGS.data_dir)
    x_all, y_all = load_split(root / "train")
    x_test, y_test = load_split(root / "test")
    train_index, val_index = stratified_split(y_all, FLAGS.validation_fraction, FLAGS.seed)
    data = (x_all[train_index], y_all[train_index], x_all[val_index], y_all[val_index])
    work = Path(FLAGS.output).with_suffix("")
    work.mkdir(parents=True, exist_ok=True)
    report = {
        "protocol": "keras_example",
        "data_dir": str(root),
        "train_images": len(train_index),
        "validation_images": len(val_index),
        "test_images": len(y_test),
        "epochs_per_phase": FLAGS.epochs,
        "batch_size": FLAGS.batch_size,
        "temperature": FLAGS.temperature,
        "keras_version": keras.__version__,
    }

    logging.info("Experiment 1: cross-entropy baseline")
    baseline = build_classifier(build_encoder(data[0]), trainable=True)
    history, seconds = fit_and_select(baseline, data, str(work / "baseline.weights.h5"))
    report["cross_entropy"] = {
        "seconds": seconds,
        "best_validation_accuracy": max(history["val_accuracy"]),
        "validation_accuracy_per_epoch": history["val_accuracy"],
        "test_accuracy": baseline.evaluate(x_test, y_test, verbose=0)[1],
    }

    logging.info("Experiment 2: SupCon pretraining, then the classifier on the frozen encoder")
    encoder = build_encoder(data[0])
    inputs = keras.Input((32, 32, 3))
    projection = keras.layers.Dense(128, activation="relu")(encoder(inputs))
    pretrain = keras.Model(inputs, projection, name="encoder_with_projection_head")
    pretrain.compile(
        optimizer=build_optimizer("adam", learning_rate=FLAGS.learning_rate),
        loss=SupervisedContrastiveLoss(temperature=FLAGS.temperature),
    )
    start = time.time()
    pretrain_history = pretrain.fit(
        data[0], data[1], batch_size=FLAGS.batch_size, epochs=FLAGS.epochs, verbose=2
    ).history
    pretrain_seconds = time.time() - start
    classifier = build_classifier(encoder, trainable=False)
    history, seconds = fit_and_select(classifier, data, str(work / "classifier.weights.h5"))
    report["supcon"] = {
        "pretrain_seconds": pretrain_seconds,
        "pretrain_loss_per_epoch": pretrain_history["loss"],
        "classifier_seconds": seconds,
        "best_validation_accuracy": max(history["val_accuracy"]),
        "validation_accuracy_per_epoch": history["val_accuracy"],
        "test_accuracy": classifier.evaluate(x_test, y_test, verbose=0)[1],
    }
    Path(FLAGS.output).write_text(json.dumps(report, indent=2))
    logging.info("report: %s", json.dumps(report, indent=2))


if __name__ == "__main__":
    app.run(main)
