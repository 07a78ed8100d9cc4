"""The deprecation shims' one helper: re-export a moved module's names and warn once.

A shim left at an old module path calls `reexport(globals(), old, new, names)`; every
name in `names` is then importable from the old path, the same object as at its new home,
and importing the old path emits a `DeprecationWarning` that names the new one.
"""

import importlib
import warnings


def reexport(namespace, old, new, names, elsewhere=None):
    """Copies `names` from module `new` into a shim's `namespace`; warns; returns `__all__`.

    Args:
        namespace: the shim's `globals()`.
        old, new: the old and the new dotted module paths.
        names: the old public names, separated by whitespace.
        elsewhere: optional `{old name: "module:attribute"}` for names whose new home is
            another module, or that are spelled differently there.
    """
    elsewhere = elsewhere or {}
    home = importlib.import_module(new)
    for name in names.split():
        if name in elsewhere:
            module, _, attribute = elsewhere[name].partition(":")
            namespace[name] = getattr(importlib.import_module(module), attribute)
        else:
            namespace[name] = getattr(home, name)
    warnings.warn(
        f"`{old}` is deprecated; import from `{new}` instead.", DeprecationWarning, stacklevel=3
    )
    return sorted(names.split())
