"""How the supcon_tf commands start and stop: a quiet TensorFlow and one-line errors.

`quiet_tensorflow()` runs when `supcon_tf.cli` is imported, before any command module
imports TensorFlow: it sets `TF_CPP_MIN_LOG_LEVEL=3` (unless the user set it: their
level wins) and drops the C++ start-up lines that TensorFlow prints before that level
takes effect ("Could not find cuda drivers", "All log messages before
absl::InitializeLog()"), and tf.function's retracing warnings, which the evaluation's
predictions on sets of several sizes raise by design. `TF_CPP_MIN_LOG_LEVEL=0
supcon-train ...` shows them all.

`run_command(main, name, ...)` runs a command's `main` under `absl.app.run` and turns
the mistakes a user can fix into one line on stderr and an exit status:

    supcon-train: error: <what is wrong>; <what to do>

- `supcon_tf.errors.UsageError`, a bad or unknown flag (absl's `flags.Error`): exit 2;
- `supcon_tf.errors.DataError`, a missing file (`FileNotFoundError`) and the command's
  own `expected` errors (e.g. a run folder locked by another process): exit 1.

`--traceback` shows the Python traceback instead. Every other exception is a bug and
keeps its traceback.

Example:

>>> from supcon_tf.errors import DataError
>>> error_line("supcon-train", DataError("No images in /data/x; check --dataset"))
'supcon-train: error: No images in /data/x; check --dataset'
>>> exit_status(DataError("")), exit_status(flags.UnrecognizedFlagError("color"))
(1, 2)
"""

import contextlib
import difflib
import logging
import os
import re
import sys
import tempfile

from absl import app, flags

from supcon_tf.cli.usage import grouped_help_parser
from supcon_tf.errors import EXIT_DATA, EXIT_USAGE, DataError, UsageError

# The mistakes every command reports as one line (besides its own `expected` ones).
EXPECTED_ERRORS = (UsageError, DataError, flags.Error, FileNotFoundError)

# The TensorFlow C++ log level the commands use unless the user sets one.
QUIET_LOG_LEVEL = "3"

# Lines TensorFlow writes before `TF_CPP_MIN_LOG_LEVEL` takes effect, by the level that
# hides them: INFO (1) and WARNING (2) lines in absl's C++ format, and the banner.
_BANNER = "WARNING: All log messages before absl::InitializeLog() is called"
_SEVERITY_LINE = re.compile(r"^([IWEF])\d{4} [\d:. ]+\d+ \S+:\d+\] ")
_HIDDEN_FROM = {"I": 1, "W": 2}


def quiet_tensorflow(environ=os.environ):
    """Imports TensorFlow at the user's log level, or at `QUIET_LOG_LEVEL` if they set none.

    Does nothing when TensorFlow is already imported (its logging is set by then).
    """
    if "tensorflow" in sys.modules:
        return
    environ.setdefault("TF_CPP_MIN_LOG_LEVEL", QUIET_LOG_LEVEL)
    try:
        level = int(environ["TF_CPP_MIN_LOG_LEVEL"])
    except ValueError:
        level = 0
    with _stderr_filtered(lambda line: _is_hidden(line, level)):
        import tensorflow  # noqa: F401
    if level >= 2:
        logging.getLogger("tensorflow").addFilter(_drop_retracing_warnings)


def _drop_retracing_warnings(record):
    """Drops tf.function's "triggered tf.function retracing" warning, which the
    evaluation's predictions on differently sized sets (train, test, a partial last
    batch) raise by design; every other TensorFlow message passes."""
    return "triggered tf.function retracing" not in record.getMessage()


def _is_hidden(line, level):
    """Whether `line` is a start-up log line that `TF_CPP_MIN_LOG_LEVEL=level` hides."""
    if line.startswith(_BANNER):
        return level >= 1
    match = _SEVERITY_LINE.match(line)
    return bool(match) and level >= _HIDDEN_FROM.get(match.group(1), 9)


@contextlib.contextmanager
def _stderr_filtered(hidden):
    """Captures file descriptor 2 (C++ writes there too), then writes back the lines
    for which `hidden(line)` is false."""
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # No stderr to filter.
        yield
        return
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            lines = capture.read().decode(errors="replace").splitlines(keepends=True)
            sys.stderr.write("".join(line for line in lines if not hidden(line)))
            sys.stderr.flush()


