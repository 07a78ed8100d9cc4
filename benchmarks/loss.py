"""Loss time and peak memory versus batch size: blocked vs dense vs a plain TF baseline.

    python benchmarks/loss.py                       # the full table, appended to RESULTS.md
    python benchmarks/loss.py --sizes 4096x2 --repeats 3 --no-append

Each (implementation, size) runs forward + backward of the mean SupCon loss (integer
labels over 10 classes, `summation="out"`, `contrast_mode="all"`, temperature 0.1)
inside `tf.function`, in its own fresh process, so that the process's peak resident
memory (`ru_maxrss`) is that configuration's alone. Implementations:

* `baseline`: the usual dense formulation (as in the widely used PyTorch SupConLoss:
  label mask tiled to N x N, logits minus row max, exp times the non-self mask,
  log-probabilities, masked mean), transcribed to TensorFlow, gradients by autodiff.
* `dense`, `blocked`: `supcon_tf.supervised_contrastive_loss(implementation=...)`.

The table also states the floor: the products' FLOPs (2 N^2 D forward, twice that
backward; the blocked kernel recomputes the forward product) at the measured rate of a
same-shaped matmul on this machine.
"""

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

IMPLEMENTATIONS = ("baseline", "dense", "blocked")
DEFAULT_SIZES = "1024x2,2048x2,4096x2,8192x2,16384x2,65536x2"


def plain_dense_supcon(labels, features, temperature=0.1):
    """The usual dense SupCon formulation (PyTorch-style), written in TensorFlow."""
    import tensorflow as tf

    batch_size, num_views = tf.shape(features)[0], features.shape[1]
    features = tf.math.l2_normalize(features, axis=-1)
    labels = tf.reshape(labels, [-1, 1])
    mask = tf.cast(tf.equal(labels, tf.transpose(labels)), tf.float32)
    contrast_feature = tf.concat(tf.unstack(features, axis=1), axis=0)
    anchor_dot_contrast = tf.matmul(contrast_feature, contrast_feature, transpose_b=True)
    anchor_dot_contrast = anchor_dot_contrast / temperature
    logits = anchor_dot_contrast - tf.stop_gradient(
        tf.reduce_max(anchor_dot_contrast, axis=1, keepdims=True)
    )
    mask = tf.tile(mask, [num_views, num_views])
    logits_mask = 1.0 - tf.eye(batch_size * num_views)
    mask = mask * logits_mask
    exp_logits = tf.exp(logits) * logits_mask
    log_prob = logits - tf.math.log(tf.reduce_sum(exp_logits, axis=1, keepdims=True))
    mean_log_prob_pos = tf.reduce_sum(mask * log_prob, axis=1) / tf.reduce_sum(mask, axis=1)
    return -tf.reduce_mean(mean_log_prob_pos)


def make_step(implementation, labels, features, block_size=None):
    """A `tf.function` computing the mean loss and its gradient for the features."""
    import tensorflow as tf

    from supcon_tf import supervised_contrastive_loss

    def loss_of():
        if implementation == "baseline":
            return plain_dense_supcon(labels, features)
        per_sample = supervised_contrastive_loss(
            labels, features, implementation=implementation, block_size=block_size
        )
        return tf.reduce_mean(per_sample)

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            tape.watch(features)
            loss = loss_of()
        return loss, tape.gradient(loss, features)

    return step


def matmul_rates(num, dim, repeats):
    """Best-of-`repeats` GFLOP/s of the loss's product shapes (whole and one 256-row block)."""
    import numpy as np
    import tensorflow as tf

    rng = np.random.default_rng(0)
    views = tf.constant(rng.normal(size=(num, dim)).astype("float32"))
    block = views[: min(256, num)]
    similarities = tf.constant(rng.random((min(256, num), num)).astype("float32"))
    shapes = {}
    if num <= 16384:  # the whole [N, N] product (1 GB at N = 16384)
        shapes["full [N,D]x[D,N]"] = (lambda: tf.matmul(views, views, transpose_b=True), num * num)
    shapes.update(
        {
            "block [256,D]x[D,N]": (
                lambda: tf.matmul(block, views, transpose_b=True),
                block.shape[0] * num,
            ),
            "block [256,N]x[N,D]": (lambda: tf.matmul(similarities, views), block.shape[0] * num),
        }
    )
    rates = {}
    for name, (product, pairs) in shapes.items():
        function = tf.function(lambda product=product: tf.reduce_sum(product()[:1]))
        function().numpy()
        best = min(timed(function) for _ in range(repeats))
        rates[name] = 2 * pairs * dim / best / 1e9
    return rates


