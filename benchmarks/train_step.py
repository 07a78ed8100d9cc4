"""Training throughput: SupCon pretraining step versus cross-entropy step, same encoder.

    python benchmarks/train_step.py                       # small CNN, batch 256, appended
    python benchmarks/train_step.py --encoder resnet18 --width 0.25 --batch 128 --no-append

Three compiled Keras training steps on random 32x32x3 images (no augmentation, so that
only the model and the loss differ), timed interleaved in one process:

* `cross-entropy, batch B`: `build_cross_entropy_classifier(encoder)` on B images.
* `cross-entropy, batch 2B`: the same on 2B images: the encoder work of a 2-view step.
* `SupCon, batch B x 2 views`: `SupConModel(encoder)` (projection head 128) with
  `SupervisedContrastiveLoss`: 2B encoder passes plus the loss over N = 2B views.

Throughput is source images per second; the SupCon step's overhead over the encoder is
its time relative to cross-entropy at batch 2B.
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def build_steps(encoder_name, width, batch_size, num_classes, implementation):
    """Returns {name: (train_one_batch, images_per_step)} for the three configurations."""
    import keras
    import numpy as np

    from supcon_tf.losses import SupervisedContrastiveLoss
    from supcon_tf.models import SupConModel, build_cross_entropy_classifier
    from supcon_tf.models.encoders import build_encoder

    rng = np.random.default_rng(0)
    images = rng.random((2 * batch_size, 32, 32, 3)).astype("float32")
    labels = rng.integers(0, num_classes, size=2 * batch_size)

    def encoder():
        return build_encoder(encoder_name, (32, 32, 3), width_multiplier=width)

    steps = {}
    for name, size in [
        ("cross-entropy, batch B", batch_size),
        ("cross-entropy, batch 2B", 2 * batch_size),
    ]:
        classifier = build_cross_entropy_classifier(encoder(), num_classes)
        classifier.compile(
            optimizer=keras.optimizers.SGD(0.01, momentum=0.9),
            loss="sparse_categorical_crossentropy",
            jit_compile=False,
        )
        steps[name] = (
            lambda model=classifier, size=size: model.train_on_batch(images[:size], labels[:size]),
            size,
        )
    supcon = SupConModel(encoder(), num_views=2)
    supcon.compile(
        optimizer=keras.optimizers.SGD(0.01, momentum=0.9),
        loss=SupervisedContrastiveLoss(temperature=0.1, implementation=implementation),
        jit_compile=False,
    )
    steps["SupCon, batch B x 2 views"] = (
        lambda: supcon.train_on_batch(images[:batch_size], labels[:batch_size]),
        batch_size,
    )
    return steps


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--encoder", default="small_cnn", help="supcon_tf.models.encoders name")
    parser.add_argument("--width", type=float, default=1.0, help="encoder width multiplier")
    parser.add_argument("--batch", type=int, default=256, help="source images per step (B)")
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--implementation", default="auto", help="loss kernel")
    parser.add_argument("--steps", type=int, default=5, help="timed steps per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-append", action="store_true", help="only print")
    args = parser.parse_args(argv)

    from benchmarks.common import append_results, markdown_table

    steps = build_steps(args.encoder, args.width, args.batch, args.classes, args.implementation)
    times = {name: [] for name in steps}
    for train_one_batch, _ in steps.values():
        train_one_batch()  # tracing and warm-up
        train_one_batch()
    for _ in range(args.rounds):
        for name, (train_one_batch, _) in steps.items():
            for _ in range(args.steps):
                start = time.perf_counter()
                train_one_batch()
                times[name].append(time.perf_counter() - start)

    reference = statistics.median(times["cross-entropy, batch 2B"])
    rows = []
    for name, (_, images) in steps.items():
        seconds = statistics.median(times[name])
        rows.append(
            [
                name,
                f"{seconds * 1000:.0f} ({min(times[name]) * 1000:.0f}-{max(times[name]) * 1000:.0f})",
                f"{images / seconds:.0f}",
                f"{seconds / reference:.2f}",
            ]
        )
    header = [
        "training step",
        "ms per step, median (min-max)",
        "images/s",
        "time vs cross-entropy at 2B",
    ]
    table = markdown_table(header, rows)
    print(table)
    if not args.no_append:
        notes = (
            f"Encoder `{args.encoder}` (width {args.width}), B = {args.batch} random 32x32x3 "
            f"images, {args.classes} classes, SGD, no augmentation, `jit_compile=False`; "
            f"{args.rounds} interleaved rounds of {args.steps} `train_on_batch` calls after "
            f"two warm-up calls. SupCon loss kernel: `{args.implementation}`."
        )
        append_results(
            "Training throughput: SupCon vs cross-entropy",
            " ".join(sys.argv),
            table + "\n\n" + notes,
        )


if __name__ == "__main__":
    main()
