"""Streamed input throughput per CPU core: supcon_tf's pipeline against a plain reference.

Three `tf.data` pipelines read the same folder of 256-px JPEGs and yield batches of
2 random-resized 224-px crops (views) per image:

* reference: a plain ImageNet-style pipeline written here (the shape of the TF Model
  Garden's classification input): list the files, shuffle, read and decode in parallel
  with the fused `decode_and_crop_jpeg` on a `sample_distorted_bounding_box` window,
  resize, flip, batch, prefetch, all `AUTOTUNE`;
* device placement (supcon_tf's default): `make_training_stream` with no augmenter: the
  CPU decodes and crops; the flip and colour augmentation run in the model on the device;
* pipeline placement (the old one): the same stream with SimAugment's flip and colour
  distortion applied in `tf.data`.

The three run in interleaved rounds (a round times each pipeline in turn, in a
rotating order, each in a fresh process of its own after a warm-up, so that no
pipeline's threads fill buffers while another is timed), and the table gives the
median and spread (min-max) of the rounds in source images/s (each with its 2 views)
and per core (the rate divided by the cores this process may run on,
`os.sched_getaffinity`).

    python benchmarks/input_pipeline.py                       # generates 1,000 JPEGs
    python benchmarks/input_pipeline.py --root=/data/jpegs    # <root>/train/<class>/*.jpg
    python benchmarks/input_pipeline.py --rounds=1 --seconds=0 --warmup=1 --images=100 --no-append
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import append_results, markdown_table  # noqa: E402
from benchmarks.streaming import write_folder  # noqa: E402

PIPELINES = ("reference", "device placement", "pipeline placement")


def reference_pipeline(root, batch_size, image_size, views, seed=0):
    """A plain ImageNet-style training pipeline on `<root>/train/<class>/*.jpg`."""
    import tensorflow as tf

    files = sorted(str(path) for path in Path(root, "train").glob("*/*.jpg"))
    classes = sorted({Path(path).parent.name for path in files})
    labels = [classes.index(Path(path).parent.name) for path in files]

    def read(path, label):
        return tf.io.read_file(path), label

    def crop(encoded):
        shape = tf.io.extract_jpeg_shape(encoded)
        begin, size, _ = tf.image.sample_distorted_bounding_box(
            shape,
            bounding_boxes=tf.constant([0.0, 0.0, 1.0, 1.0], shape=[1, 1, 4]),
            min_object_covered=0.1,
            aspect_ratio_range=(3 / 4, 4 / 3),
            area_range=(0.08, 1.0),
            max_attempts=10,
            use_image_if_no_bounding_boxes=True,
        )
        window = tf.stack([begin[0], begin[1], size[0], size[1]])
        image = tf.io.decode_and_crop_jpeg(encoded, window, channels=3)
        image = tf.image.resize(image, [image_size, image_size], method="bilinear")
        return tf.image.random_flip_left_right(image) / 255.0

    def decode(encoded, label):
        return tf.stack([crop(encoded) for _ in range(views)]), label

    dataset = tf.data.Dataset.from_tensor_slices((files, labels))
    dataset = dataset.shuffle(len(files), seed=seed, reshuffle_each_iteration=True).repeat()
    dataset = dataset.map(read, num_parallel_calls=tf.data.AUTOTUNE)
    dataset = dataset.map(decode, num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)


def supcon_pipeline(root, batch_size, image_size, views, placement):
    """supcon_tf's streamed training input with the augmentation on `placement`."""
    from supcon_tf.augment import build_augmenter
    from supcon_tf.data import make_training_stream, open_streaming_dataset

    splits = open_streaming_dataset(root, validation_fraction=0)
    augment = None
    if placement == "pipeline placement":
        augment = build_augmenter("simaugment", seed=0, crop=False)
    return make_training_stream(
        splits, batch_size, image_size, views=views, epochs=1000, augment=augment
    )


def worker(root, name, batch_size, image_size, views, seconds, warmup):
    """Times one pipeline in this (fresh) process; prints its images/s as JSON."""
    if name == "reference":
        dataset = reference_pipeline(root, batch_size, image_size, views)
    else:
        dataset = supcon_pipeline(root, batch_size, image_size, views, name)
    iterator = iter(dataset)
    for _ in range(warmup):  # tracing, autotuning and the buffers filling
        next(iterator)
    start, count = time.perf_counter(), 0
    while count < 2 or time.perf_counter() - start < seconds:
        next(iterator)
        count += 1
    print(json.dumps({"rate": count * batch_size / (time.perf_counter() - start)}))


