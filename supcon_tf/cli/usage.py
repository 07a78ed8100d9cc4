"""`--help` for the supcon_tf commands: this project's flags by group, with defaults.

absl's own `--help` lists only the flags of the main module; the commands define
theirs in `supcon_tf.cli`, so it would list none of them. `app.run(main,
flags_parser=grouped_help_parser(description, groups))` answers `--help`, `-h`,
`-?` and `--helpshort` with the command's description and its flags, group by group,
and exits 0; `--helpfull` lists them together with absl's and TensorFlow's (exit 0).

Example:

>>> from absl import flags
>>> flag_values = flags.FlagValues()
>>> _ = flags.DEFINE_integer("batch_size", 64, "Images per step.", flag_values=flag_values)
>>> print(format_grouped_help(flag_values, {"optimisation": ["batch_size"]}, "Trains."))
Trains.
<BLANKLINE>
Optimisation flags:
  --batch_size: Images per step.
    (default: 64)
<BLANKLINE>
--helpfull lists these flags together with absl's and TensorFlow's.
"""

import sys
import textwrap

from absl import flags

HELP_ARGUMENTS = ("-h", "-?", "--help", "-help", "--helpshort", "-helpshort")
FULL_HELP_ARGUMENTS = ("--helpfull", "-helpfull")


def format_grouped_help(flag_values, groups, description):
    """The help text: `description`, then each group's flags with help and default.

    Args:
        flag_values: the `absl.flags.FlagValues` holding the flags.
        groups: `{group name: flag names}`, in the order to list them.
        description: the command's description (e.g. its module docstring).

    Returns:
        The text, ending with a pointer to `--helpfull`.
    """
    lines = [description.strip(), ""]
    for group, names in groups.items():
        lines.append(f"{group.capitalize()} flags:")
        for name in names:
            lines.extend(_flag_lines(flag_values[name]))
        lines.append("")
    lines.append("--helpfull lists these flags together with absl's and TensorFlow's.")
    return "\n".join(lines)


def _flag_lines(flag):
    name = f"--[no]{flag.name}" if isinstance(flag, flags.BooleanFlag) else f"--{flag.name}"
    default = "not set" if flag.default is None else flag.default_as_str.strip("'")
    lines = textwrap.wrap(
        f"{name}: {flag.help}",
        width=88,
        initial_indent="  ",
        subsequent_indent="    ",
        break_long_words=False,
        break_on_hyphens=False,
    )
    if flag.default is None and "(default:" in flag.help:
        return lines  # The help says what an unset flag means.
    return [*lines, f"    (default: {default})"]


def grouped_help_parser(description, groups, flag_values=flags.FLAGS):
    """An `app.run` `flags_parser` that prints `format_grouped_help` on `--help`.

    Args:
        description: the command's description.
        groups: `{group name: flag names}`, or a function returning it.
        flag_values: the `absl.flags.FlagValues` of the command.

    Returns:
        A function of `argv` that exits 0 after printing the help when `argv` asks for
        it, and otherwise parses `argv` into `flag_values` and returns the remaining
        arguments. A bad flag raises absl's `flags.Error`, which
        `supcon_tf.cli.console.run_command` reports as one line (exit status 2).
    """

    def parse(argv):
        arguments = argv[1:]
        if "--" in arguments:
            arguments = arguments[: arguments.index("--")]
        if any(argument in HELP_ARGUMENTS for argument in arguments):
            named = groups() if callable(groups) else groups
            print(format_grouped_help(flag_values, named, description))
            sys.exit(0)
        if any(argument in FULL_HELP_ARGUMENTS for argument in arguments):
            print(f"{description.strip()}\n\n{flag_values.get_help()}")
            sys.exit(0)
        return flag_values(argv)

    return parse
