"""Streaming input: peak memory against dataset size, and input throughput at 224 px.

Two questions, each configuration in a fresh child process (its own peak RSS):

1. memory: a streamed SupCon pretraining epoch (small CNN, 64-px crops, 2 views,
   batch 64) on generated folders of 2,000 and 8,000 JPEGs of 256x256 px. Streaming
   holds only bounded buffers, so the peak RSS should not follow the dataset size.
2. throughput: images/s of `make_training_stream` at 224-px crops (2 views, SimAugment's
   colour distortion and flip applied in the pipeline: `augment_placement="pipeline"`,
   not the default), next to the images/s that ResNet-50 (ImageNet stem, 224 px, 2
   views) trains at on the same machine. `benchmarks/input_pipeline.py` compares both
   placements per core against a plain reference pipeline.

    python benchmarks/streaming.py                 # both, appends to results/streaming.md
    python benchmarks/streaming.py --no-append --sizes 200 400 --batches 5
"""

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import append_results, markdown_table, run_child  # noqa: E402

NUM_CLASSES = 10


def write_folder(root, num_train, side=256, seed=0):
    """`num_train` training and `num_train // 10` test JPEGs of noise-textured colours."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (64, side, side, 3), dtype=np.uint8)
    for split, count in (("train", num_train), ("test", max(num_train // 10, NUM_CLASSES))):
        for index in range(count):
            label = index % NUM_CLASSES
            folder = Path(root, split, f"class_{label}")
            folder.mkdir(parents=True, exist_ok=True)
            image = base[index % 64] // 2 + np.uint8(12 * label)
            Image.fromarray(image).save(folder / f"{index:05d}.jpg", quality=90)
    return root


def child_memory(root):
    import keras
    import numpy as np

    from supcon_tf.augment import build_augmenter
    from supcon_tf.data import make_training_stream, open_streaming_dataset
    from supcon_tf.losses import SupervisedContrastiveLoss
    from supcon_tf.models import SupConModel
    from supcon_tf.models.encoders import build_encoder

    splits = open_streaming_dataset(root, validation_fraction=0)
    model = SupConModel(
        build_encoder("small_cnn", (64, 64, 3), width_multiplier=0.5),
        augmenter=build_augmenter("simaugment", seed=0, crop=False),
    )
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=SupervisedContrastiveLoss())
    model(np.zeros((2, 2, 64, 64, 3), "float32"))
    steps = splits.train.num_examples // 64
    start = time.perf_counter()
    model.fit(make_training_stream(splits, 64, 64, views=2), steps_per_epoch=steps, verbose=0)
    seconds = time.perf_counter() - start
    print(json.dumps({"images": splits.train.num_examples, "steps": steps, "seconds": seconds}))


def child_throughput(root, batches):
    import keras
    import numpy as np
    import tensorflow as tf

    from supcon_tf.augment import build_augmenter
    from supcon_tf.data import make_training_stream, open_streaming_dataset
    from supcon_tf.losses import SupervisedContrastiveLoss
    from supcon_tf.models import SupConModel
    from supcon_tf.models.encoders import build_encoder

    splits = open_streaming_dataset(root, validation_fraction=0)
    augment = build_augmenter("simaugment", seed=0, crop=False)
    stream = make_training_stream(splits, 32, 224, views=2, epochs=50, augment=augment)
    iterator = iter(stream)
    for _ in range(3):  # warm-up: tracing, autotuning
        next(iterator)
    start = time.perf_counter()
    for _ in range(batches):
        next(iterator)
    pipeline = batches * 32 / (time.perf_counter() - start)

    model = SupConModel(build_encoder("resnet50", (224, 224, 3), stem="imagenet"))
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss=SupervisedContrastiveLoss())
    images = tf.random.uniform((4, 2, 224, 224, 3))
    labels = tf.constant(np.arange(4) % 2)
    model(images[:2])
    step = tf.function(model.train_step)
    step((images, labels))
    start = time.perf_counter()
    for _ in range(2):
        step((images, labels))
    resnet = 2 * 4 / (time.perf_counter() - start)
    print(
        json.dumps({"pipeline_images_per_second": pipeline, "resnet50_images_per_second": resnet})
    )


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "mode", nargs="?", default="all", choices=["all", "memory-child", "throughput-child"]
    )
    parser.add_argument("--root")
    parser.add_argument("--sizes", type=int, nargs="+", default=[2000, 8000])
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--no-append", action="store_true")
    arguments = parser.parse_args(argv)
    if arguments.mode == "memory-child":
        return child_memory(arguments.root)
    if arguments.mode == "throughput-child":
        return child_throughput(arguments.root, arguments.batches)
    script = "benchmarks/streaming.py"
    with tempfile.TemporaryDirectory() as scratch:
        memory_rows = []
        for size in arguments.sizes:
            root = write_folder(os.path.join(scratch, f"images_{size}"), size)
            report = run_child([script, "memory-child", f"--root={root}"])
            memory_rows.append(
                [
                    f"{size:,}",
                    str(report["steps"]),
                    f"{report['seconds']:.0f} s",
                    f"{report['peak_rss_mb']:.0f} MB",
                ]
            )
        root = os.path.join(scratch, f"images_{arguments.sizes[0]}")
        speeds = run_child(
            [script, "throughput-child", f"--root={root}", f"--batches={arguments.batches}"]
        )
    first, last = (float(row[3].split()[0]) for row in (memory_rows[0], memory_rows[-1]))
    body = (
        "Peak RSS of one streamed pretraining epoch (SupConModel, small_cnn width 0.5, 64-px "
        "random-resized crops, 2 views, batch 64, SimAugment without its crop on the model) "
        "on generated folders of 256x256 JPEGs:\n\n"
        + markdown_table(["training images", "steps", "epoch wall time", "peak RSS"], memory_rows)
        + f"\n\nThe largest dataset's peak RSS is {100 * (last - first) / first:+.1f} % of the "
        "smallest's.\n\n"
        "Input throughput at 224-px crops (2 views per image, SimAugment's colour distortion "
        f"and flip in the pipeline, batch 32, {arguments.batches} batches after 3 warm-up "
        "batches), next to the images/s a ResNet-50 (ImageNet stem, 224 px, 2 views, batch 4, "
        "SGD, 2 timed steps after one warm-up) train step consumes on this machine:\n\n"
        + markdown_table(
            ["input pipeline (images/s)", "ResNet-50 training (images/s)"],
            [
                [
                    f"{speeds['pipeline_images_per_second']:.1f}",
                    f"{speeds['resnet50_images_per_second']:.2f}",
                ]
            ],
        )
    )
    command = "python benchmarks/streaming.py " + " ".join(argv)
    print(body)
    if not arguments.no_append:
        append_results("Streaming input: memory and throughput", command.strip(), body)


if __name__ == "__main__":
    main(sys.argv[1:])
