"""`supcon-embed`: the embeddings of a dataset by a finished `supcon-train` run, on disk.

Usage (also `python -m supcon_tf.cli.embed`):

    supcon-embed --model_dir=runs/supcon --output=embeddings/test
    supcon-embed --model_dir=runs/imagenet --data=/data/products --split=train --output=emb

Reads one split of `--data` (default: the run's dataset) as the run read images at
evaluation (its image size and central crop) and writes into `--output`:
`embeddings.npy` (float32 [N, D], the L2-normalised encoder output), `labels.npy`
(int64 [N], indices into the class names), `names.json` (file paths; indices in the
split for TFRecord shards and arrays) and `embeddings.json` (class names, counts).
Batches stream through the encoder into a memory-mapped file, with a progress bar on
a terminal.

A mistake prints one line, `supcon-embed: error: <what is wrong>; <what to do>`
(`--traceback` shows the traceback); exit status 2 for a wrong flag, 1 for missing or
unfitting data.
"""

from absl import flags

from supcon_tf.cli.console import entry_point
from supcon_tf.cli.finished_runs import define_run_and_output_flags, finished_run_source
from supcon_tf.serving.embed import embed_run
from supcon_tf.serving.images import SPLITS

# The flags by group, in the order `--help` lists them.
FLAG_GROUPS = {
    "run": ("model_dir",),
    "data": ("data", "split", "batch_size"),
    "output": ("output", "overwrite"),
}


def define_flags(flag_values=flags.FLAGS):
    """Defines the `supcon-embed` flags (once) on `flag_values`."""
    if "split" in flag_values:
        return
    define_run_and_output_flags(
        flag_values,
        "Folder (required), new or empty: embeddings.npy, labels.npy, names.json, embeddings.json.",
    )
    flags.DEFINE_string(
        "data",
        None,
        "Dataset to embed, as supcon-train --dataset takes it: an image folder, TFRecord "
        "shards, tfds:<name>, .npz or a named dataset (default: the run's).",
        flag_values=flag_values,
    )
    flags.DEFINE_enum(
        "split",
        "test",
        SPLITS,
        "Split to embed (train: every training image).",
        flag_values=flag_values,
    )
    flags.DEFINE_integer(
        "batch_size", 256, "Images per forward pass.", lower_bound=1, flag_values=flag_values
    )


def main(argv):
    flag_values = flags.FLAGS
    model_dir = flag_values.model_dir
    _, source = finished_run_source(model_dir)
    summary = embed_run(
        model_dir,
        source,
        flag_values.data,
        flag_values.split,
        flag_values.output,
        overwrite=flag_values.overwrite,
        batch_size=flag_values.batch_size,
    )
    print(
        f"{summary['count']} embeddings of dimension {summary['dimension']} "
        f"({summary['data']}, {summary['split']}) in {flag_values.output} "
        f"({summary['seconds']:.1f} s)"
    )


run = entry_point(main, "supcon-embed", __doc__, FLAG_GROUPS, define_flags)


if __name__ == "__main__":
    run()
