"""`supcon-prepare`: converts an image folder into TFRecord shards for streaming.

The shards follow the TF Model Garden's ImageNet convention (`image/encoded`,
`image/class/label`): the images of `<input>/train/` go to `train-00000-of-01024`, ...,
those of `<input>/test/` to `test-00000-of-00128`, ..., with a `dataset_info.json`
(class names, counts), so that `supcon-train --dataset=<output>` streams them. A
progress bar shows each split's conversion.

Usage (also `python -m supcon_tf.cli.prepare`):

    supcon-prepare --input=/data/imagenet --output=gs://bucket/imagenet-tfrecords \
        --num_shards=1024

`--output` must be empty or new: `--overwrite` replaces the shards already there, and
only once the new set is complete (a killed run leaves the old set or the new one; see
`supcon_tf.data.tfrecords.replace_shards` for object stores). A mistake prints one
line, `supcon-prepare: error: <what is wrong>; <what to do>` (`--traceback` shows the
traceback).
"""

from absl import flags, logging

from supcon_tf.cli.console import entry_point
from supcon_tf.data.tfrecords import write_shards

FLAGS = flags.FLAGS

# The flags by group, in the order `--help` lists them.
FLAG_GROUPS = {
    "data": ("input", "skip_corrupt_images", "seed"),
    "output": ("output", "num_shards", "overwrite"),
}


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
        "Training shards (the test split gets num_shards / 8). Use at least one per "
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
    flags.DEFINE_bool(
        "overwrite",
        False,
        "Replace the shards already in --output (only once the new set is complete).",
        flag_values=flag_values,
    )
    flags.mark_flags_as_required(["input", "output"], flag_values=flag_values)


def main(argv):
    info = write_shards(
        FLAGS.input,
        FLAGS.output,
        num_shards=FLAGS.num_shards,
        seed=FLAGS.seed,
        skip_corrupt_images=FLAGS.skip_corrupt_images,
        overwrite=FLAGS.overwrite,
    )
    if info["skipped_images"]:
        logging.warning("Left out %d unreadable images.", len(info["skipped_images"]))
    print(
        f"Wrote {info['num_examples']['train']} train and {info['num_examples']['test']} "
        f"test images of {len(info['class_names'])} classes to {FLAGS.output} "
        f"(train-*: {info['num_shards']['train']} shards, "
        f"test-*: {info['num_shards']['test']})"
    )


run = entry_point(main, "supcon-prepare", __doc__, FLAG_GROUPS, define_flags)


if __name__ == "__main__":
    run()
