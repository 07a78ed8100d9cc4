"""Builds the notebooks (`notebooks/*.ipynb`) from their percent-format sources.

The sources in `notebooks/src/*.py` are plain Python files: `# %%` starts a code cell,
`# %% [markdown]` a markdown cell whose lines start with `# `. Generated notebooks have
no outputs, so git holds them cleared; `tests/test_notebooks.py` checks they are in step
with the sources and executes them with a small-size setting.

Usage: `python notebooks/build.py` (writes) or `python notebooks/build.py --check`.
"""

import argparse
import json
import sys
from pathlib import Path

NOTEBOOKS = Path(__file__).resolve().parent
SOURCES = NOTEBOOKS / "src"
REPOSITORY = "supcon-tf/supcon_tf"  # GitHub path used by the "Open in Colab" badges.


def colab_badge(name):
    url = f"https://colab.research.google.com/github/{REPOSITORY}/blob/main/notebooks/{name}"
    return f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]({url})"


def parse_cells(text):
    """Splits a percent-format source into `(cell_type, source)` pairs."""
    cells, kind, lines = [], None, []

    def flush():
        if kind is not None:
            body = "\n".join(lines).strip("\n")
            if kind == "markdown":
                body = "\n".join(
                    line[2:] if line.startswith("# ") else line.lstrip("#")
                    for line in body.splitlines()
                )
            cells.append((kind, body))

    for line in text.splitlines():
        if line.startswith("# %%"):
            flush()
            kind = "markdown" if "[markdown]" in line else "code"
            lines = []
        elif kind is not None:
            lines.append(line)
    flush()
    return cells


def build_notebook(source_path):
    name = source_path.with_suffix(".ipynb").name
    cells = []
    for index, (kind, body) in enumerate(parse_cells(source_path.read_text(encoding="utf-8"))):
        if index == 0 and kind == "markdown":
            body = body.replace("{colab_badge}", colab_badge(name))
        cell = {"cell_type": kind, "metadata": {}, "source": body.splitlines(keepends=True)}
        if kind == "code":
            cell.update({"execution_count": None, "outputs": []})
        cells.append(cell)
    notebook = {
        "cells": cells,
        "metadata": {
            "accelerator": "GPU",
            "colab": {"provenance": []},
            "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
            "language_info": {"name": "python"},
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    for index, cell in enumerate(notebook["cells"]):
        cell["id"] = f"cell-{index}"
    return name, json.dumps(notebook, indent=1, ensure_ascii=False) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if a notebook is stale")
    args = parser.parse_args(argv)
    stale = []
    for source in sorted(SOURCES.glob("*.py")):
        name, text = build_notebook(source)
        target = NOTEBOOKS / name
        current = target.read_text(encoding="utf-8") if target.exists() else None
        if current != text:
            stale.append(name)
            if not args.check:
                target.write_text(text, encoding="utf-8")
    if args.check and stale:
        print(f"stale notebooks (run python notebooks/build.py): {stale}")
        return 1
    print(("checked " if args.check else "built ") + str(len(list(SOURCES.glob("*.py")))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