def timed(function):
    start = time.perf_counter()
    function().numpy()
    return time.perf_counter() - start


def worker(implementation, batch_size, num_views, dim, repeats, block_size):
    """Times forward + backward in this process; prints one JSON line."""
    import numpy as np
    import tensorflow as tf

    from benchmarks.common import peak_rss_mb

    rng = np.random.default_rng(0)
    features = tf.constant(rng.normal(size=(batch_size, num_views, dim)).astype("float32"))
    labels = tf.constant(rng.integers(0, 10, size=batch_size))

    if implementation == "matmul":
        print(json.dumps(matmul_rates(batch_size * num_views, dim, repeats)))
        return

    step = make_step(implementation, labels, features, block_size)
    rss_before = peak_rss_mb()
    if repeats > 0:  # warm-up (tracing); repeats=0 times the first call alone
        loss, gradient = step()
        gradient.numpy()
    times = []
    for _ in range(max(repeats, 1)):
        start = time.perf_counter()
        loss, gradient = step()
        gradient.numpy()
        times.append(time.perf_counter() - start)
    print(
        json.dumps(
            {"times": times, "loss": float(loss), "rss_before_mb": rss_before},
        )
    )


def parse_sizes(text):
    sizes = []
    for item in text.split(","):
        batch, _, views = item.strip().partition("x")
        if not batch.isdigit() or not views.isdigit():
            raise ValueError(f"--sizes items must look like 4096x2 (batch x views), got {item!r}.")
        sizes.append((int(batch), int(views)))
    return sizes


