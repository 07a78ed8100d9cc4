"""Runs a module of this repository in a fresh Python process (CLIs, test workers)."""

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def run_module(module, arguments, timeout=600):
    """Runs `python -m <module> <arguments>` from the repository root; fails the test,
    with the output's tail, on a non-zero exit status. Returns the `CompletedProcess`."""
    result = subprocess.run(
        [sys.executable, "-m", module, *arguments],
        cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="2"),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-6000:]
    return result


def run_on_replicas(module, arrays, folder, replicas=2, timeout=600):
    """Saves `arrays` to `<folder>/inputs.npz`, runs `python -m <module> --replicas=N
    --input=... --output=...`, and returns the output arrays.

    The worker configures the logical devices itself, which must happen before
    TensorFlow starts: hence the fresh process.
    """
    inputs, outputs = Path(folder) / "inputs.npz", Path(folder) / "results.npz"
    np.savez(inputs, **arrays)
    run_module(
        module, [f"--replicas={replicas}", f"--input={inputs}", f"--output={outputs}"], timeout
    )
    return dict(np.load(outputs))


def run_as_user(module, arguments, environment=None, timeout=600):
    """Runs `python -m <module> <arguments>` as a user would: from the repository root,
    without the `TF_CPP_MIN_LOG_LEVEL` of the test run (`environment` adds variables).
    Returns `(CompletedProcess, seconds)`; the exit status is the caller's to check."""
    env = {key: value for key, value in os.environ.items() if key != "TF_CPP_MIN_LOG_LEVEL"}
    env.update(PYTHONPATH=str(ROOT), **(environment or {}))
    start = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", module, *arguments],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return result, time.monotonic() - start
