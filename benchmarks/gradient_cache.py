"""Gradient caching: peak memory and step time of a SupCon step with and without it.

    python benchmarks/gradient_cache.py                      # ResNet-18, 1024 x 2 views, chunks 128
    python benchmarks/gradient_cache.py --batch 64 --chunk 16 --timing_batch 64 --no-append

Two questions, each answered in fresh processes:

* Memory: one child process per configuration (`--chunk 0`: no caching) builds
  `SupConModel(resnet18 at 32x32x3, 2 views)` and runs `--memory_steps` training steps
  on `--batch` random images; its peak resident memory (`ru_maxrss` of exactly that
  child) is the step's peak, next to the resident memory just before the first step
  (TensorFlow, the model and the data), so that the step's own share can be read off.
  `--memory_limit_gb` caps each child's address space, so that a configuration that
  does not fit fails in its own process instead of pushing the shared machine into
  swap or the OOM killer.
* Step time: one child holds both models (with and without caching, same weights) and
  times their `train_on_batch` steps interleaved, on `--timing_batch` images, so that
  both see the same machine load; the ratio of the medians is the caching overhead.
"""

import argparse
import json
import resource
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SHAPE = (32, 32, 3)


def _model(encoder, chunk_size, seed=0):
    import keras

    from supcon_tf.losses import SupervisedContrastiveLoss
    from supcon_tf.models import SupConModel
    from supcon_tf.models.encoders import build_encoder

    keras.utils.set_random_seed(seed)
    model = SupConModel(
        build_encoder(encoder, SHAPE), num_views=2, gradient_cache_chunk_size=chunk_size or None
    )
    model.compile(
        optimizer=keras.optimizers.SGD(0.01, momentum=0.9),
        loss=SupervisedContrastiveLoss(temperature=0.1),
        jit_compile=False,
    )
    model.build((None, *SHAPE))
    return model


def _data(batch_size, seed=0):
    import numpy as np

    rng = np.random.default_rng(seed)
    images = rng.random((batch_size, *SHAPE)).astype("float32")
    return images, rng.integers(0, 10, size=batch_size)


def _rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def memory_child(args):
    """Peak memory of `--memory_steps` steps of one configuration (this process)."""
    if args.memory_limit_gb:
        limit = int(args.memory_limit_gb * 2**30)
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    model = _model(args.encoder, args.chunk)
    images, labels = _data(args.batch)
    before = _rss_mb()
    seconds, losses = [], []
    for _ in range(args.memory_steps):
        start = time.perf_counter()
        losses.append(float(model.train_on_batch(images, labels)))
        seconds.append(time.perf_counter() - start)
    status = Path("/proc/self/status").read_text().splitlines()
    peak_virtual = next((line.split()[1] for line in status if line.startswith("VmPeak")), "0")
    print(
        json.dumps(
            {
                "rss_before_step_mb": before,
                "seconds": seconds,
                "losses": losses,
                "peak_virtual_mb": int(peak_virtual) / 1024,
            }
        )
    )


def timing_child(args):
    """Interleaved step times of the plain and the cached model (this process)."""
    models = {"plain": _model(args.encoder, 0), "cached": _model(args.encoder, args.chunk)}
    images, labels = _data(args.timing_batch)
    for model in models.values():  # tracing and warm-up
        model.train_on_batch(images, labels)
    times = {name: [] for name in models}
    for _ in range(args.rounds):
        for name, model in models.items():
            start = time.perf_counter()
            model.train_on_batch(images, labels)
            times[name].append(time.perf_counter() - start)
    print(json.dumps(times))


