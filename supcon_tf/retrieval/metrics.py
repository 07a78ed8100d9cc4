"""Retrieval metrics of embeddings, as metric-learning papers report them.

For each query, the references are ranked by decreasing similarity (ties: lower reference
index first, see `nearest_neighbors`), and a reference is *relevant* when it has the
query's label. With `R` the number of relevant references of the query:

* `precision_at_1`: 1 if the nearest reference is relevant;
* `recall_at_k`: 1 if any of the k nearest references is relevant (the Recall@k of the
  CUB-200-2011 / CARS196 / Stanford Online Products papers, not the IR recall);
* `r_precision`: the fraction of relevant references among the R nearest;
* `map_at_r`: `(1 / R) * sum_{i=1..R} P(i) * rel(i)`, with `rel(i)` 1 when the i-th
  nearest is relevant and `P(i)` the precision among the i nearest (Musgrave, Belongie and
  Lim 2020, "A Metric Learning Reality Check", section 3.2);
* `mean_reciprocal_rank`: `1 / rank` of the first relevant reference, exact over the
  whole gallery.

Each is averaged over the queries. Two settings: without references the queries are the
gallery, and each query's own row is left out (R counts the *other* rows of its class);
with references, the queries and the gallery are separate sets.

Queries without any relevant reference (R = 0: a class with one member in the same-set
setting, a label absent from the references otherwise) are left out of every average, as
pytorch-metric-learning's `AccuracyCalculator` does for its "lone query labels": no
ranking can retrieve what is not there, so a zero would say nothing about the embedding.
When no query has a relevant reference, the metrics are undefined and an error says so.

Example:

>>> import numpy as np
>>> embeddings = np.array([[1.0, 0.0], [0.8, 0.6], [0.6, 0.8], [0.0, 1.0]])
>>> metrics = retrieval_metrics(embeddings, [0, 0, 1, 1], ks=(1, 2))
>>> metrics["recall_at_1"], metrics["recall_at_2"], metrics["r_precision"]
(0.5, 1.0, 0.5)
>>> metrics["map_at_r"], metrics["mean_reciprocal_rank"]
(0.5, 0.75)
"""

import numpy as np

from supcon_tf import checks
from supcon_tf.errors import DataError, UsageError
from supcon_tf.retrieval.search import (
    DEFAULT_BLOCK_SIZE,
    METRICS,
    as_embeddings,
    block_shape,
    check_dimensions,
    check_values,
    score_blocks,
    top_k,
)

# Queries are ranked in chunks of at most this many (query, neighbour) entries.
_CHUNK_ENTRIES = 1 << 22


