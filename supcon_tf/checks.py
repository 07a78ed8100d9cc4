"""One place for the argument checks that public constructors and the config repeat.

Each check returns the value (as a plain `int`, `float` or `bool`) or raises a
`supcon_tf.errors.UsageError` (a `ValueError`) that names the argument, what was given
and what is allowed. Check an option once, where it enters (a public constructor or
`ExperimentConfig`); inner functions trust their typed arguments.

Example:

>>> integer("batch_size", 256, minimum=1)
256
>>> number("temperature", 0.1, minimum=0.0, inclusive=False)
0.1
>>> integer("batch_size", 0, minimum=1)
Traceback (most recent call last):
...
supcon_tf.errors.UsageError: `batch_size` must be an integer >= 1, got 0.
"""

import math
import numbers

from supcon_tf.errors import UsageError


def _bounds_text(minimum, maximum, inclusive):
    low, high = (">=", "<=") if inclusive else (">", "<")
    parts = []
    if minimum is not None:
        parts.append(f"{low} {minimum}")
    if maximum is not None:
        parts.append(f"{high} {maximum}")
    return " and ".join(parts)


def _in_bounds(value, minimum, maximum, inclusive):
    if minimum is not None and (value < minimum if inclusive else value <= minimum):
        return False
    return maximum is None or (value <= maximum if inclusive else value < maximum)


def integer(name, value, minimum=None, maximum=None):
    """`value` as an `int` within `[minimum, maximum]` (bounds optional), else `UsageError`.

    Booleans are refused (`True` is an `int` in Python, never a count here).
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        bounds = _bounds_text(minimum, maximum, True)
        raise UsageError(
            f"`{name}` must be an integer{' ' + bounds if bounds else ''}, "
            f"got {value!r} ({type(value).__name__})."
        )
    if not _in_bounds(value, minimum, maximum, True):
        raise UsageError(
            f"`{name}` must be an integer {_bounds_text(minimum, maximum, True)}, got {value}."
        )
    return int(value)


def number(name, value, minimum=None, maximum=None, inclusive=True):
    """`value` as a finite `float` within the bounds, else `UsageError`.

    Args:
        name: the argument's name, for the message.
        value: an int or float (not a bool).
        minimum, maximum: optional bounds.
        inclusive: whether the bounds themselves are allowed.
    """
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Real)
        or not math.isfinite(float(value))
    ):
        raise UsageError(f"`{name}` must be a finite number, got {value!r}.")
    if not _in_bounds(value, minimum, maximum, inclusive):
        raise UsageError(
            f"`{name}` must be {_bounds_text(minimum, maximum, inclusive)}, got {value}."
        )
    return float(value)


def boolean(name, value):
    """`value` when it is a `bool`, else `UsageError` (no truthy strings or ints)."""
    if not isinstance(value, bool):
        raise UsageError(f"`{name}` must be True or False, got {value!r}.")
    return value


def choice(name, value, options):
    """`value` when it is one of `options`, else `UsageError` listing them."""
    if value not in options:
        listed = ", ".join(repr(option) for option in options)
        raise UsageError(f"`{name}` must be one of {listed}, got {value!r}.")
    return value
