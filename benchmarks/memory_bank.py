"""Does a label-aware memory bank help SupCon at small batches? kNN accuracy by batch size.

    tar -xzf ../shared/data/cifar10-jpeg.tar.gz -C /tmp/cifar10   # or a subset of it
    python benchmarks/memory_bank.py --data_dir=/tmp/cifar10_subset --batch_sizes 64 256 1024 \\
        --memory_size 1024 --epochs 8 --seeds 0 1 2

For every seed, batch size and bank setting (`memory_size=0` and `--memory_size`),
`SupConModel` (small CNN, 2 views, `--augment` in the model) is pretrained for
`--epochs` epochs with `SupervisedContrastiveLoss(temperature=0.1)` and Adam, then
scored by weighted kNN (k = 200, cosine, temperature 0.1) of its encoder features:
the training images are the memory, the test images the queries. Every configuration
gets the same epochs (so larger batches take fewer steps), the same seeds and the same
data; the table gives mean and (min-max) over seeds. All runs share one process (one
TensorFlow start-up); each model is built afresh from its seed.
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def pretrain_and_score(splits, batch_size, memory_size, epochs, seed, arguments):
    """kNN accuracy (test) of a SupCon encoder pretrained with the given batch and bank."""
    import keras

    from supcon_tf.augment import build_augmenter
    from supcon_tf.evaluation import knn_accuracy
    from supcon_tf.losses import SupervisedContrastiveLoss
    from supcon_tf.models import SupConModel
    from supcon_tf.models.encoders import build_encoder

    keras.utils.set_random_seed(seed)
    encoder = build_encoder(
        "small_cnn", splits.x_train.shape[1:], width_multiplier=arguments.width_multiplier
    )
    model = SupConModel(
        encoder,
        augmenter=build_augmenter(arguments.augment, seed=seed),
        memory_size=memory_size,
    )
    model.compile(
        optimizer=keras.optimizers.Adam(arguments.learning_rate),
        loss=SupervisedContrastiveLoss(temperature=0.1),
    )
    start = time.perf_counter()
    model.fit(
        splits.x_train,
        splits.y_train,
        batch_size=batch_size,
        epochs=epochs,
        shuffle=True,
        verbose=0,
    )
    seconds = time.perf_counter() - start
    train_features = encoder.predict(splits.x_train, batch_size=512, verbose=0)
    test_features = encoder.predict(splits.x_test, batch_size=512, verbose=0)
    accuracy = knn_accuracy(train_features, splits.y_train, test_features, splits.y_test)
    return {"knn_accuracy": float(accuracy), "train_seconds": seconds}


def table(rows):
    """Markdown: kNN accuracy mean (min-max) per batch size, without and with the bank."""
    memory_sizes = sorted({row["memory_size"] for row in rows})
    header = " | ".join(f"memory_size={size}" for size in memory_sizes)
    lines = [f"| batch | {header} |", "|---|" + "---|" * len(memory_sizes)]
    for batch in sorted({row["batch_size"] for row in rows}):
        cells = []
        for size in memory_sizes:
            values = np.array(
                [
                    row["knn_accuracy"]
                    for row in rows
                    if row["batch_size"] == batch and row["memory_size"] == size
                ]
            )
            cells.append(
                f"{values.mean():.4f} ({values.min():.4f}-{values.max():.4f}), n={len(values)}"
            )
        lines.append(f"| {batch} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data_dir", required=True, help="Image folder (train/, test/).")
    parser.add_argument("--batch_sizes", type=int, nargs="+", default=[64, 256, 1024])
    parser.add_argument("--memory_size", type=int, default=1024)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--learning_rate", type=float, default=1e-3)
    parser.add_argument("--width_multiplier", type=float, default=0.5)
    parser.add_argument("--augment", default="simple")
    parser.add_argument("--output", default="runs/memory_bank/results.json")
    arguments = parser.parse_args()

    from supcon_tf.data import load_dataset

    splits = load_dataset(arguments.data_dir, validation_fraction=0)
    rows = []
    for seed in arguments.seeds:
        for batch_size in arguments.batch_sizes:
            for memory_size in (0, arguments.memory_size):
                result = pretrain_and_score(
                    splits, batch_size, memory_size, arguments.epochs, seed, arguments
                )
                rows.append(
                    {"seed": seed, "batch_size": batch_size, "memory_size": memory_size, **result}
                )
                print(json.dumps(rows[-1]), flush=True)
    output = Path(arguments.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(rows, indent=2) + "\n")
    print(table(rows))


if __name__ == "__main__":
    main()
