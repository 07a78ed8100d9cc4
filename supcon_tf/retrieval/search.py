"""Exact k-nearest-neighbour search over a large gallery, block by block.

`nearest_neighbors(queries, references, k)` returns, for every query row, the `k`
reference rows with the highest similarity (cosine or dot product) and their scores.
The `[Q, N]` score matrix is never formed: the references are read one block of
`block_size` rows at a time (1024 by default) against the queries in blocks (4096 rows by
default); each tile of scores is one matrix product, and a running top-k per query is
merged with the candidates of each tile. Memory is the queries, the `[Q, k]` result and
a few copies of one tile (16 MB at the default), whatever the size of the gallery, which can
be a `numpy.memmap` of any float dtype (blocks are converted to float32 as they are read).

The merge is cheap because after the first blocks almost no score beats a query's
current k-th best: a tile is compared with each query's k-th best score, and only the few
scores above it are merged. Ties: among equal scores, the lower reference index comes
first, always (as if the full score row were sorted by `(-score, index)`); scores are
float32 and compared as computed.

Example:

>>> import numpy as np
>>> references = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [2.0, 0.0]])
>>> indices, scores = nearest_neighbors([[1.0, 0.1]], references, k=3)
>>> indices.tolist()
[[0, 3, 2]]
>>> [round(float(score), 4) for score in scores[0]]
[0.995, 0.995, 0.774]
"""

import numpy as np

from supcon_tf import checks
from supcon_tf.errors import UsageError

METRICS = ("cosine", "dot")
BACKENDS = ("exact", "faiss")
# (query rows, reference rows) of one tile: a 16 MB tile, measured fastest on a 2-core CPU.
DEFAULT_BLOCK_SIZE = (4096, 1024)

# A padding index for empty top-k slots: sorts after every real index.
_NO_INDEX = np.iinfo(np.int64).max
_FLOAT32_MAX = float(np.finfo(np.float32).max)


def nearest_neighbors(
    queries,
    references,
    k,
    metric="cosine",
    block_size=DEFAULT_BLOCK_SIZE,
    exclude_self=False,
    backend="exact",
):
    """The `k` most similar reference rows of every query row, exactly, in bounded memory.

    Scores are `q . r / (|q| |r|)` for `metric="cosine"` and `q . r` for `metric="dot"`,
    computed in float32. Each query's neighbours come sorted by decreasing score; equal
    scores are ordered by increasing reference index (deterministic, whatever the block
    size).

    Args:
        queries: `[Q, D]` array-like of floats.
        references: `[N, D]` array-like of floats (the gallery); a `numpy.memmap` works
            and is read one block at a time.
        k: how many neighbours per query, `1 <= k <= N` (`N - 1` with `exclude_self`).
        metric: `"cosine"` (rows are L2-normalised first; a zero row is an error) or
            `"dot"`.
        block_size: the rows scored at once: a pair `(query rows, reference rows)` or one
            int for both. The peak extra memory is a few times `4 * query rows * reference
            rows` bytes (about 100 MB at the default `(4096, 1024)`).
        exclude_self: the queries are the gallery (`Q == N`, row `i` of `queries` is row
            `i` of `references`): leave each query's own row out of its neighbours.
        backend: `"exact"` (this search) or `"faiss"` (FAISS `IndexFlatIP`, needs
            `pip install supcon_tf[faiss]`; it copies the gallery into the index).

    Returns:
        `(indices, scores)`: `[Q, k]` int64 reference row indices and `[Q, k]` float32
        scores, best first.

    Raises:
        UsageError: a wrong shape or rank, dimensions that differ, `k` larger than the
            gallery, NaN or infinite values, a zero row under cosine, scores that would
            overflow float32, an unknown metric or backend.

    Example:

    >>> import numpy as np
    >>> gallery = np.eye(3)
    >>> nearest_neighbors(gallery, gallery, k=1, exclude_self=True)[0].tolist()
    [[1], [0], [0]]
    """
    metric = checks.choice("metric", metric, METRICS)
    backend = checks.choice("backend", backend, BACKENDS)
    block_size = block_shape(block_size)
    exclude_self = checks.boolean("exclude_self", exclude_self)
    queries = as_embeddings("queries", queries)
    references = as_embeddings("references", references)
    check_dimensions(queries, references)
    if exclude_self and queries.shape[0] != references.shape[0]:
        raise UsageError(
            f"`exclude_self=True` means the queries are the gallery, but there are "
            f"{queries.shape[0]} queries and {references.shape[0]} references; pass the same "
            "array twice, or `exclude_self=False` for separate sets."
        )
    available = references.shape[0] - int(exclude_self)
    k = checks.integer("k", k, minimum=1)
    if k > available:
        raise UsageError(
            f"`k={k}` is larger than the gallery: there are only {available} references"
            f"{' besides each query itself' if exclude_self else ''}; pass k <= {available}."
        )
    check_values(queries, references, metric, block_size)
    self_indices = np.arange(queries.shape[0]) if exclude_self else None
    if backend == "faiss":
        from supcon_tf.retrieval import faiss_backend

        faiss_backend.load()  # Before any copy of the gallery.
        return faiss_backend.search(
            prepare(queries, metric), prepare(references, metric), k, self_indices
        )
    return top_k(queries, references, k, metric, block_size, self_indices)


