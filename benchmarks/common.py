"""Shared helpers of the benchmark scripts: fresh-process measurements and the results file.

Every configuration runs in its own child process, so that the child's peak resident
memory (`ru_maxrss`, read with `os.wait4` for exactly that child) belongs to that
configuration alone.
"""

import datetime
import json
import os
import platform
import subprocess
import sys
import tarfile
import tempfile
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"  # dated runs, a file per question; RESULTS.md sums up


def run_child(arguments):
    """Runs `python <arguments>` in a fresh process from the repository root.

    The child prints one JSON object as its last stdout line. Returns that object with
    `peak_rss_mb` added: the child's peak resident memory (`ru_maxrss` of exactly this
    child, from `os.wait4`). Raises RuntimeError with the child's stderr tail on failure.
    """
    environment = dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="2")
    with tempfile.TemporaryFile("w+") as stdout, tempfile.TemporaryFile("w+") as stderr:
        process = subprocess.Popen(
            [sys.executable, *arguments], cwd=ROOT, env=environment, stdout=stdout, stderr=stderr
        )
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        stdout.seek(0)
        stderr.seek(0)
        output, errors = stdout.read(), stderr.read()
    if process.returncode != 0:
        raise RuntimeError(f"{arguments} failed ({process.returncode}):\n{errors[-3000:]}")
    report = json.loads(output.strip().splitlines()[-1])
    report["peak_rss_mb"] = usage.ru_maxrss / 1024  # Linux reports KiB.
    return report


def peak_rss_mb():
    """Peak resident memory of this process so far, in MB (Linux reports KiB)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def machine_description():
    """One line: CPU model, logical cores, memory, Python/TensorFlow/Keras versions."""
    import keras
    import tensorflow as tf

    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    gpus = tf.config.list_physical_devices("GPU")
    return (
        f"{model}, {os.cpu_count()} logical cores, {memory_gib:.0f} GiB RAM, "
        f"{'GPU: ' + ', '.join(gpu.name for gpu in gpus) if gpus else 'no GPU'}; "
        f"Python {platform.python_version()}, TensorFlow {tf.__version__}, Keras {keras.__version__}"
    )


def markdown_table(header, rows):
    """Formats rows (lists of strings) as a Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def append_results(title, command, body, path=None):
    """Appends a dated block (title, command, machine, body) to `path`, by default
    benchmarks/results/<the running script's name>.md."""
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    block = (
        f"\n### {title} ({stamp})\n\n"
        f"Command: `{command}`  \n"
        f"Machine: {machine_description()}  \n"
        "The machine was shared with other jobs while this ran; figures are medians.\n\n"
        f"{body}\n"
    )
    path = Path(path or RESULTS / f"{Path(sys.argv[0]).stem}.md")
    previous = path.read_text() if path.exists() else "# Benchmark results\n"
    path.write_text(previous.rstrip("\n") + "\n" + block)
    return block


def extract_cifar10_subset(archive, destination, train_per_class, test_per_class):
    """Extracts the first N images per class of each split (`train/`, `test/`) of the
    CIFAR-10 JPEG archive into `destination`."""
    limits = {"train": train_per_class, "test": test_per_class}
    counts = defaultdict(int)
    with tarfile.open(archive, "r:gz") as tar:
        for member in tar:
            parts = Path(member.name).parts
            if not member.isfile() or len(parts) < 3 or parts[-3] not in limits:
                continue
            key = (parts[-3], parts[-2])
            if counts[key] >= limits[parts[-3]]:
                continue
            counts[key] += 1
            target = Path(destination, parts[-3], parts[-2], parts[-1])
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(tar.extractfile(member).read())
    return Path(destination)