def retrieval_metrics(
    query_embeddings,
    query_labels,
    reference_embeddings=None,
    reference_labels=None,
    ks=(1, 2, 4, 8),
    metric="cosine",
    block_size=DEFAULT_BLOCK_SIZE,
):
    """Precision@1, Recall@k, R-precision, MAP@R and MRR of embeddings with labels.

    Definitions in the module docstring. The neighbours come from the exact blocked search
    (`nearest_neighbors`), `max(max(ks), R)` of them per query, a chunk of queries at a
    time, so that memory stays bounded for large sets; the mean reciprocal rank of a query
    whose first relevant reference lies deeper is found with one more pass over the
    gallery for those queries.

    Args:
        query_embeddings: `[Q, D]` floats.
        query_labels: `[Q]` class labels (integers or strings).
        reference_embeddings: `[N, D]` floats, or None: the queries are the gallery, and
            each query's own row is left out of its ranking.
        reference_labels: `[N]` labels; given exactly when `reference_embeddings` is.
        ks: the k of Recall@k, each `1 <= k <=` the gallery size (`Q - 1` without
            references).
        metric: `"cosine"` or `"dot"`, as in `nearest_neighbors`.
        block_size: rows scored at once (an int, or a pair: query rows, reference
            rows), as in `nearest_neighbors`.

    Returns:
        A flat dict of floats: `precision_at_1`, `recall_at_<k>` for each k (ascending),
        `r_precision`, `map_at_r`, `mean_reciprocal_rank`, each the mean over the queries
        that have at least one relevant reference (R > 0).

    Raises:
        UsageError: bad shapes, dimensions that differ, labels that do not match the rows,
            references without labels (or the reverse), a bad k, NaN or infinite values.
        DataError: no query has any relevant reference.

    Example:

    >>> import numpy as np
    >>> gallery = np.array([[1.0, 0.0], [0.0, 1.0], [0.7, 0.7]])
    >>> result = retrieval_metrics([[1.0, 0.1]], [1], gallery, [0, 1, 1], ks=(1, 2))
    >>> result["recall_at_1"], result["recall_at_2"], result["mean_reciprocal_rank"]
    (0.0, 1.0, 0.5)
    """
    metric = checks.choice("metric", metric, METRICS)
    block_size = block_shape(block_size)
    same_set = reference_embeddings is None
    if same_set != (reference_labels is None):
        raise UsageError(
            "pass `reference_embeddings` and `reference_labels` together (separate query and "
            "gallery sets), or neither (the queries are the gallery)."
        )
    queries = as_embeddings("query_embeddings", query_embeddings)
    query_labels = _as_labels("query_labels", query_labels, queries.shape[0])
    if same_set:
        references, reference_labels = queries, query_labels
    else:
        references = as_embeddings("reference_embeddings", reference_embeddings)
        check_dimensions(queries, references)
        reference_labels = _as_labels("reference_labels", reference_labels, references.shape[0])
    ks = _as_ks(ks, references.shape[0] - int(same_set), same_set)
    check_values(queries, references, metric, block_size)

    query_codes, reference_codes = _label_codes(query_labels, reference_labels)
    relevant_counts = np.bincount(reference_codes, minlength=query_codes.max() + 1)[query_codes]
    relevant_counts = relevant_counts - int(same_set)
    evaluated = np.flatnonzero(relevant_counts > 0)
    if evaluated.size == 0:
        raise DataError(
            "no query has a reference of its own class"
            f"{' besides itself' if same_set else ''}, so no retrieval metric is defined; "
            "check the labels (each class needs at least "
            f"{'two members' if same_set else 'one reference'})."
        )
    depth = min(references.shape[0] - int(same_set), max(ks[-1], int(relevant_counts.max())))
    chunk = max(1, _CHUNK_ENTRIES // depth)
    totals = dict.fromkeys(_names(ks), 0.0)
    for start in range(0, evaluated.size, chunk):
        rows = evaluated[start : start + chunk]
        self_indices = rows if same_set else None
        indices, _ = top_k(queries[rows], references, depth, metric, block_size, self_indices)
        relevant = reference_codes[indices] == query_codes[rows][:, None]
        ranks = _first_relevant_ranks(relevant)
        deeper = np.flatnonzero(ranks == 0)
        if deeper.size:
            ranks[deeper] = _ranks_beyond(
                queries[rows[deeper]],
                query_codes[rows[deeper]],
                None if self_indices is None else self_indices[deeper],
                references,
                reference_codes,
                metric,
                block_size,
            )
        for name, values in _per_query(relevant, relevant_counts[rows], ranks, ks).items():
            totals[name] += float(values.sum())
    return {name: total / evaluated.size for name, total in totals.items()}


def _names(ks):
    recalls = [f"recall_at_{k}" for k in ks]
    return ["precision_at_1", *recalls, "r_precision", "map_at_r", "mean_reciprocal_rank"]


def _per_query(relevant, relevant_counts, ranks, ks):
    """Each metric's value per query, from the `[queries, depth]` relevance of the ranking."""
    positions = np.arange(1, relevant.shape[1] + 1)
    within_r = positions[None, :] <= relevant_counts[:, None]
    hits_within_r = relevant & within_r
    precision_at_i = np.cumsum(relevant, axis=1) / positions[None, :]
    values = {"precision_at_1": relevant[:, 0].astype(np.float64)}
    for k in ks:
        values[f"recall_at_{k}"] = relevant[:, :k].any(axis=1).astype(np.float64)
    values["r_precision"] = hits_within_r.sum(axis=1) / relevant_counts
    values["map_at_r"] = (precision_at_i * hits_within_r).sum(axis=1) / relevant_counts
    values["mean_reciprocal_rank"] = 1.0 / ranks
    return values


def _first_relevant_ranks(relevant):
    """1-based rank of each row's first relevant neighbour, 0 when none is in the row."""
    return np.where(relevant.any(axis=1), np.argmax(relevant, axis=1) + 1, 0)


def _ranks_beyond(queries, query_codes, self_indices, references, reference_codes, metric, size):
    """Exact rank of the first relevant reference over the whole gallery (two passes).

    The first relevant reference in the `(-score, index)` order is the relevant one with
    the highest score (lowest index among equals); its rank is one plus the number of
    references before it in that order.
    """
    best_scores = np.full(queries.shape[0], -np.inf, dtype=np.float32)
    best_indices = np.zeros(queries.shape[0], dtype=np.int64)
    for rows, start, scores in score_blocks(queries, references, metric, size, self_indices):
        codes = reference_codes[start : start + scores.shape[1]]
        relevant_scores = np.where(codes[None, :] == query_codes[rows, None], scores, -np.inf)
        column = np.argmax(relevant_scores, axis=1)
        block_best = relevant_scores[np.arange(scores.shape[0]), column]
        better = block_best > best_scores[rows]
        best_scores[rows] = np.where(better, block_best, best_scores[rows])
        best_indices[rows] = np.where(better, start + column, best_indices[rows])
    ahead = np.zeros(queries.shape[0], dtype=np.int64)
    for rows, start, scores in score_blocks(queries, references, metric, size, self_indices):
        columns = start + np.arange(scores.shape[1])
        before = (scores > best_scores[rows, None]) | (
            (scores == best_scores[rows, None]) & (columns[None, :] < best_indices[rows, None])
        )
        ahead[rows] += np.count_nonzero(before, axis=1)
    return ahead + 1


def _as_labels(name, labels, rows):
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise UsageError(
            f"`{name}` must be a vector [N] of class labels, got shape {labels.shape}."
        )
    if labels.shape[0] != rows:
        raise UsageError(
            f"`{name}` has {labels.shape[0]} labels for {rows} embeddings; pass one label per row."
        )
    if labels.dtype.kind not in "iuUS":
        raise UsageError(
            f"`{name}` must hold integer or string class labels, got dtype {labels.dtype}."
        )
    return labels


def _label_codes(query_labels, reference_labels):
    """Both label vectors as integer codes of one shared vocabulary."""
    if (query_labels.dtype.kind in "iu") != (reference_labels.dtype.kind in "iu"):
        raise UsageError(
            "`query_labels` and `reference_labels` must be of one kind (both integers or both "
            f"strings), got {query_labels.dtype} and {reference_labels.dtype}."
        )
    _, codes = np.unique(np.concatenate([query_labels, reference_labels]), return_inverse=True)
    codes = codes.reshape(-1)
    return codes[: query_labels.shape[0]], codes[query_labels.shape[0] :]


def _as_ks(ks, gallery_size, same_set):
    if isinstance(ks, (int, np.integer)) and not isinstance(ks, bool):
        ks = (ks,)
    try:
        ks = tuple(ks)
    except TypeError:
        raise UsageError(f"`ks` must be a tuple of positive integers, got {ks!r}.") from None
    if not ks:
        raise UsageError("`ks` is empty; pass the k of Recall@k, e.g. ks=(1, 2, 4, 8).")
    ks = sorted({checks.integer("ks", k, minimum=1) for k in ks})
    if ks[-1] > gallery_size:
        raise UsageError(
            f"`ks` asks for Recall@{ks[-1]} but the gallery holds only {gallery_size} "
            f"references{' besides each query' if same_set else ''}; pass ks <= {gallery_size}."
        )
    return ks