# ----------------------------------------------------------------------------- checks


def as_embeddings(name, values):
    """`values` as a 2-D float array `[rows, dim]` with at least one row, else `UsageError`.

    A float array (a memmap too) is kept as it is, not copied: blocks of it become float32
    as they are read. Other numbers (bfloat16 included) become float32 here.
    """
    if not (isinstance(values, np.ndarray) and values.dtype.kind == "f"):
        values = np.asarray(values)
        if values.dtype.name == "bfloat16":  # a mixed_bfloat16 model's outputs
            values = values.astype(np.float32)
        if values.dtype.kind not in "iuf":
            raise UsageError(
                f"`{name}` must hold real numbers (an [N, dim] float array), got dtype "
                f"{values.dtype}."
            )
    if values.ndim != 2:
        raise UsageError(
            f"`{name}` must be a 2-D [N, dim] array of embeddings (one row each), got "
            f"shape {values.shape}; reshape it, e.g. `embeddings.reshape(len(embeddings), -1)`."
        )
    if values.shape[0] == 0 or values.shape[1] == 0:
        raise UsageError(f"`{name}` is empty (shape {values.shape}); pass at least one row.")
    if values.dtype.kind != "f":
        values = values.astype(np.float32)
    return values


def check_dimensions(queries, references):
    if queries.shape[1] != references.shape[1]:
        raise UsageError(
            f"`queries` have dimension {queries.shape[1]} but `references` have "
            f"{references.shape[1]}; embed both with the same encoder."
        )


def block_shape(block_size):
    """`block_size` (an int, or a pair of ints) as `(query rows, reference rows)`."""
    if isinstance(block_size, (tuple, list)) and len(block_size) == 2:
        return tuple(checks.integer("block_size", rows, minimum=1) for rows in block_size)
    if isinstance(block_size, (tuple, list)):
        raise UsageError(
            f"`block_size` must be an int or a pair (query rows, reference rows), got "
            f"{block_size!r}."
        )
    rows = checks.integer("block_size", block_size, minimum=1)
    return rows, rows


def check_values(queries, references, metric, block_size):
    """Finite values, no zero row under cosine, no float32 overflow under dot.

    Reads both arrays once, one block at a time.
    """
    query_norm = _largest_norm("queries", queries, metric, block_size[0])
    reference_norm = _largest_norm("references", references, metric, block_size[1])
    if metric == "dot" and query_norm * reference_norm > _FLOAT32_MAX:
        raise UsageError(
            f"dot products of these embeddings reach {query_norm * reference_norm:.3g}, "
            "beyond float32; scale them down or use metric='cosine'."
        )


def _largest_norm(name, embeddings, metric, block_size):
    largest = 0.0
    for start in range(0, embeddings.shape[0], block_size):
        block = embeddings[start : start + block_size]
        largest = max(largest, _check_block(name, block, start, metric))
    return largest


def _check_block(name, block, start, metric):
    """Checks one block; returns its largest row norm."""
    block = np.asarray(block, dtype=np.float64)
    finite = np.isfinite(block).all(axis=1)
    if not finite.all():
        row = start + int(np.argmin(finite))
        raise UsageError(
            f"`{name}` row {row} holds NaN or infinite values; drop or fix those rows."
        )
    norms = np.sqrt(np.einsum("ij,ij->i", block, block))
    if metric == "cosine" and not norms.all():
        row = start + int(np.argmin(norms))
        raise UsageError(
            f"`{name}` row {row} is all zeros: its cosine similarity is undefined; drop it, "
            "or use metric='dot'."
        )
    return float(norms.max())


# ----------------------------------------------------------------------------- the search


