"""Benchmarks of the augmentation policies (opt-in; not part of the test run).

Two questions, one sub-command each:

* `throughput`: images per second of each policy in a batched `tf.data` pipeline
  (two views per image, as SupCon trains), and the share of a training step the
  augmentation costs: the augmentation of one batch (two views, in a `tf.function`)
  and one training step of a small CNN encoder with the SupCon loss on the same
  batch are timed side by side, interleaved, in one process.
* `comparison`: which policy to default to. SupCon pretraining of the same small CNN
  on a CIFAR-10 subset for a few epochs with each policy, then kNN
  accuracy (cosine, k = 20) of the encoder features on held-out images.

Usage (from the repository root):

    python benchmarks/augment.py throughput --batch_size=256 --batches=10
    python benchmarks/augment.py comparison --epochs=15 --train_per_class=500

Both read CIFAR-10 from ../shared/data/cifar10-jpeg.tar.gz when it is there (else
`--data=digits`, scikit-learn's 8x8 digits, upscaled to 32x32) and print a Markdown
table plus a JSON line.
"""

import argparse
import json
import platform
import sys
import tarfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from supcon_tf import augment  # noqa: E402
from supcon_tf.losses import SupervisedContrastiveLoss  # noqa: E402

CIFAR10_ARCHIVE = ROOT.parent / "shared" / "data" / "cifar10-jpeg.tar.gz"
CLASSES = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
]  # alphabetical = the standard CIFAR-10 label order


def load_cifar10(archive, train_per_class, test_per_class):
    """Reads the first N images per class of each split from the JPEG archive."""
    limits = {"train": train_per_class, "test": test_per_class}
    images, labels = defaultdict(list), defaultdict(list)
    with tarfile.open(archive, "r:gz") as tar:
        for member in tar:
            parts = Path(member.name).parts
            if not member.isfile() or len(parts) < 3 or parts[-3] not in limits:
                continue
            split, name = parts[-3], parts[-2]
            label = CLASSES.index(name)
            if sum(1 for value in labels[split] if value == label) >= limits[split]:
                continue
            data = tar.extractfile(member).read()
            images[split].append(tf.io.decode_jpeg(data, channels=3).numpy())
            labels[split].append(label)
    return {
        split: (np.stack(images[split]).astype(np.float32) / 255.0, np.array(labels[split]))
        for split in limits
        if images[split]
    }


def load_digits_32():
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = tf.image.resize(digits.images[..., None] / 16.0, (32, 32)).numpy()
    images = np.repeat(np.clip(images, 0, 1), 3, axis=-1).astype(np.float32)
    rng = np.random.default_rng(0)
    order = rng.permutation(len(images))
    split = int(0.8 * len(images))
    return {
        "train": (images[order[:split]], digits.target[order[:split]]),
        "test": (images[order[split:]], digits.target[order[split:]]),
    }


def load_data(name, train_per_class, test_per_class):
    if name == "cifar10":
        if not CIFAR10_ARCHIVE.is_file():
            raise FileNotFoundError(f"{CIFAR10_ARCHIVE} not found; use --data=digits.")
        return load_cifar10(CIFAR10_ARCHIVE, train_per_class, test_per_class)
    return load_digits_32()


def build_augmenter(name, args):
    return augment.build_augmenter(
        name,
        seed=args.seed,
        magnitude=args.magnitude,
        strength=args.strength,
        min_crop_area=args.min_crop_area,
        autoaugment_policy=args.autoaugment_policy,
    )


def small_encoder(input_shape, feature_dim=256):
    """A small VGG-style CNN encoder (the same for every policy)."""
    inputs = keras.Input(input_shape)
    x = inputs
    for filters in (32, 64, 128):
        x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False)(x)
        x = keras.layers.BatchNormalization()(x)
        x = keras.layers.ReLU()(x)
        x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Conv2D(feature_dim, 3, padding="same", use_bias=False)(x)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.ReLU()(x)
    features = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, features, name="encoder")


class SupConModel(keras.Model):
    """Encoder + projection head trained with the SupCon loss on two views."""

    def __init__(self, encoder, projection_dim=128):
        super().__init__()
        self.encoder = encoder
        self.head = keras.Sequential(
            [
                keras.layers.Dense(encoder.output_shape[-1], activation="relu"),
                keras.layers.Dense(projection_dim),
            ]
        )
        self.loss_function = SupervisedContrastiveLoss(temperature=0.1)

    def embed(self, views, training):
        batch = tf.shape(views)[0]
        flat = tf.reshape(views, tf.concat([[-1], tf.shape(views)[2:]], 0))
        projected = self.head(self.encoder(flat, training=training), training=training)
        return tf.reshape(projected, [batch, 2, -1])

    def train_step(self, data):
        views, labels = data
        with tf.GradientTape() as tape:
            loss = self.loss_function(labels, self.embed(views, training=True))
        variables = self.trainable_variables
        self.optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables, strict=True))
        # Own key: under "loss", fit() reported 0.0 for this model (observed, Keras 3.15).
        return {"supcon_loss": loss}


def two_views(augmenter):
    def views(images, labels):
        first = augmenter(images, training=True)
        second = augmenter(images, training=True)
        return tf.stack([first, second], axis=1), labels

    return views


def view_dataset(images, labels, augmenter, batch_size, shuffle_seed=None):
    dataset = tf.data.Dataset.from_tensor_slices((images, labels))
    if shuffle_seed is not None:
        dataset = dataset.shuffle(len(images), seed=shuffle_seed)
    dataset = dataset.batch(batch_size, drop_remainder=True)
    return dataset.map(two_views(augmenter), num_parallel_calls=tf.data.AUTOTUNE).prefetch(2)


