"""Does supcon-train's training loop keep pace with a plain Keras script on the same network?

Times the cross-entropy arm of `--preset=keras_example_2020` (the first Keras example's
CNN and head, Adam 1e-3, batch 256, no augmentation) as `supcon-train` trains it
(`report.json` timings: `baseline_seconds`, which include building, checkpoints every
epoch, saving and scoring the test split) against a hand-written Keras script that
builds the same network, fits it for the same epochs on the same arrays and evaluates
the test split. Each measurement runs in a fresh process; the two alternate, round
after round, and the table gives each side's median and the per-round ratio.

    tar -xzf ../shared/data/cifar10-jpeg.tar.gz -C /tmp/cifar10
    python benchmarks/train_loop.py --data_dir=/tmp/cifar10 --epochs=2 --rounds=3
"""

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time

from common import append_results, markdown_table, run_child

PRESET = "keras_example_2020"


def plain(data_dir, epochs, batch_size):
    """The hand-written script: the example's network, `fit`, `evaluate`."""
    import keras

    from supcon_tf.data import load_dataset

    splits = load_dataset(data_dir, validation_fraction=0.0)
    keras.utils.set_random_seed(0)
    start = time.perf_counter()
    model = keras.Sequential(
        [
            keras.Input(splits.x_train.shape[1:]),
            keras.layers.Conv2D(32, 3, activation="relu"),
            keras.layers.MaxPooling2D(2),
            keras.layers.Conv2D(64, 3, activation="relu"),
            keras.layers.MaxPooling2D(2),
            keras.layers.Flatten(),
            keras.layers.Dense(128),
            keras.layers.Dropout(0.5),
            keras.layers.Dense(64),
            keras.layers.Dropout(0.5),
            keras.layers.Dense(10),
        ]
    )
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    model.fit(splits.x_train, splits.y_train, batch_size=batch_size, epochs=epochs, verbose=0)
    _, accuracy = model.evaluate(splits.x_test, splits.y_test, batch_size=batch_size, verbose=0)
    return {"seconds": time.perf_counter() - start, "test_accuracy": accuracy}


def toolkit(data_dir, epochs, batch_size):
    """The same arm through `run_experiment` with the preset (1 + 1 SupCon epochs first)."""
    from supcon_tf.experiment import PRESETS, ExperimentConfig, run_experiment

    folder = tempfile.mkdtemp()
    try:
        flags = {
            **PRESETS[PRESET]["flags"],
            "dataset": data_dir,
            "pretrain_epochs": 1,
            "classifier_epochs": 1,
            "baseline_epochs": epochs,
            "batch_size": batch_size,
            "classifier_batch_size": batch_size,
        }
        config = ExperimentConfig(
            **flags, preset=PRESET, model_dir=folder, verbose=0, evaluate=False, knn_monitor=False
        )
        report = run_experiment(config)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return {
        "seconds": report["timings"]["baseline_seconds"],
        "test_accuracy": report["cross_entropy"]["test_accuracy"],
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", nargs="?", choices=("plain", "toolkit"), help=argparse.SUPPRESS)
    parser.add_argument("--data_dir", required=True, help="CIFAR-10 folder (train/, test/).")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch_size", type=int, default=256, help="The preset's is 256.")
    parser.add_argument("--no-append", action="store_true", help="Only print the table.")
    arguments = parser.parse_args()
    if arguments.mode:
        child = plain if arguments.mode == "plain" else toolkit
        print(json.dumps(child(arguments.data_dir, arguments.epochs, arguments.batch_size)))
        return
    times = {"plain": [], "toolkit": []}
    accuracies = {"plain": [], "toolkit": []}
    for _ in range(arguments.rounds):
        for mode in times:
            result = run_child(
                [
                    __file__,
                    mode,
                    f"--data_dir={arguments.data_dir}",
                    f"--epochs={arguments.epochs}",
                    f"--batch_size={arguments.batch_size}",
                ]
            )
            times[mode].append(result["seconds"])
            accuracies[mode].append(result["test_accuracy"])
            print(f"{mode}: {result['seconds']:.1f} s", file=sys.stderr, flush=True)
    ratios = [t / p for t, p in zip(times["toolkit"], times["plain"], strict=True)]
    rows = [
        [
            name,
            f"{statistics.median(times[mode]):.1f} ({min(times[mode]):.1f}-{max(times[mode]):.1f})",
            f"{statistics.median(accuracies[mode]):.4f}",
        ]
        for name, mode in (
            ("plain Keras script", "plain"),
            ("supcon-train (cross-entropy arm)", "toolkit"),
        )
    ]
    body = (
        markdown_table(
            [
                f"{arguments.epochs} epochs, batch {arguments.batch_size}",
                "seconds: median (min-max)",
                "test top-1",
            ],
            rows,
        )
        + f"\n\nsupcon-train / plain, per round: {', '.join(f'{r:.3f}' for r in ratios)} "
        f"(median {statistics.median(ratios):.3f}); {arguments.rounds} rounds, fresh processes, "
        "alternating."
    )
    print(body)
    if not arguments.no_append:
        append_results(
            "The training loop against a plain Keras script", " ".join(["python", *sys.argv]), body
        )


if __name__ == "__main__":
    main()