def prepare(block, metric):
    """A block of embeddings as C-contiguous float32, L2-normalised for cosine."""
    if metric == "cosine":
        block = np.asarray(block, dtype=np.float64)
        block = block / np.sqrt(np.einsum("ij,ij->i", block, block))[:, None]
    return np.ascontiguousarray(block, dtype=np.float32)


def score_blocks(queries, references, metric, block_size, self_indices=None):
    """Yields `(query_slice, reference_start, scores)` tiles covering the `[Q, N]` scores.

    The references are the outer loop (each gallery block is read and normalised once);
    `scores` is a float32 `[query block, reference block]` view of one reused buffer, with
    `-inf` where a query meets its own row (`self_indices[i]` is query i's own row).
    Queries that fit in one block are prepared once; more are prepared a block at a time
    (a small cost next to the product), so that no full copy of them is made.
    """
    query_rows, reference_rows = block_size
    query_blocks = [
        slice(start, min(start + query_rows, queries.shape[0]))
        for start in range(0, queries.shape[0], query_rows)
    ]
    single = prepare(queries, metric) if len(query_blocks) == 1 else None
    buffer = np.empty(query_rows * reference_rows, dtype=np.float32)
    for reference_start in range(0, references.shape[0], reference_rows):
        block = prepare(references[reference_start : reference_start + reference_rows], metric)
        for rows in query_blocks:
            query_block = single if single is not None else prepare(queries[rows], metric)
            scores = buffer[: query_block.shape[0] * block.shape[0]]
            scores = scores.reshape(query_block.shape[0], block.shape[0])
            np.matmul(query_block, block.T, out=scores)
            if self_indices is not None:
                _mask_self(scores, self_indices[rows] - reference_start)
            yield rows, reference_start, scores


def _mask_self(scores, columns):
    inside = (columns >= 0) & (columns < scores.shape[1])
    scores[np.flatnonzero(inside), columns[inside]] = -np.inf


def top_k(queries, references, k, metric, block_size, self_indices=None):
    """The exact search on checked arguments: `(indices [Q, k] int64, scores [Q, k] float32)`."""
    best_scores = np.full((queries.shape[0], k), -np.inf, dtype=np.float32)
    best_indices = np.full((queries.shape[0], k), _NO_INDEX, dtype=np.int64)
    for rows, reference_start, scores in score_blocks(
        queries, references, metric, block_size, self_indices
    ):
        merge_block(best_scores[rows], best_indices[rows], scores, reference_start)
    return best_indices, best_scores


def merge_block(best_scores, best_indices, scores, reference_start):
    """Merges one tile of scores into the running top-k (both `[rows, k]`, in place).

    Every index of the tile is above every index already kept, so a tile score enters only
    when it beats the row's k-th best strictly. Rows whose tile maximum does not are
    skipped after one vectorised max; a row with more than k entering scores first keeps
    only those at or above its k-th largest tile score (ties kept, for the sort).
    """
    k = best_scores.shape[1]
    threshold = best_scores[:, k - 1]
    changed = np.flatnonzero(scores.max(axis=1) > threshold)
    if changed.size == 0:
        return
    scores = scores[changed]
    above = scores > threshold[changed, None]
    crowded = np.flatnonzero(np.count_nonzero(above, axis=1) > k)
    if crowded.size:
        crowded_scores = scores[crowded]
        kth = np.partition(crowded_scores, scores.shape[1] - k, axis=1)[:, scores.shape[1] - k]
        above[crowded] = crowded_scores >= kth[:, None]
    # A flat index is much faster to find than a 2-D one; split it afterwards.
    rows, columns = np.divmod(np.flatnonzero(above), scores.shape[1])
    counts = np.bincount(rows, minlength=changed.size)
    width = k + int(counts.max())
    candidate_scores = np.full((changed.size, width), -np.inf, dtype=np.float32)
    candidate_indices = np.full((changed.size, width), _NO_INDEX, dtype=np.int64)
    candidate_scores[:, :k] = best_scores[changed]
    candidate_indices[:, :k] = best_indices[changed]
    starts = np.cumsum(counts) - counts
    position = k + np.arange(rows.size) - starts[rows]
    candidate_scores[rows, position] = scores[rows, columns]
    candidate_indices[rows, position] = reference_start + columns
    # Sorted by score, descending, then by index, ascending (lexsort's last key is primary).
    order = np.lexsort((candidate_indices, -candidate_scores), axis=1)[:, :k]
    best_scores[changed] = np.take_along_axis(candidate_scores, order, axis=1)
    best_indices[changed] = np.take_along_axis(candidate_indices, order, axis=1)