def measure(root, batch_size, image_size, views, rounds, seconds, warmup):
    """`{pipeline: [images/s of each round]}`: each round times every pipeline in a fresh
    process of its own, in a rotating order (no pipeline's threads run beside another's)."""
    rates = {name: [] for name in PIPELINES}
    for round_index in range(rounds):
        order = PIPELINES[round_index % 3 :] + PIPELINES[: round_index % 3]
        for name in order:
            command = [sys.executable, __file__, "--worker", name, "--root", root]
            command += [f"--batch_size={batch_size}", f"--image_size={image_size}"]
            command += [f"--views={views}", f"--seconds={seconds}", f"--warmup={warmup}"]
            completed = subprocess.run(command, capture_output=True, text=True, check=False)
            if completed.returncode:
                raise RuntimeError(f"{name} failed:\n{completed.stderr[-3000:]}")
            rates[name].append(json.loads(completed.stdout.strip().splitlines()[-1])["rate"])
    return rates


def summary_rows(rates, cores):
    """Table rows: pipeline, images/s median (min-max), per core, ratio to the reference."""
    reference = statistics.median(rates["reference"])
    rows = []
    for name in PIPELINES:
        median = statistics.median(rates[name])
        rows.append(
            [
                name,
                f"{median:.0f} ({min(rates[name]):.0f}-{max(rates[name]):.0f})",
                f"{median / cores:.0f} ({min(rates[name]) / cores:.0f}-"
                f"{max(rates[name]) / cores:.0f})",
                f"{median / reference:.2f}x",
            ]
        )
    return rows


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", help="a folder <root>/train/<class>/*.jpg (default: generated)")
    parser.add_argument("--images", type=int, default=1000, help="generated training JPEGs")
    parser.add_argument("--image_size", type=int, default=224)
    parser.add_argument("--views", type=int, default=2)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=8.0, help="least timed per round")
    parser.add_argument("--warmup", type=int, default=10, help="untimed batches before each")
    parser.add_argument("--no-append", action="store_true")
    parser.add_argument("--worker", choices=PIPELINES, help=argparse.SUPPRESS)
    arguments = parser.parse_args(argv)
    if arguments.worker:
        return worker(
            arguments.root,
            arguments.worker,
            arguments.batch_size,
            arguments.image_size,
            arguments.views,
            arguments.seconds,
            arguments.warmup,
        )
    cores = len(os.sched_getaffinity(0))
    with tempfile.TemporaryDirectory() as scratch:
        root = arguments.root or write_folder(os.path.join(scratch, "jpegs"), arguments.images)
        rates = measure(
            root,
            arguments.batch_size,
            arguments.image_size,
            arguments.views,
            arguments.rounds,
            arguments.seconds,
            arguments.warmup,
        )
    body = (
        f"Training input at {arguments.image_size}-px crops, {arguments.views} views per "
        f"image, batch {arguments.batch_size}, from 256-px JPEGs; {arguments.rounds} "
        f"interleaved rounds, each timing every pipeline in a fresh process for at least "
        f"{arguments.seconds:g} s after {arguments.warmup} untimed batches; {cores} cores. "
        "Median (min-max) over the rounds:\n\n"
        + markdown_table(
            ["pipeline", "images/s", "images/s per core", "vs reference"],
            summary_rows(rates, cores),
        )
        + "\n\nreference: a plain ImageNet-style `tf.data` pipeline (fused decode-and-crop, "
        "resize, flip on the CPU). device placement: supcon_tf's stream as it trains by "
        "default (decode and crop on the CPU; flip and colour augmentation in the model). "
        "pipeline placement: the same with SimAugment's flip and colour distortion in "
        "`tf.data` (`augment_placement='pipeline'`)."
    )
    print(body)
    if not arguments.no_append:
        command = "python benchmarks/input_pipeline.py " + " ".join(argv)
        append_results("Streamed input per core", command.strip(), body)


if __name__ == "__main__":
    main(sys.argv[1:])
