"""`supcon-export`: a finished `supcon-train` run as one SavedModel for serving.

Usage (also `python -m supcon_tf.cli.export`):

    supcon-export --model_dir=runs/supcon --output=exports/supcon
    supcon-export --model_dir=runs/imagenet --output=exports/imagenet --gallery=run --tflite

Writes `<output>/saved_model/` (signatures `embed`, `classify` and, with `--gallery`,
`search`; raw uint8 images of any size, or float32 in [0, 1] through the `*_float`
signatures; the run's resize, crop and scaling are inside the graph), `export.json`
(signatures, input spec, class names, source run, measured agreement) and, with
`--tflite`, `encoder.tflite`. It loads with `tf.saved_model.load`, without Keras or
supcon_tf. The run is read as `supcon-eval` reads it (flags.json, config.json).

A mistake prints one line, `supcon-export: error: <what is wrong>; <what to do>`
(`--traceback` shows the traceback); exit status 2 for a wrong flag, 1 for missing or
unfitting data.
"""

from absl import flags

from supcon_tf.cli.console import entry_point
from supcon_tf.cli.finished_runs import define_run_and_output_flags, finished_run_source
from supcon_tf.serving.export import export_run
from supcon_tf.serving.images import SPLITS

# The flags by group, in the order `--help` lists them.
FLAG_GROUPS = {
    "run": ("model_dir",),
    "search": ("gallery", "gallery_split", "top_k", "batch_size"),
    "output": ("output", "overwrite", "tflite"),
}


def define_flags(flag_values=flags.FLAGS):
    """Defines the `supcon-export` flags (once) on `flag_values`."""
    if "gallery_split" in flag_values:
        return
    define_run_and_output_flags(
        flag_values,
        "Export folder (required), new or empty: saved_model/, export.json, encoder.tflite.",
    )
    flags.DEFINE_bool(
        "tflite",
        False,
        "Also write encoder.tflite (preprocessed images to embeddings) and measure its "
        "agreement with the SavedModel.",
        flag_values=flag_values,
    )
    flags.DEFINE_string(
        "gallery",
        None,
        "Dataset embedded into a `search` signature (as supcon-train --dataset takes it), "
        "or `run` for the run's own dataset; default: no search.",
        flag_values=flag_values,
    )
    flags.DEFINE_enum(
        "gallery_split", "train", SPLITS, "Split of --gallery to embed.", flag_values=flag_values
    )
    flags.DEFINE_integer(
        "top_k", 10, "Results per query of `search`.", lower_bound=1, flag_values=flag_values
    )
    flags.DEFINE_integer(
        "batch_size",
        256,
        "Images per forward pass while embedding the gallery.",
        lower_bound=1,
        flag_values=flag_values,
    )


def main(argv):
    flag_values = flags.FLAGS
    model_dir = flag_values.model_dir
    settings, source = finished_run_source(model_dir)
    gallery = settings["dataset"] if flag_values.gallery == "run" else flag_values.gallery
    record = export_run(
        model_dir,
        source,
        flag_values.output,
        gallery=gallery,
        gallery_split=flag_values.gallery_split,
        top_k=flag_values.top_k,
        tflite=flag_values.tflite,
        overwrite=flag_values.overwrite,
        batch_size=flag_values.batch_size,
    )
    agreement = record["agreement"]
    print(f"SavedModel: {flag_values.output}/saved_model ({', '.join(record['signatures'])})")
    print(f"Reloaded vs in-process, largest |difference|: {agreement['saved_model']}")
    if "tflite" in agreement:
        print(
            f"TFLite: {flag_values.output}/encoder.tflite, largest |difference| of the "
            f"embeddings to the SavedModel: {agreement['tflite']['embeddings']:.3g}"
        )
    if record["search"]:
        print(f"Search gallery: {record['search']['size']} images of {gallery}")
    print(f"Details: {flag_values.output}/export.json")


run = entry_point(main, "supcon-export", __doc__, FLAG_GROUPS, define_flags)


if __name__ == "__main__":
    run()