def program_name(name, argv=None):
    """The name the user ran: the console script's (`supcon-train`), else `name`."""
    argv = sys.argv if argv is None else argv
    invoked = re.split(r"[\\/]", argv[0])[-1] if argv else ""
    invoked = re.sub(r"(-script\.py|\.exe)$", "", invoked)
    return invoked if invoked.startswith("supcon-") else name


def exit_status(error):
    """2 for a usage mistake (flags, options), else the error's own status or 1."""
    if isinstance(error, flags.Error):
        return EXIT_USAGE
    return getattr(error, "exit_status", EXIT_DATA)


def error_line(program, error, flag_names=()):
    """`<program>: error: <message>`, on one line, with what to do when it is missing.

    `flag_names`, the command's flags, give an unknown flag's likely meaning.
    """
    message = " ".join(str(error).split())
    if isinstance(error, flags.UnrecognizedFlagError):
        message = _unknown_flag_message(error.flagname, flag_names, program)
    elif isinstance(error, flags.Error):
        message = _flag_message(message, program)
    elif isinstance(error, FileNotFoundError) and error.filename is not None:
        message = f"{error.filename} does not exist; check the path"
    elif isinstance(error, FileNotFoundError) and ";" not in message:
        message = f"{message.rstrip('.')}; check the path"
    return f"{program}: error: {message}"


def _unknown_flag_message(name, flag_names, program):
    close = difflib.get_close_matches(name, list(flag_names), n=3, cutoff=0.6)
    if close:
        return f"unknown flag --{name}; did you mean --{' or --'.join(close)}?"
    return f"unknown flag --{name}; see {program} --help for the flags"


# absl's words for a value of the wrong type, and ours.
_VALUE_MESSAGES = (
    (r"invalid literal for int\(\) with base 10: .*", "not an integer"),
    (r"could not convert string to float: .*", "not a number"),
    (r"\('Non-boolean argument to boolean flag', .*\)", "not true or false"),
)


def _flag_message(message, program):
    required = re.search(r"Flag --(\w+) must have a value other than None", message)
    if required:
        return f"--{required.group(1)} is required; see {program} --help"
    message = re.sub(r"^flags? .*?: (?=--)", "", message)  # absl repeats the flags.
    message = re.sub(r"^flag (--\w+=.*?): ", r"\1: ", message)
    for pattern, words in _VALUE_MESSAGES:
        message = re.sub(pattern, words, message)
    return f"{message.rstrip('.')}; see {program} --help"


def run_command(main, name, description, groups, flag_values=flags.FLAGS, expected=()):
    """Runs `main(argv)` as the command `name`, with `--help` and one-line errors.

    Args:
        main: the command's main function (takes `argv`, which holds only the program:
            words that are not flags are refused before `main` runs).
        name: the command's name, for messages when it is not run as a console script.
        description: the command's `--help` text (its module docstring).
        groups: `{group: flag names}` for `--help`, or a function returning it.
        flag_values: the command's `absl.flags.FlagValues`.
        expected: further exception types to report as one line (exit status 1).
    """
    if "traceback" not in flag_values:
        flags.DEFINE_bool(
            "traceback",
            False,
            "Show the Python traceback of an error instead of one line.",
            flag_values=flag_values,
        )

    def help_groups():
        named = groups() if callable(groups) else groups
        return {**named, "errors": ("traceback",)}

    def main_of_flags(argv):
        if len(argv) > 1:
            raise UsageError(
                f"unexpected arguments {' '.join(argv[1:])}; flags are written --name=value"
            )
        return main(argv)

    try:
        app.run(
            main_of_flags,
            flags_parser=grouped_help_parser(description, help_groups, flag_values),
        )
    except (*EXPECTED_ERRORS, *expected) as error:
        if _wants_traceback(flag_values):
            raise
        line = error_line(program_name(name), error, flag_names=list(flag_values))
        print(line, file=sys.stderr, flush=True)
        sys.exit(exit_status(error))


def entry_point(main, name, description, groups, define_flags):
    """A console script's `run()`: defines the command's flags, then `run_command`.

    >>> run = entry_point(lambda argv: None, "supcon-demo", "Demo.", {}, lambda: None)
    >>> run.__name__, run.__doc__
    ('run', 'Console-script entry point of supcon-demo.')
    """

    def run():
        define_flags()
        run_command(main, name, description, groups)

    run.__doc__ = f"Console-script entry point of {name}."
    return run


def _wants_traceback(flag_values):
    if flag_values.is_parsed():
        return flag_values["traceback"].value
    return "--traceback" in sys.argv[1:]
