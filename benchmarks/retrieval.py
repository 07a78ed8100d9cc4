"""Exact top-k search at scale: time and peak memory against FAISS `IndexFlatIP`, same process.

The question: can `supcon_tf.retrieval.nearest_neighbors` search a gallery of a million
embeddings exactly, in the gallery's memory plus at most 1 GB, within 2x the time of
FAISS's exact flat inner-product index on the same data?

    nice -n 10 python benchmarks/retrieval.py                    # 10,000 x 1,000,000 x 128
    python benchmarks/retrieval.py --queries 100 --references 20000

Protocol: float32 Gaussian queries and gallery from one seed, `metric="dot"` (what
`IndexFlatIP` computes), top-10, the default blocks (4096 queries x 1024 references). The blocked search runs first, so that the process's
peak resident memory (`ru_maxrss`) after it is the peak of the search itself; its extra
memory is that peak minus the resident memory just before the call (the data, Python,
NumPy and TensorFlow, which `import supcon_tf` loads). FAISS runs second on the same
arrays (its index holds a copy of the gallery). Agreement: the fraction of identical
neighbour indices and the largest score difference.
"""

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from supcon_tf.retrieval import nearest_neighbors  # noqa: E402
from supcon_tf.retrieval.search import DEFAULT_BLOCK_SIZE  # noqa: E402

MB = 2**20


def resident_mb():
    """Current resident memory of this process in MB (Linux `/proc/self/statm`)."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * resource.getpagesize() / MB


def peak_resident_mb():
    """Peak resident memory of this process so far in MB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def make_data(num_queries, num_references, dim, seed):
    rng = np.random.default_rng(seed)
    references = np.empty((num_references, dim), dtype=np.float32)
    for start in range(0, num_references, 65536):  # No float64 temporary of the gallery.
        stop = min(start + 65536, num_references)
        references[start:stop] = rng.standard_normal((stop - start, dim), dtype=np.float32)
    return rng.standard_normal((num_queries, dim), dtype=np.float32), references


def measure(num_queries, num_references, dim, k, block_size, seed):
    """Runs both searches; returns a dict of the figures (FAISS ones None without faiss)."""
    queries, references = make_data(num_queries, num_references, dim, seed)
    baseline = resident_mb()
    start = time.perf_counter()
    indices, scores = nearest_neighbors(queries, references, k, "dot", block_size=block_size)
    seconds = time.perf_counter() - start
    result = {
        "queries": num_queries,
        "references": num_references,
        "dim": dim,
        "k": k,
        "block_size": block_size,
        "gallery_mb": references.nbytes / MB,
        "baseline_rss_mb": baseline,
        # The kernel updates the peak lazily; it can lag the current figure by a little.
        "peak_rss_mb": max(peak_resident_mb(), resident_mb()),
        "seconds": seconds,
        "faiss_seconds": None,
        "time_ratio": None,
        "index_agreement": None,
        "max_score_difference": None,
    }
    try:
        import faiss
    except ImportError:
        return result
    start = time.perf_counter()
    index = faiss.IndexFlatIP(dim)
    index.add(references)
    faiss_scores, faiss_indices = index.search(queries, k)
    result["faiss_seconds"] = time.perf_counter() - start
    result["time_ratio"] = seconds / result["faiss_seconds"]
    result["index_agreement"] = float(np.mean(indices == faiss_indices))
    result["max_score_difference"] = float(np.abs(scores - faiss_scores).max())
    return result


def table(result):
    """The figures as a Markdown table."""
    extra = result["peak_rss_mb"] - result["baseline_rss_mb"]
    faiss_cell = (
        "faiss-cpu not installed"
        if result["faiss_seconds"] is None
        else f"{result['faiss_seconds']:.1f} s"
    )
    ratio = "-" if result["time_ratio"] is None else f"{result['time_ratio']:.2f}"
    rows = [
        "| search | seconds | time / FAISS | peak RSS (MB) | extra over the data (MB) |",
        "|---|---|---|---|---|",
        f"| exact, blocked | {result['seconds']:.1f} | {ratio} | {result['peak_rss_mb']:.0f} "
        f"| {extra:.0f} |",
        f"| FAISS IndexFlatIP | {faiss_cell} | 1 | - | - |",
    ]
    return "\n".join(rows)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--queries", type=int, default=10_000)
    parser.add_argument("--references", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--query-block", type=int, default=DEFAULT_BLOCK_SIZE[0])
    parser.add_argument("--reference-block", type=int, default=DEFAULT_BLOCK_SIZE[1])
    parser.add_argument("--seed", type=int, default=0)
    arguments = parser.parse_args(argv)
    result = measure(
        arguments.queries,
        arguments.references,
        arguments.dim,
        arguments.k,
        (arguments.query_block, arguments.reference_block),
        arguments.seed,
    )
    print(
        f"{arguments.queries} queries, gallery {arguments.references} x {arguments.dim} float32 "
        f"({result['gallery_mb']:.0f} MB), top-{arguments.k}, blocks "
        f"{arguments.query_block} x {arguments.reference_block}; "
        f"RSS before the search {result['baseline_rss_mb']:.0f} MB; index agreement with FAISS "
        f"{result['index_agreement']}, largest score difference {result['max_score_difference']}"
    )
    print(table(result))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
