"""Loss time and peak memory versus batch size: blocked vs dense vs a plain TF baseline.

    python benchmarks/loss.py                       # the full table, appended to results/loss.md
    python benchmarks/loss.py --sizes 4096x2 --repeats 3 --no-append
    python benchmarks/loss.py --in-process --sizes 1024x2,4096x2 --rounds 5 --no-append
    python benchmarks/loss.py --memory --sizes 8192x2 --no-append  # peak RSS per setting
    python benchmarks/loss.py --memory --heavy --no-append  # adds 65536 x 2 in model.fit

Each (implementation, size) runs forward + backward of the mean SupCon loss (integer
labels over 10 classes, `summation="out"`, `contrast_mode="all"`, temperature 0.1)
inside `tf.function`, in its own fresh process, so that the process's peak resident
memory (`ru_maxrss`) is that configuration's alone. Implementations:

* `baseline`: the usual dense formulation (as in the widely used PyTorch SupConLoss:
  label mask tiled to N x N, logits minus row max, exp times the non-self mask,
  log-probabilities, masked mean), transcribed to TensorFlow, gradients by autodiff.
* `dense`, `blocked`, `auto`: `supcon_tf.supervised_contrastive_loss(implementation=...)`.

`--in-process` times the implementations alternately in one process and reports each
as the median of its per-round ratios to the baseline (load from other jobs hits both
sides of a ratio alike), and its ratio to the floor measured in the same process.

`--memory` reports the peak resident memory of fresh processes that compute the loss
(`implementation="auto"`) as users do: in a `tf.function` with static shapes, called
eagerly under a `GradientTape`, in `model.fit` on precomputed features with a partial
last batch (the traced batch size is unknown), and in `model.fit` under a
`MirroredStrategy` of two logical CPU devices with the embeddings gathered across them.

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

IMPLEMENTATIONS = ("baseline", "dense", "blocked", "auto")
MEMORY_MODES = ("function", "eager", "fit", "mirrored")
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


def in_process_table(sizes, dim, implementations, repeats, block_size, limits=None):
    """Times the implementations alternately in this process; ratios to baseline and floor.

    Each round times every implementation once; an implementation's figure is the median
    over rounds of (its time / the baseline's time in that round). The floor is three
    products at the best matmul rate measured in this process, before and after.
    `limits` maps an implementation to the most views N it runs at (its N x N matrices);
    above that its cell is "-".
    """
    limits = limits or {}
    import numpy as np
    import tensorflow as tf

    rows = []
    summaries = []
    for batch, views in sizes:
        num = batch * views
        rng = np.random.default_rng(0)
        features = tf.constant(rng.normal(size=(batch, views, dim)).astype("float32"))
        labels = tf.constant(rng.integers(0, 10, size=batch))
        rate = max(matmul_rates(num, dim, 3).values())
        running = [name for name in implementations if num <= limits.get(name, num)]
        steps = {name: make_step(name, labels, features, block_size) for name in running}
        times = {name: [] for name in running}
        for step in steps.values():
            step()[1].numpy()
        for _ in range(repeats):
            for name, step in steps.items():
                times[name].append(timed(lambda step=step: step()[1]))
        rate = max(rate, *matmul_rates(num, dim, 3).values())
        floor = 3 * 2 * num * num * dim / (rate * 1e9)
        row = [f"{batch} x {views} ({num})"]
        for name in implementations:
            if name not in times:
                row.append("-")
                continue
            seconds = statistics.median(times[name])
            cell = f"{seconds:.3f}"
            if "baseline" in times and name != "baseline":
                ratios = [
                    mine / theirs
                    for mine, theirs in zip(times[name], times["baseline"], strict=True)
                ]
                cell += f" ({statistics.median(ratios):.2f}x)"
            floor_ratio = seconds / floor
            row.append(f"{cell}, {floor_ratio:.1f}x floor")
        row.append(f"{floor:.3f} ({rate:.0f} GFLOP/s)")
        rows.append(row)
        summaries.append((f"{batch} x {views}", num, times))
        print(" | ".join(row), flush=True)
    header = ["batch x views (N)", *[f"{name} s (x baseline), x floor" for name in implementations]]
    return [*header, "floor s (matmul rate)"], rows, crossover_lines(summaries)


def crossover_lines(summaries):
    """The dense/blocked crossover and how "auto" compares with the faster kernel.

    Args:
        summaries: `(size label, N, {implementation: per-round seconds})` per size.

    Returns:
        Lines of text (none without both dense and blocked timed).
    """
    from supcon_tf.losses.kernel_choice import choose_implementation, default_budget

    timed_both = [item for item in summaries if {"dense", "blocked"} <= set(item[2])]
    if not timed_both:
        return []
    faster = {}
    for label, _, times in timed_both:
        ratios = [b / d for b, d in zip(times["blocked"], times["dense"], strict=True)]
        faster[label] = ("dense" if statistics.median(ratios) >= 1 else "blocked", ratios)
    dense_sizes = [label for label, _, _ in timed_both if faster[label][0] == "dense"]
    blocked_sizes = [label for label, _, _ in timed_both if faster[label][0] == "blocked"]
    lines = [
        "crossover: dense faster at "
        + (", ".join(dense_sizes) or "no size")
        + "; blocked faster at "
        + (", ".join(blocked_sizes) or "no size")
        + " (blocked / dense: "
        + ", ".join(
            f"{label} {statistics.median(faster[label][1]):.2f}x" for label, _, _ in timed_both
        )
        + ")"
    ]
    auto_cells = []
    for label, num, times in timed_both:
        # The benchmark's loss (every view an anchor, integer labels, summation "out") is
        # the case whose blocked kernel uses the symmetry, with its own default budget.
        picked = choose_implementation(
            "auto", num, num, memory_budget=default_budget(None, symmetric=True)
        )
        if "auto" in times:
            best = [min(d, b) for d, b in zip(times["dense"], times["blocked"], strict=True)]
            ratio = statistics.median(
                [mine / theirs for mine, theirs in zip(times["auto"], best, strict=True)]
            )
            auto_cells.append(f"{label} {picked} {ratio:.2f}x")
        else:
            auto_cells.append(f"{label} {picked}")
    lines.append(
        "auto (default budget) picks, and its time / the faster kernel's per round: "
        + ", ".join(auto_cells)
    )
    return lines


def memory_worker(mode, batch_size, num_views, dim):
    """Forward + backward (or one `model.fit` epoch) in this process; prints one JSON line."""
    if mode == "mirrored":
        import tensorflow as tf

        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(2)]
        )
    import keras
    import numpy as np
    import tensorflow as tf

    from benchmarks.common import peak_rss_mb
    from supcon_tf import SupervisedContrastiveLoss, supervised_contrastive_loss

    rng = np.random.default_rng(0)
    # model.fit gets one and a half batches: a full one, then a partial last one.
    samples = batch_size + batch_size // 2 if mode in ("fit", "mirrored") else batch_size
    features = rng.normal(size=(samples, num_views, dim)).astype("float32")
    labels = rng.integers(0, 10, size=samples)
    rss_before = peak_rss_mb()
    start = time.perf_counter()
    if mode == "function":
        step = make_step("auto", tf.constant(labels), tf.constant(features))
        step()[1].numpy()
    elif mode == "eager":
        variable = tf.constant(features)
        with tf.GradientTape() as tape:
            tape.watch(variable)
            loss = tf.reduce_mean(supervised_contrastive_loss(labels, variable))
        tape.gradient(loss, variable).numpy()
    else:
        strategy = (
            tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
            if mode == "mirrored"
            else tf.distribute.get_strategy()
        )
        with strategy.scope():
            model = keras.Sequential([keras.Input((num_views, dim)), keras.layers.Dense(dim)])
            model.compile(optimizer="sgd", loss=SupervisedContrastiveLoss(), jit_compile=False)
        model.fit(features, labels, batch_size=batch_size, epochs=1, verbose=0)
    seconds = time.perf_counter() - start
    print(json.dumps({"seconds": seconds, "rss_before_mb": rss_before}))


def memory_table(sizes, dim, heavy):
    """Peak RSS of a fresh process per (mode, size); 65536 x 2 in model.fit with --heavy."""
    from benchmarks.common import run_child

    cases = [(mode, batch, views) for batch, views in sizes for mode in MEMORY_MODES]
    if heavy:
        cases.append(("fit", 65536, 2))
    rows = []
    for mode, batch, views in cases:
        command = ["benchmarks/loss.py", "--memory-worker", mode, str(batch), str(views)]
        try:
            report = run_child([*command, str(dim)])
        except RuntimeError as error:
            rows.append([f"{batch} x {views}", mode, "failed", str(error)[-200:], ""])
            continue
        rows.append(
            [
                f"{batch} x {views}",
                mode,
                f"{report['peak_rss_mb']:.0f}",
                f"{report['rss_before_mb']:.0f}",
                f"{report['seconds']:.1f}",
            ]
        )
        print(" | ".join(rows[-1]), flush=True)
    header = ["batch x views", "setting", "peak RSS MB", "RSS before loss MB", "seconds"]
    return header, rows


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
    parser.add_argument(
        "--memory",
        action="store_true",
        help="peak RSS of fresh processes: tf.function, eager, model.fit, MirroredStrategy fit",
    )
    parser.add_argument(
        "--heavy",
        action="store_true",
        help="with --memory: also 65536 x 2 in model.fit (tens of minutes on 2 cores)",
    )
    parser.add_argument("--no-append", action="store_true", help="only print")
    parser.add_argument("--worker", nargs=4, metavar=("IMPL", "BATCH", "VIEWS", "DIM"))
    parser.add_argument("--memory-worker", nargs=4, metavar=("MODE", "BATCH", "VIEWS", "DIM"))
    args = parser.parse_args(argv)

    if args.worker:
        implementation, batch, views, dim = args.worker
        worker(implementation, int(batch), int(views), int(dim), args.repeats, args.block_size)
        return
    if args.memory_worker:
        mode, batch, views, dim = args.memory_worker
        if mode not in MEMORY_MODES:
            raise ValueError(f"Unknown memory mode {mode!r}; expected one of {MEMORY_MODES}.")
        memory_worker(mode, int(batch), int(views), int(dim))
        return

    from benchmarks.common import append_results, markdown_table, run_child

    implementations = args.implementations.split(",")
    unknown = set(implementations) - set(IMPLEMENTATIONS)
    if unknown:
        raise ValueError(
            f"Unknown --implementations {sorted(unknown)}; expected {IMPLEMENTATIONS}."
        )
    sizes = parse_sizes(args.sizes)
    if args.memory:
        header, rows = memory_table(sizes, args.dim, args.heavy)
        table = markdown_table(header, rows)
        print(table)
        if not args.no_append:
            append_results("Loss: peak memory as users call it", " ".join(sys.argv), table)
        return
    if args.in_process:
        limits = {"baseline": args.max_baseline_views, "dense": args.max_dense_views}
        header, rows, crossover = in_process_table(
            sizes, args.dim, implementations, args.repeats * args.rounds, args.block_size, limits
        )
        table = markdown_table(header, rows)
        if crossover:
            table += "\n\n" + "\n".join(f"- {line}" for line in crossover)
        print(table)
        if not args.no_append:
            notes = (
                "Forward + backward median seconds, all implementations alternating in one "
                "process; in brackets the median of the per-round ratios to the baseline; "
                "'x floor' is the median time over three products at the best matmul rate "
                "measured in the same process. No memory figures."
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