def in_process_table(sizes, dim, implementations, repeats, block_size):
    """Times all implementations interleaved in this process (crossover; no memory)."""
    import numpy as np
    import tensorflow as tf

    rows = []
    for batch, views in sizes:
        rng = np.random.default_rng(0)
        features = tf.constant(rng.normal(size=(batch, views, dim)).astype("float32"))
        labels = tf.constant(rng.integers(0, 10, size=batch))
        steps = {name: make_step(name, labels, features, block_size) for name in implementations}
        times = {name: [] for name in implementations}
        for step in steps.values():
            step()[1].numpy()
        for _ in range(repeats):
            for name, step in steps.items():
                times[name].append(timed(lambda step=step: step()[1]))
        medians = {name: statistics.median(values) for name, values in times.items()}
        fastest = min(medians, key=medians.get)
        row = [f"{batch} x {views} ({batch * views})"]
        row += [f"{medians[name]:.4f}" for name in implementations] + [fastest]
        rows.append(row)
        print(" | ".join(row), flush=True)
    return ["batch x views (N)", *[f"{name} s" for name in implementations], "fastest"], rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default=DEFAULT_SIZES, help="batch x views, comma separated")
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3, help="timed calls per process")
    parser.add_argument("--rounds", type=int, default=3, help="fresh-process sweeps (medians)")
    parser.add_argument("--implementations", default=",".join(IMPLEMENTATIONS))
    parser.add_argument("--block-size", type=int, default=None)
    parser.add_argument(
        "--max-dense-views",
        type=int,
        default=16384,
        help="skip dense above this many views N (its N x N matrices)",
    )
    parser.add_argument(
        "--max-baseline-views",
        type=int,
        default=16384,
        help="skip the baseline above this many views N (about 9 GB at N = 16384)",
    )
    parser.add_argument(
        "--in-process",
        action="store_true",
        help="time the implementations interleaved in one process (crossover table, no memory)",
    )
    parser.add_argument("--no-append", action="store_true", help="do not write RESULTS.md")
    parser.add_argument("--worker", nargs=4, metavar=("IMPL", "BATCH", "VIEWS", "DIM"))
    args = parser.parse_args(argv)

    if args.worker:
        implementation, batch, views, dim = args.worker
        worker(implementation, int(batch), int(views), int(dim), args.repeats, args.block_size)
        return

    from benchmarks.common import append_results, markdown_table, run_child

    implementations = args.implementations.split(",")
    unknown = set(implementations) - set(IMPLEMENTATIONS)
    if unknown:
        raise ValueError(
            f"Unknown --implementations {sorted(unknown)}; expected {IMPLEMENTATIONS}."
        )
    sizes = parse_sizes(args.sizes)
    if args.in_process:
        header, rows = in_process_table(
            sizes, args.dim, implementations, args.repeats * args.rounds, args.block_size
        )
        table = markdown_table(header, rows)
        print(table)
        if not args.no_append:
            notes = (
                "Forward + backward median seconds, all implementations interleaved in one "
                "process (so that load from other jobs hits them alike); no memory figures."
            )
            append_results(
                "Loss: dense/blocked crossover", " ".join(sys.argv), table + "\n\n" + notes
            )
        return

    results = {}
    rates = {}
    failures = []
    for round_index in range(args.rounds):
        for batch, views in sizes:
            num = batch * views
            if round_index == 0:
                matmul_command = [
                    "benchmarks/loss.py",
                    "--worker",
                    "matmul",
                    str(batch),
                    str(views),
                ]
                rates[num] = run_child([*matmul_command, str(args.dim), "--repeats", "3"])
                rates[num].pop("peak_rss_mb")
                print(f"N={num} matmul GFLOP/s: {rates[num]}", flush=True)
            for implementation in implementations:
                limit = {"baseline": args.max_baseline_views, "dense": args.max_dense_views}
                if num > limit.get(implementation, num):
                    continue
                huge = num > 16384
                if huge and round_index > 0:
                    continue  # minutes per call: one call, one round
                command = ["benchmarks/loss.py", "--worker", implementation, str(batch)]
                command += [
                    str(views),
                    str(args.dim),
                    "--repeats",
                    "0" if huge else str(args.repeats),
                ]
                if args.block_size:
                    command += ["--block-size", str(args.block_size)]
                try:
                    report = run_child(command)
                except RuntimeError as error:  # e.g. out of memory: report it, go on
                    print(f"{batch}x{views} {implementation} failed: {error}", flush=True)
                    failures.append(f"{batch} x {views} {implementation}: {str(error)[-300:]}")
                    continue
                entry = results.setdefault((batch, views, implementation), {"times": [], "rss": []})
                entry["times"] += report["times"]
                entry["rss"].append(report["peak_rss_mb"])
                entry["before"] = report["rss_before_mb"]
                print(
                    f"round {round_index} {batch}x{views} {implementation}: "
                    f"{statistics.median(report['times']):.3f} s, {report['peak_rss_mb']:.0f} MB",
                    flush=True,
                )

    header = [
        "batch x views (N)",
        "implementation",
        "fwd+bwd s, median (min-max)",
        "speed-up vs baseline",
        "peak RSS MB, median (max)",
        "RSS before loss MB",
        "floor s (% of time)",
    ]
    rows = []
    for batch, views in sizes:
        num = batch * views
        best_rate = max(rates[num].values()) * 1e9
        floor = 3 * 2 * num * num * args.dim / best_rate
        baseline = results.get((batch, views, "baseline"))
        baseline_seconds = statistics.median(baseline["times"]) if baseline else None
        for implementation in implementations:
            entry = results.get((batch, views, implementation))
            if entry is None:
                continue
            seconds = statistics.median(entry["times"])
            speedup = f"{baseline_seconds / seconds:.2f}x" if baseline_seconds else "-"
            rows.append(
                [
                    f"{batch} x {views} ({num})",
                    implementation,
                    f"{seconds:.3f} ({min(entry['times']):.3f}-{max(entry['times']):.3f})"
                    + (f", n={len(entry['times'])}" if len(entry["times"]) < 3 else ""),
                    speedup,
                    f"{statistics.median(entry['rss']):.0f} ({max(entry['rss']):.0f})",
                    f"{entry['before']:.0f}",
                    f"{floor:.3f} ({100 * floor / seconds:.0f}%)",
                ]
            )
        rate_text = ", ".join(f"{name} {value:.0f}" for name, value in rates[num].items())
        rows.append([f"{batch} x {views} ({num})", "matmul GFLOP/s", rate_text, "", "", "", ""])
    table = markdown_table(header, rows)
    print(table)
    if not args.no_append:
        notes = (
            "Forward + backward of the mean loss (integer labels, 10 classes, D = "
            f"{args.dim}, temperature 0.1) in `tf.function`; every configuration in a fresh "
            f"process, {args.rounds} interleaved rounds of {args.repeats} timed calls after a "
            "warm-up (N > 16384: one call, one round, tracing included). Peak RSS is that "
            "process's `ru_maxrss` (TensorFlow itself and the inputs are in 'RSS before "
            "loss'). Floor = 3 products x 2 N^2 D FLOPs (forward, and two backward) at the "
            "best measured matmul rate of the loss's shapes (listed per N); the blocked "
            "kernel also recomputes the forward product in the backward pass (4 products)."
        )
        if failures:
            notes += "\n\nFailed runs:\n" + "\n".join(f"- {failure}" for failure in failures)
        append_results("Loss: time and memory vs N", " ".join(sys.argv), table + "\n\n" + notes)


if __name__ == "__main__":
    main()
