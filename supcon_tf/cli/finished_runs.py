"""What `supcon-export` and `supcon-embed` share: a finished run in, a new folder out.

`define_run_and_output_flags` defines `--model_dir`, `--output` and `--overwrite`
(both folders required); `finished_run_source` checks the run finished and returns how
its data was read (`supcon_tf.cli.evaluate.run_settings` and `run_source`).
"""

from absl import flags

from supcon_tf.cli.evaluate import run_settings, run_source
from supcon_tf.serving.runs import check_finished_run


def define_run_and_output_flags(flag_values, output_help):
    """Defines `--model_dir`, `--output` (described by `output_help`) and `--overwrite`."""
    flags.DEFINE_string(
        "model_dir",
        None,
        "Folder of a finished supcon-train run (required).",
        flag_values=flag_values,
    )
    flags.DEFINE_string("output", None, output_help, flag_values=flag_values)
    flags.DEFINE_bool("overwrite", False, "Replace what --output holds.", flag_values=flag_values)
    flags.mark_flag_as_required("model_dir", flag_values=flag_values)
    flags.mark_flag_as_required("output", flag_values=flag_values)


def finished_run_source(model_dir):
    """`(settings, source)` of the finished run in `model_dir`; one-line errors otherwise."""
    check_finished_run(model_dir)
    settings = run_settings(model_dir)
    return settings, run_source(model_dir, settings)
