"""The import graph of `supcon_tf`: no cycle, a clean `import supcon_tf`, stable public names.

The graph is read from the source with `ast` (nothing is imported): an edge `a -> b` for
every import of the `supcon_tf` module `b` anywhere in `a`, at module level or inside a
function. `from package import name` points at the module `package.name` when that is a
module, else at `package` (its `__init__`).
"""

import ast
import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from supcon_tf import evaluation

ROOT = Path(__file__).resolve().parents[1]


def _names(text):
    """The names of a whitespace-separated list."""
    return text.split()


# The public names of `supcon_tf.evaluation` when it was a single module.
EVALUATION_NAMES = _names(
    "CLASSIFIER_FILES ENCODER_FILES KNNMonitor PLOTS_FOLDER REPORT_JSON REPORT_MD WEIGHTINGS "
    "alignment_uniformity calibration_bins confusion_matrix evaluate_classifier evaluate_encoder "
    "evaluate_run expected_calibration_error knn_accuracy knn_scores l2_normalize "
    "per_class_accuracy plot_confusion_matrix plot_reliability_diagram plot_tsne predict "
    "predict_probabilities softmax top_k_accuracy update_report_json write_report_md"
)

# ----------------------------------------------------------------------------- the graph


def package_sources(package_dir):
    """`(sources, packages)`: module name -> source text, and the names that are packages."""
    package_dir = Path(package_dir)
    sources, packages = {}, set()
    for path in sorted(package_dir.rglob("*.py")):
        parts = path.relative_to(package_dir.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
            packages.add(".".join(parts))
        sources[".".join(parts)] = path.read_text(encoding="utf-8")
    return sources, packages


def _absolute(module, level, package):
    """The absolute name of `from <level dots><module> import ...` inside `package`."""
    if level == 0:
        return module
    parts = package.split(".")
    base = ".".join(parts[: len(parts) - (level - 1)])
    return f"{base}.{module}" if module else base


def import_graph(sources, packages):
    """Maps each module of `sources` to the set of modules of `sources` it imports."""
    graph = {}
    for name, source in sources.items():
        package = name if name in packages else name.rpartition(".")[0]
        targets = set()
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = _absolute(node.module, node.level, package)
                for alias in node.names:
                    submodule = f"{base}.{alias.name}"
                    targets.add(submodule if submodule in sources else base)
        graph[name] = {target for target in targets if target in sources and target != name}
    return graph


def find_cycle(graph):
    """A cycle `[a, b, ..., a]` of `graph` (node -> successors), or None when it has none."""
    visiting, done, path = set(), set(), []

    def visit(node):
        visiting.add(node)
        path.append(node)
        for successor in sorted(graph.get(node, ())):
            if successor in visiting:
                return path[path.index(successor) :] + [successor]
            if successor not in done:
                cycle = visit(successor)
                if cycle:
                    return cycle
        visiting.remove(node)
        done.add(node)
        path.pop()
        return None

    for node in sorted(graph):
        if node not in done:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


# ----------------------------------------------------------------------------- the finder


class TestImportGraph:
    # The layout that had a cycle: evaluation imported corruptions inside a function,
    # corruptions imported evaluation at module level.
    OLD_LAYOUT = {
        "supcon_tf": "from supcon_tf.data import load_dataset\n",
        "supcon_tf.data": "import numpy as np\n",
        "supcon_tf.evaluation": (
            "import numpy as np\n\n"
            "def evaluate_run():\n"
            "    from supcon_tf import corruptions as corruption_module\n"
        ),
        "supcon_tf.corruptions": "from supcon_tf import evaluation\n",
    }

    def test_finds_the_function_level_cycle_of_the_old_layout(self):
        graph = import_graph(self.OLD_LAYOUT, {"supcon_tf"})
        assert graph == {
            "supcon_tf": {"supcon_tf.data"},
            "supcon_tf.data": set(),
            "supcon_tf.evaluation": {"supcon_tf.corruptions"},
            "supcon_tf.corruptions": {"supcon_tf.evaluation"},
        }
        assert find_cycle(graph) == [
            "supcon_tf.corruptions",
            "supcon_tf.evaluation",
            "supcon_tf.corruptions",
        ]

    def test_resolves_names_packages_and_relative_imports(self):
        sources = {
            "pkg": "from pkg.sub import helper\n",
            "pkg.sub": "from pkg.sub import tool\nfrom . import tool as again\n",
            "pkg.sub.tool": "from .. import other\nimport pkg.sub\n",
            "pkg.other": "from pkg import VERSION\nfrom .sub.tool import run\n",
        }
        graph = import_graph(sources, {"pkg", "pkg.sub"})
        assert graph == {
            "pkg": {"pkg.sub"},
            "pkg.sub": {"pkg.sub.tool"},
            "pkg.sub.tool": {"pkg.other", "pkg.sub"},
            "pkg.other": {"pkg", "pkg.sub.tool"},
        }

    @pytest.mark.parametrize(
        "graph, expected",
        [
            ({"a": {"b", "c"}, "b": {"c"}, "c": set()}, None),
            ({"a": {"b"}, "b": {"c"}, "c": {"a"}}, ["a", "b", "c", "a"]),
            ({"a": {"b"}, "b": {"c"}, "c": {"b"}}, ["b", "c", "b"]),
            ({"a": {"a"}}, ["a", "a"]),
            ({}, None),
        ],
    )
    def test_find_cycle(self, graph, expected):
        assert find_cycle(graph) == expected


# ----------------------------------------------------------------------------- supcon_tf


def test_supcon_tf_has_no_import_cycle():
    sources, packages = package_sources(ROOT / "supcon_tf")
    graph = import_graph(sources, packages)
    # The graph is not empty by accident: known edges are there.
    assert "supcon_tf.evaluation.corruptions" in graph["supcon_tf.evaluation.run"]
    assert "supcon_tf.evaluation" in graph["supcon_tf.cli.evaluate"]
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_import_supcon_tf_in_a_fresh_process():
    environment = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2"}
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, supcon_tf; print('supcon_tf.corruptions' in sys.modules)",
        ],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    # The package itself never goes through the deprecated module.
    assert result.stdout.strip() == "False"


def test_evaluation_keeps_its_public_names():
    missing = [name for name in EVALUATION_NAMES if name not in evaluation.__all__]
    assert not missing
    assert all(hasattr(evaluation, name) for name in evaluation.__all__)


def test_old_corruptions_module_warns_and_reexports(monkeypatch):
    monkeypatch.delitem(sys.modules, "supcon_tf.corruptions", raising=False)
    with pytest.warns(DeprecationWarning, match=r"supcon_tf\.evaluation\.corruptions"):
        old = importlib.import_module("supcon_tf.corruptions")
    assert old.evaluate_corruptions is evaluation.corruptions.evaluate_corruptions
    assert old.corruption_table is evaluation.corruption_table
    assert old.plot_corruption_results is evaluation.plot_corruption_results
    for name in old.__all__:
        new_home = [
            module
            for module in (evaluation.corruptions, evaluation.report, evaluation.plots)
            if hasattr(module, name)
        ]
        assert new_home and getattr(old, name) is getattr(new_home[0], name), name
