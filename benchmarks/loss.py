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


def worker(implementation, batch_size, num_views, dim, repeats, block_size):
    """Times forward + backward in this process; prints one JSON line."""
    import numpy as np
    import tensorflow as tf

    from benchmarks.common import peak_rss_mb
    from supcon_tf import supervised_contrastive_loss

    rng = np.random.default_rng(0)
    features = tf.constant(rng.normal(size=(batch_size, num_views, dim)).astype("float32"))
    labels = tf.constant(rng.integers(0, 10, size=batch_size))

    if implementation == "matmul":
        views = tf.reshape(features, [-1, dim])

        @tf.function
        def step(labels, features):
            return tf.reduce_sum(tf.matmul(views, views, transpose_b=True)[:1]), views

    else:

        def loss_of(labels, features):
            if implementation == "baseline":
                return plain_dense_supcon(labels, features)
            return tf.reduce_mean(
                supervised_contrastive_loss(
                    labels, features, implementation=implementation, block_size=block_size
                )
            )

        @tf.function
        def step(labels, features):
            with tf.GradientTape() as tape:
                tape.watch(features)
                loss = loss_of(labels, features)
            return loss, tape.gradient(loss, features)

    rss_before = peak_rss_mb()
    loss, gradient = step(labels, features)
    gradient.numpy()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        loss, gradient = step(labels, features)
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


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default=DEFAULT_SIZES, help="batch x views, comma separated")
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per configuration")
    parser.add_argument("--implementations", default=",".join(IMPLEMENTATIONS))
    parser.add_argument("--block-size", type=int, default=None)
    parser.add_argument(
        "--max-dense-views",
        type=int,
        default=16384,
        help="skip baseline/dense above this many views N (their N x N matrices)",
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
    rows = []
    header = [
        "batch x views (N)",
        "implementation",
        "fwd+bwd median s (min-max)",
        "vs baseline",
        "peak RSS MB",
        "RSS before loss MB",
        "floor s",
    ]
    for batch, views in parse_sizes(args.sizes):
        num = batch * views
        matmul_args = ["benchmarks/loss.py", "--worker", "matmul", str(batch), str(views)]
        matmul = run_child([*matmul_args, str(args.dim), "--repeats", "3"])
        matmul_seconds = statistics.median(matmul["times"])
        rate = 2 * num * num * args.dim / matmul_seconds
        baseline_seconds = None
        for implementation in implementations:
            if implementation != "blocked" and num > args.max_dense_views:
                continue
            command = [
                "benchmarks/loss.py",
                "--worker",
                implementation,
                str(batch),
                str(views),
                str(args.dim),
                "--repeats",
                str(args.repeats if num <= 16384 else 1),
            ]
            if args.block_size:
                command += ["--block-size", str(args.block_size)]
            report = run_child(command)
            seconds = statistics.median(report["times"])
            if implementation == "baseline":
                baseline_seconds = seconds
            products = 4 if implementation == "blocked" else 3
            floor = products * 2 * num * num * args.dim / rate
            speedup = f"{baseline_seconds / seconds:.2f}x" if baseline_seconds else "-"
            row = [
                f"{batch} x {views} ({num})",
                implementation,
                f"{seconds:.3f} ({min(report['times']):.3f}-{max(report['times']):.3f})",
                speedup,
                f"{report['peak_rss_mb']:.0f}",
                f"{report['rss_before_mb']:.0f}",
                f"{floor:.3f}",
            ]
            rows.append(row)
            print(" | ".join(row), flush=True)
        print(
            f"matmul [{num}x{args.dim}] x [{args.dim}x{num}]: {matmul_seconds:.4f} s "
            f"= {rate / 1e9:.0f} GFLOP/s",
            flush=True,
        )
        rows.append([f"{batch} x {views} ({num})", "matmul rate", f"{rate / 1e9:.0f} GFLOP/s"])
        rows[-1] += [""] * (len(header) - len(rows[-1]))
    table = markdown_table(header, rows)
    print(table)
    if not args.no_append:
        notes = (
            "Forward + backward of the mean loss (integer labels, 10 classes, D = "
            f"{args.dim}, temperature 0.1) in `tf.function`, each configuration in a fresh "
            "process; peak RSS is that process's `ru_maxrss` (includes TensorFlow itself, "
            "see 'RSS before loss'). 'floor s' = products' FLOPs (3 x 2 N^2 D dense, 4 x "
            "for blocked, which recomputes the forward product) / the measured rate of a "
            "same-shaped [N, D] x [D, N] matmul."
        )
        append_results("Loss: time and memory vs N", " ".join(sys.argv), table + "\n\n" + notes)


if __name__ == "__main__":
    main()
