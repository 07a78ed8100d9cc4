"""The settings a `supcon-train` run starts with, in one screen, each with its source.

The settings that shape every run are always listed; any other one only when the
command line or the preset changed it. Each line says where the value came from:
`flag` (the command line), `preset <name>` or `default`.

Example:

>>> from absl import flags
>>> from supcon_tf.cli.flags import define_flags
>>> flag_values = flags.FlagValues()
>>> define_flags(flag_values)
>>> _ = flag_values(["supcon-train", "--batch_size=32", "--temperature=0.5"])
>>> print(settings_summary(flag_values))  # doctest: +ELLIPSIS, +NORMALIZE_WHITESPACE
Settings (source: flag = command line, preset, default):
  dataset digits default
  ...
  batch_size 32 flag
  ...
  temperature 0.5 flag
  ...
"""

# Always listed, in this order; other flags only when they are not at their default.
KEY_SETTINGS = (
    "dataset",
    "data_dir",
    "image_size",
    "split",
    "model_dir",
    "method",
    "loss",
    "encoder",
    "views",
    "batch_size",
    "pretrain_epochs",
    "classifier_batch_size",
    "classifier_epochs",
    "baseline",
    "baseline_epochs",
    "optimizer",
    "learning_rate",
    "temperature",
    "augment",
    "strategy",
    "seed",
)

# What an unset (None) flag means, given the other flags.
_UNSET_MEANS = {
    "classifier_batch_size": lambda values: f"{values['batch_size']} (= --batch_size)",
    "baseline_epochs": lambda values: (
        f"{values['pretrain_epochs'] + values['classifier_epochs']} "
        "(= pretrain + classifier epochs)"
    ),
}


def settings_summary(flag_values, preset_flags=()):
    """The text: a line per setting, `name  value  source`.

    Args:
        flag_values: the parsed `supcon-train` flags (after the preset was applied).
        preset_flags: the names of the flags that `--preset` set.
    """
    from supcon_tf.cli.flags import flag_values_dict

    values = flag_values_dict(flag_values)
    preset = flag_values["preset"].value if "preset" in flag_values else None
    shown = [name for name in KEY_SETTINGS if name in values]
    shown += [
        name
        for name in values
        if name not in shown and (flag_values[name].present or name in preset_flags)
    ]
    heading = "Settings (source: flag = command line, preset, default):"
    if preset:
        heading = f"Settings of --preset={preset} (source: flag = command line, preset, default):"
    rows = [
        (name, _shown_value(name, values), _source(name, flag_values, preset_flags, preset))
        for name in shown
        if name != "preset"
    ]
    name_width = max(len(name) for name, _, _ in rows)
    value_width = min(24, max(len(value) for _, value, _ in rows))
    lines = [heading]
    lines += [
        f"  {name:<{name_width}}  {value:<{value_width}}  {source}" for name, value, source in rows
    ]
    return "\n".join(lines)


def _source(name, flag_values, preset_flags, preset):
    if flag_values[name].present:
        return "flag"
    return f"preset {preset}" if name in preset_flags else "default"


def _shown_value(name, values):
    value = values[name]
    if value is None:
        return _UNSET_MEANS[name](values) if name in _UNSET_MEANS else "not set"
    return str(value)