def environment():
    return {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "python": platform.python_version(),
        "cpu_cores": len(__import__("os").sched_getaffinity(0)),
    }


def throughput(args):
    data = load_data(args.data, args.batch_size // 10 + 1, 1)["train"]
    images = np.resize(data[0], (args.batch_size, *data[0].shape[1:]))
    labels = np.resize(data[1], (args.batch_size,))
    model = SupConModel(small_encoder(images.shape[1:]))
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    train_step = tf.function(model.train_step)
    batch_views = tf.stack([images, images], axis=1)
    rows = []
    for name in args.policies:
        augmenter = build_augmenter(name, args)
        dataset = tf.data.Dataset.from_tensors((images, labels)).repeat()
        dataset = dataset.map(two_views(augmenter), num_parallel_calls=tf.data.AUTOTUNE)
        iterator = iter(dataset.prefetch(2))
        for _ in range(2):  # warm-up: tracing
            next(iterator)
        start = time.perf_counter()
        for _ in range(args.batches):
            next(iterator)
        pipeline_seconds = (time.perf_counter() - start) / args.batches

        augment_batch = tf.function(
            lambda batch, augmenter=augmenter: two_views(augmenter)(batch, 0)[0]
        )
        augment_batch(images)
        train_step((batch_views, labels))
        augment_times, step_times = [], []
        for _ in range(args.repeats):  # interleaved, so both see the same machine load
            start = time.perf_counter()
            augment_batch(images).numpy()
            augment_times.append(time.perf_counter() - start)
            start = time.perf_counter()
            float(train_step((batch_views, labels))["supcon_loss"])
            step_times.append(time.perf_counter() - start)
        augment_seconds, step_seconds = np.median(augment_times), np.median(step_times)
        rows.append(
            {
                "policy": name,
                "pipeline_images_per_second": args.batch_size / pipeline_seconds,
                "augment_batch_ms": 1000 * augment_seconds,
                "train_step_ms": 1000 * step_seconds,
                "augment_share_of_step": augment_seconds / (augment_seconds + step_seconds),
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    print(
        "\n| policy | tf.data images/s (2 views) | augment 1 batch (ms) | train step (ms) "
        "| augmentation share |\n|---|---|---|---|---|"
    )
    for row in rows:
        print(
            f"| {row['policy']} | {row['pipeline_images_per_second']:.0f} | "
            f"{row['augment_batch_ms']:.0f} | {row['train_step_ms']:.0f} | "
            f"{100 * row['augment_share_of_step']:.0f}% |"
        )
    print(json.dumps({"question": "throughput", "args": vars(args), **environment(), "rows": rows}))


def knn_accuracy(train_features, train_labels, test_features, test_labels, k=20):
    from sklearn.neighbors import KNeighborsClassifier

    classifier = KNeighborsClassifier(n_neighbors=k, metric="cosine")
    classifier.fit(train_features, train_labels)
    return float(np.mean(classifier.predict(test_features) == test_labels))


def comparison(args):
    data = load_data(args.data, args.train_per_class, args.test_per_class)
    (x_train, y_train), (x_test, y_test) = data["train"], data["test"]
    rows = []
    for name in args.policies:
        keras.utils.set_random_seed(args.seed)
        augmenter = build_augmenter(name, args)
        model = SupConModel(small_encoder(x_train.shape[1:]))
        model.compile(optimizer=keras.optimizers.Adam(args.learning_rate))
        dataset = view_dataset(x_train, y_train, augmenter, args.batch_size, args.seed)
        start = time.perf_counter()
        history = model.fit(dataset, epochs=args.epochs, verbose=0)
        seconds = time.perf_counter() - start
        train_features = model.encoder.predict(x_train, batch_size=512, verbose=0)
        test_features = model.encoder.predict(x_test, batch_size=512, verbose=0)
        accuracy = knn_accuracy(train_features, y_train, test_features, y_test)
        rows.append(
            {
                "policy": name,
                "knn_accuracy": accuracy,
                "final_loss": float(history.history["supcon_loss"][-1]),
                "train_seconds": seconds,
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    print(
        "\n| policy | kNN accuracy (k=20) | final SupCon loss | train time (s) |\n|---|---|---|---|"
    )
    for row in rows:
        print(
            f"| {row['policy']} | {100 * row['knn_accuracy']:.1f}% | "
            f"{row['final_loss']:.3f} | {row['train_seconds']:.0f} |"
        )
    print(json.dumps({"question": "comparison", "args": vars(args), **environment(), "rows": rows}))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("question", choices=("throughput", "comparison"))
    parser.add_argument("--data", choices=("cifar10", "digits"), default="cifar10")
    parser.add_argument("--policies", nargs="+", default=list(augment.AUGMENTATIONS))
    parser.add_argument("--batch_size", type=int, default=256)
    parser.add_argument("--batches", type=int, default=10, help="throughput: timed batches")
    parser.add_argument("--repeats", type=int, default=5, help="throughput: timed steps")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--train_per_class", type=int, default=500)
    parser.add_argument("--test_per_class", type=int, default=100)
    parser.add_argument("--learning_rate", type=float, default=1e-3)
    parser.add_argument("--magnitude", type=float, default=9.0)
    parser.add_argument("--strength", type=float, default=0.5)
    parser.add_argument("--min_crop_area", type=float, default=0.2)
    parser.add_argument("--autoaugment_policy", default="cifar10")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    unknown = set(args.policies) - set(augment.AUGMENTATIONS)
    if unknown:
        parser.error(f"unknown policies {sorted(unknown)}; expected {augment.AUGMENTATIONS}")
    throughput(args) if args.question == "throughput" else comparison(args)


if __name__ == "__main__":
    main()
