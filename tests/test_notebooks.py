"""The notebooks are in step with their sources, stored without outputs, and run end to end."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import CIFAR10_ARCHIVE, extract_cifar10_subset

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def test_notebooks_match_sources():
    result = subprocess.run(
        [sys.executable, str(ROOT / "notebooks" / "build.py"), "--check"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[path.stem for path in NOTEBOOKS])
def test_notebook_is_cleared_and_has_colab_badge(path):
    notebook = json.loads(path.read_text(encoding="utf-8"))
    for cell in notebook["cells"]:
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and cell["execution_count"] is None
    assert "colab.research.google.com" in "".join(notebook["cells"][0]["source"])


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[path.stem for path in NOTEBOOKS])
def test_notebook_executes(path, tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    monkeypatch.setenv("SUPCON_NOTEBOOK_SMALL", "1")
    if CIFAR10_ARCHIVE.is_file():  # real CIFAR-10 images when ../shared is there, else digits
        subset = extract_cifar10_subset(CIFAR10_ARCHIVE, tmp_path / "cifar10", 20, 10)
        monkeypatch.setenv("SUPCON_NOTEBOOK_DATASET", str(subset))
    monkeypatch.delenv("MPLBACKEND", raising=False)  # keep the inline backend: plots become outputs
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    notebook = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        notebook,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()
    errors = [
        output
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
        if output.get("output_type") == "error"
    ]
    assert not errors
    if "plt.show()" in path.read_text(encoding="utf-8"):
        images = [
            output
            for cell in notebook.cells
            for output in cell.get("outputs", [])
            if "image/png" in output.get("data", {})
        ]
        assert images, "the notebook's plots produced no image output"
