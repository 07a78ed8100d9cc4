"""The mistakes a user can fix, as exception types the commands turn into one line.

Library code raises these where a user's input is wrong, so that `supcon-train` and the
other commands can print `supcon-train: error: <what is wrong>; <what to do>` and exit
without a traceback, while every other exception (a bug) keeps its traceback:

- `UsageError`: a flag, option or combination of options is wrong (exit status 2, as
  argparse and absl use for usage errors);
- `DataError`: a path, file, image, archive or dataset is missing, corrupt or does not
  fit the run (exit status 1).

Both subclass `ValueError`, so code that catches `ValueError` keeps working.

Example:

>>> raise UsageError("--temperature=-1 must be > 0; pass a positive value such as 0.1")
Traceback (most recent call last):
...
supcon_tf.errors.UsageError: --temperature=-1 must be > 0; pass a positive value such as 0.1
"""

EXIT_USAGE = 2
EXIT_DATA = 1


class UsageError(ValueError):
    """A wrong flag, option or combination of options; the message says what to do."""

    exit_status = EXIT_USAGE


class DataError(ValueError):
    """Missing, corrupt or unfitting data; the message names the path and what to do."""

    exit_status = EXIT_DATA
