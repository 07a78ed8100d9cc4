"""Shared test fixtures and hooks.

- Quiet TensorFlow logs, the optional real-data archive, a `ram://` folder.
- The `numerics` marker on the test modules whose results depend on TensorFlow's CPU
  kernels (oneDNN or Eigen): `.ci/run` runs them a second time with
  `TF_ENABLE_ONEDNN_OPTS=0`, the path a CPU without oneDNN's kernels takes.
- With `SUPCON_TF_STRICT_SKIPS=1` (set by `.ci/run`), a skip whose reason is not in
  `ALLOWED_SKIPS` fails the run: a test that skips in CI tests nothing.
"""

import os
import uuid
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402

from benchmarks.common import extract_cifar10_subset  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("SUPCON_SHARED_DATA", ROOT.parent / "shared" / "data"))
CIFAR10_ARCHIVE = SHARED_DATA / "cifar10-jpeg.tar.gz"

# Test modules whose figures depend on the CPU kernels TensorFlow picks (matmul and
# convolution round-off, float16 and bfloat16 kernels, cross-replica reductions).
NUMERICS_MODULES = frozenset(
    {
        "test_losses",
        "test_blocked",
        "test_gradient_cache",
        "test_distribute",
        "test_memory_bank",
        "test_momentum_encoder",
        "test_layers",
    }
)

# Skips expected on CI, as (a fragment of the skip reason, why it may happen there).
ALLOWED_SKIPS = (
    (
        "real-data test:",
        "../shared/data is absent: a clone outside the project's machines (CI has it)",
    ),
)
STRICT_SKIPS = os.environ.get("SUPCON_TF_STRICT_SKIPS") == "1"
_unexpected_skips = []


@pytest.fixture(scope="session")
def cifar10_archive():
    """Path of ../shared/data/cifar10-jpeg.tar.gz; skips when the shared folder is absent."""
    if not CIFAR10_ARCHIVE.is_file():
        pytest.skip(
            f"real-data test: {CIFAR10_ARCHIVE} not found (../shared/data sits beside the "
            "repository on the project's machines; a user's clone has none)"
        )
    return CIFAR10_ARCHIVE


@pytest.fixture(scope="session")
def cifar10_subset_dir(tmp_path_factory, cifar10_archive):
    """A small CIFAR-10 image-folder dataset (train/<class>/, test/<class>/) from the archive."""
    destination = tmp_path_factory.mktemp("cifar10_subset")
    return extract_cifar10_subset(
        cifar10_archive, destination, train_per_class=40, test_per_class=10
    )


@pytest.fixture
def ram_dir():
    """A new folder on TensorFlow's in-memory file system (`ram://`), removed afterwards.

    It stands in for a `gs://` bucket: the same `tf.io.gfile` code paths, no network.
    """
    import tensorflow as tf

    folder = f"ram://supcon-test-{uuid.uuid4().hex}"
    yield folder
    if tf.io.gfile.exists(folder):
        tf.io.gfile.rmtree(folder)


@pytest.fixture
def supcon_model_options(monkeypatch):
    """`options(config)`: the keyword arguments `run_experiment(config)` builds its
    `SupConModel` with (the run stops there, before anything trains)."""
    from supcon_tf import experiment

    class BuiltError(Exception):
        pass

    def build(*args, **kwargs):
        raise BuiltError(kwargs)

    def options(config):
        monkeypatch.setattr(experiment.components, "SupConModel", build)
        with pytest.raises(BuiltError) as built:
            experiment.run_experiment(config)
        return built.value.args[0]

    return options


def pytest_collection_modifyitems(config, items):
    for item in items:
        module = getattr(item, "module", None)
        if module is not None and module.__name__.rpartition(".")[2] in NUMERICS_MODULES:
            item.add_marker(pytest.mark.numerics)


def pytest_configure(config):
    # Under pytest-xdist the controller sees every report; the workers need not count.
    global STRICT_SKIPS
    STRICT_SKIPS = STRICT_SKIPS and not hasattr(config, "workerinput")


def _skip_reason(report):
    longrepr = report.longrepr
    return longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)


def pytest_runtest_logreport(report):
    if not STRICT_SKIPS or not report.skipped or hasattr(report, "wasxfail"):
        return
    reason = _skip_reason(report)
    if not any(fragment in reason for fragment, _ in ALLOWED_SKIPS):
        _unexpected_skips.append(f"{report.nodeid}: {reason}")


def pytest_terminal_summary(terminalreporter):
    if _unexpected_skips:
        terminalreporter.section("unexpected skips (SUPCON_TF_STRICT_SKIPS=1)")
        for line in _unexpected_skips:
            terminalreporter.write_line(line)


def pytest_sessionfinish(session, exitstatus):
    if _unexpected_skips and exitstatus == 0:
        session.exitstatus = 1