def _memory_row(args, chunk):
    from benchmarks.common import run_child

    arguments = [
        "benchmarks/gradient_cache.py",
        "--child=memory",
        f"--encoder={args.encoder}",
        f"--batch={args.batch}",
        f"--chunk={chunk}",
        f"--memory_steps={args.memory_steps}",
        f"--memory_limit_gb={args.memory_limit_gb}",
    ]
    try:
        report = run_child(arguments)
    except RuntimeError as error:
        print(f"chunk {chunk}: {str(error)[-500:]}", file=sys.stderr)
        limit = f"{args.memory_limit_gb:g} GiB"
        return [
            f"{chunk or 'none'}",
            f"did not fit (address space capped at {limit})",
            "-",
            "-",
            "-",
        ]
    peak, before = report["peak_rss_mb"], report["rss_before_step_mb"]
    return [
        f"{chunk or 'none (plain step)'}",
        f"{peak / 1024:.2f} GB",
        f"{(peak - before) / 1024:.2f} GB",
        f"{statistics.median(report['seconds']):.1f}",
        ", ".join(f"{loss:.4f}" for loss in report["losses"]),
    ]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--encoder", default="resnet18")
    parser.add_argument("--batch", type=int, default=1024, help="images per step (x 2 views)")
    parser.add_argument("--chunk", type=int, default=128, help="images per chunk (0: none)")
    parser.add_argument("--memory_steps", type=int, default=2)
    parser.add_argument(
        "--memory_limit_gb", type=float, default=0, help="address-space cap in GiB (0: no cap)"
    )
    parser.add_argument(
        "--timing_batch", type=int, default=256, help="images per timed step (0: no timing)"
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--child", choices=["memory", "timing"], help=argparse.SUPPRESS)
    parser.add_argument("--no-append", action="store_true", help="only print")
    args = parser.parse_args(argv)
    if args.child == "memory":
        return memory_child(args)
    if args.child == "timing":
        return timing_child(args)

    from benchmarks.common import append_results, markdown_table

    rows = [_memory_row(args, chunk) for chunk in (0, args.chunk)]
    memory = markdown_table(
        [
            "gradient_cache_chunk_size",
            "peak RSS",
            "peak RSS - RSS before the first step",
            "s per step, median",
            "loss per step",
        ],
        rows,
    )
    print(memory, flush=True)
    sections, title = [memory], "Gradient caching: peak memory"
    notes = (
        f"Encoder `{args.encoder}` at 32x32x3 (SupConModel, 2 views, projection 128), "
        f"SGD, random images, `jit_compile=False`. Memory: batch {args.batch} x 2 views, "
        f"fresh process per row, {args.memory_steps} `train_on_batch` steps (the first "
        f"traces), `ru_maxrss` of the child; "
        + (
            f"address space capped at {args.memory_limit_gb:g} GiB."
            if args.memory_limit_gb
            else "address space not capped."
        )
    )
    if args.timing_batch:
        timing_table, ratio = _timing(args)
        print(timing_table, ratio, sep="\n\n")
        sections += [timing_table, ratio]
        title += " and step time"
        notes += (
            f" Timing: batch {args.timing_batch} x 2 views, chunks of {args.chunk}, both "
            f"models in one process, {args.rounds} interleaved rounds after one warm-up step "
            "each."
        )
    if not args.no_append:
        append_results(title, " ".join(["python", *sys.argv]), "\n\n".join([*sections, notes]))
    return None


def _timing(args):
    """`(markdown table, ratio line)` of the interleaved step times (a child process)."""
    from benchmarks.common import markdown_table, run_child

    timing = run_child(
        [
            "benchmarks/gradient_cache.py",
            "--child=timing",
            f"--encoder={args.encoder}",
            f"--chunk={args.chunk}",
            f"--timing_batch={args.timing_batch}",
            f"--rounds={args.rounds}",
        ]
    )
    steps = {name: timing[name] for name in ("plain", "cached")}  # run_child adds the RSS
    plain, cached = (statistics.median(times) for times in steps.values())
    table = markdown_table(
        ["step", "s per step, median (min-max)"],
        [
            [name, f"{statistics.median(times):.2f} ({min(times):.2f}-{max(times):.2f})"]
            for name, times in steps.items()
        ],
    )
    return table, f"Step-time ratio cached / plain: **{cached / plain:.2f}**"


if __name__ == "__main__":
    main()
