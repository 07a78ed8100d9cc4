"""`supcon-prepare`: converts an image folder into TFRecord shards for streaming.

The shards follow the TF Model Garden's ImageNet convention (`image/encoded`,
`image/class/label`; `train-00000-of-01024`, `validation-00000-of-00128`) and come with a
`dataset_info.json` (class names, counts), so that `supcon-train --dataset=<output>`
streams them. A progress bar shows each split's conversion.

Usage (also `python -m supcon_tf.cli.prepare`):

    supcon-prepare --input=/data/imagenet --output=gs://bucket/imagenet-tfrecords \
        --num_shards=1024
"""

from absl import app, flags, logging

from supcon_tf.data.tfrecords import write_shards

FLAGS = flags.FLAGS


def define_flags(flag_values=flags.FLAGS):
    """Defines the flags (once) on `flag_values`; called by `run`, not at import."""
    if "num_shards" in flag_values:
        return
    flags.DEFINE_string(
        "input",
        None,
        "Image folder with train/<class>/ and test/<class>/ images (JPEG, PNG, BMP, GIF).",
        flag_values=flag_values,
    )
    flags.DEFINE_string(
        "output", None, "Folder for the shards and dataset_info.json.", flag_values=flag_values
    )
    flags.DEFINE_integer(
        "num_shards",
        16,
        "Training shards (the evaluation split gets num_shards / 8). Use at least one per "
        "input pipeline (worker or TPU host); ~100-200 MB per shard reads well.",
        lower_bound=1,
        flag_values=flag_values,
    )
    flags.DEFINE_integer("seed", 0, "Seed of the shuffle before sharding.", flag_values=flag_values)
    flags.DEFINE_bool(
        "skip_corrupt_images",
        False,
        "Leave out images that do not decode (listed in dataset_info.json) instead of stopping.",
        flag_values=flag_values,
    )
    flags.mark_flags_as_required(["input", "output"], flag_values=flag_values)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
    info = write_shards(
        FLAGS.input,
        FLAGS.output,
        num_shards=FLAGS.num_shards,
        seed=FLAGS.seed,
        skip_corrupt_images=FLAGS.skip_corrupt_images,
    )
    logging.info("Wrote %s: %s", FLAGS.output, info["num_examples"])
    if info["skipped_images"]:
        logging.warning("Left out %d unreadable images.", len(info["skipped_images"]))
    print(
        f"Wrote {info['num_examples']['train']} training and {info['num_examples']['test']} "
        f"evaluation images of {len(info['class_names'])} classes to {FLAGS.output}"
    )


def run():
    """Console-script entry point."""
    define_flags()
    app.run(main)


if __name__ == "__main__":
    run()
