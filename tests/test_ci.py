"""CI runs what the README says and skips nothing it should run.

- `.ci/run` calls the README's test command verbatim, then reruns the `numerics` tests
  with `TF_ENABLE_ONEDNN_OPTS=0`.
- With `SUPCON_TF_STRICT_SKIPS=1` (as `.ci/run` sets it), a skip whose reason is not in
  `tests/conftest.py`'s `ALLOWED_SKIPS` fails the pytest run; xfails and allowed skips
  do not.
"""

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

DEMO_TESTS = """
import pytest

def test_passes():
    pass

@pytest.mark.xfail(reason="a known failure")
def test_expected_failure():
    assert False
"""


def _readme_test_command():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```bash\n(.*?)```", readme, flags=re.DOTALL)
    commands = [line for block in blocks for line in block.splitlines() if "pytest" in line]
    assert commands, "README.md shows no test command"
    return commands[0].strip()


def test_ci_runs_the_readme_test_command_then_the_numerics_on_eigen():
    lines = [
        line.strip()
        for line in (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    assert _readme_test_command() in lines
    assert "export SUPCON_TF_STRICT_SKIPS=1" in lines
    rerun = [line for line in lines if line.startswith("TF_ENABLE_ONEDNN_OPTS=0")]
    assert rerun == [
        'TF_ENABLE_ONEDNN_OPTS=0 python -m pytest -m "numerics and not slow and not benchmark"'
    ]
    assert lines.index(rerun[0]) > lines.index(_readme_test_command())


def _run_demo(tmp_path, extra_tests, strict=True):
    test_file = tmp_path / "test_demo.py"
    test_file.write_text(DEMO_TESTS + textwrap.dedent(extra_tests))
    environment = {**os.environ, "SUPCON_TF_STRICT_SKIPS": "1" if strict else "0"}
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            str(test_file),
            "-p",
            "tests.conftest",
            "-o",
            "addopts=",
            "-p",
            "no:cacheprovider",
            "--rootdir",
            str(tmp_path),
            "-q",
        ],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_an_unlisted_skip_fails_the_run_and_is_named(tmp_path):
    result = _run_demo(
        tmp_path,
        """
        def test_needs_a_missing_package():
            pytest.skip("somepackage is not installed")
        """,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "unexpected skips" in result.stdout
    assert "test_needs_a_missing_package: Skipped: somepackage is not installed" in result.stdout


def test_allowed_skips_and_xfails_pass(tmp_path):
    result = _run_demo(
        tmp_path,
        """
        def test_needs_shared_data():
            pytest.skip("real-data test: ../shared/data/cifar10-jpeg.tar.gz not found")
        """,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed, 1 skipped, 1 xfailed" in result.stdout
    assert "unexpected skips" not in result.stdout


def test_without_strict_skips_a_skip_passes(tmp_path):
    """A user's run (no `SUPCON_TF_STRICT_SKIPS`) may skip what their machine lacks."""
    result = _run_demo(
        tmp_path,
        """
        def test_needs_a_missing_package():
            pytest.skip("somepackage is not installed")
        """,
        strict=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed, 1 skipped, 1 xfailed" in result.stdout
