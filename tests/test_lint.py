"""The code base stays `ruff`-clean (lint rules and formatting from pyproject.toml).

ruff runs as `python -m ruff` from the interpreter running the tests, so a virtual
environment used without activating it still lints (a `ruff` found on PATH could be
another installation, or none). ruff is in the `test` extra: when it is missing, the
test fails rather than passing silently.
"""

import importlib.metadata
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_extra_names():
    requirements = ["pytest>=7", 'ruff; extra == "test"', "numpy"]
    assert _test_extra_names(requirements) == {"ruff"}


def _test_extra_names(requirements):
    """The distribution names of a `test` extra among `Requires-Dist` lines."""
    names = set()
    for requirement in requirements:
        name, _, marker = requirement.partition(";")
        if re.search(r"""extra\s*==\s*["']test["']""", marker):
            names.add(re.split(r"[\s<>=!~\[(]", name.strip(), maxsplit=1)[0].lower())
    return names


def _ruff_is_required():
    try:
        requirements = importlib.metadata.requires("supcon_tf") or []
    except importlib.metadata.PackageNotFoundError:
        return True  # Not installed: setup.py's test extra lists ruff.
    return "ruff" in _test_extra_names(requirements)


@pytest.mark.parametrize("command", [["check", "."], ["format", "--check", "."]])
def test_ruff(command):
    if importlib.util.find_spec("ruff") is None:
        if _ruff_is_required():
            pytest.fail(
                f"ruff is in the test extra but not installed for {sys.executable}; "
                "run `python -m pip install -e '.[test]'` with this interpreter."
            )
        pytest.skip("ruff is not part of this installation's test extra")
    result = subprocess.run(
        [sys.executable, "-m", "ruff", *command], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_missing_ruff_fails_instead_of_skipping(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(pytest.fail.Exception, match="ruff is in the test extra but not installed"):
        test_ruff(["check", "."])
