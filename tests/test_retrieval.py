"""Exact search and retrieval metrics against float64 NumPy transcriptions of the definitions.

The oracles below sort every full score row with a stable argsort (equal scores keep the
lower reference index first) and walk the ranking query by query in plain Python; the
implementation instead merges a running top-k block by block and vectorises the metrics.
"""

import sys
import tracemalloc
import types

import numpy as np
import pytest

from supcon_tf.errors import DataError, UsageError
from supcon_tf.retrieval import metrics as metrics_module
from supcon_tf.retrieval import nearest_neighbors, retrieval_metrics

# ----------------------------------------------------------------------------- oracles


def oracle_scores(queries, references, metric):
    queries = np.asarray(queries, dtype=np.float64)
    references = np.asarray(references, dtype=np.float64)
    if metric == "cosine":
        queries = queries / np.linalg.norm(queries, axis=1, keepdims=True)
        references = references / np.linalg.norm(references, axis=1, keepdims=True)
    return queries @ references.T


def oracle_rankings(queries, references, metric, exclude_self):
    """Every query's full ranking of reference indices (stable: ties by index)."""
    scores = oracle_scores(queries, references, metric)
    rankings = []
    for row, row_scores in enumerate(scores):
        order = np.argsort(-row_scores, kind="stable")
        if exclude_self:
            order = order[order != row]
        rankings.append(order)
    return scores, rankings


def oracle_metrics(queries, query_labels, references, reference_labels, ks, metric="cosine"):
    """The definitions, one query at a time; queries without a relevant reference skipped."""
    same_set = references is None
    if same_set:
        references, reference_labels = queries, query_labels
    _, rankings = oracle_rankings(queries, references, metric, exclude_self=same_set)
    reference_labels = np.asarray(reference_labels)
    per_query = []
    for label, ranking in zip(query_labels, rankings, strict=True):
        hits = [bool(reference_labels[index] == label) for index in ranking]
        relevant = sum(hits)
        if relevant == 0:
            continue
        values = {"precision_at_1": float(hits[0])}
        for k in ks:
            values[f"recall_at_{k}"] = 1.0 if any(hits[:k]) else 0.0
        values["r_precision"] = sum(hits[:relevant]) / relevant
        found, average_precision = 0, 0.0
        for position in range(relevant):
            if hits[position]:
                found += 1
                average_precision += found / (position + 1)
        values["map_at_r"] = average_precision / relevant
        values["mean_reciprocal_rank"] = 1.0 / (hits.index(True) + 1)
        per_query.append(values)
    return {name: float(np.mean([values[name] for values in per_query])) for name in per_query[0]}


def assert_metrics_equal(result, expected):
    assert list(result) == list(expected)
    for name, value in expected.items():
        assert result[name] == pytest.approx(value, abs=1e-12), name


# ----------------------------------------------------------------------------- data

# Small integer coordinates: every dot product is exact in float32, so equal scores are
# equal in both precisions and the tie order is tested as such. Rows 0, 5 and 9 are
# copies, row 7 is row 1 doubled (the same cosine), rows 2 and 8 are copies.
TIED = np.array(
    [
        [1, 0, 1, 0],
        [0, 1, 0, 1],
        [1, 1, 0, 0],
        [2, 0, 0, 1],
        [0, 0, 1, 1],
        [1, 0, 1, 0],
        [1, 2, 0, 0],
        [0, 2, 0, 2],
        [1, 1, 0, 0],
        [1, 0, 1, 0],
        [0, 1, 1, 0],
    ],
    dtype=np.float32,
)
# Class 3 and class 4 have one member each (R = 0 in the same-set setting).
TIED_LABELS = np.array([0, 1, 0, 2, 3, 0, 1, 1, 2, 0, 4])


def random_embeddings(rows, dim=16, seed=0):
    return np.random.default_rng(seed).standard_normal((rows, dim)).astype(np.float32)


# ----------------------------------------------------------------------------- search


class TestNearestNeighbors:
    @pytest.mark.parametrize("metric", ["cosine", "dot"])
    @pytest.mark.parametrize("exclude_self", [False, True])
    @pytest.mark.parametrize("block_size", [1, 7, 32, (5, 3), (2, 64), (4096, 1024)])
    @pytest.mark.parametrize("k", [1, 6, 60])
    def test_equals_float64_brute_force(self, metric, exclude_self, block_size, k):
        references = random_embeddings(61, seed=1)
        queries = references if exclude_self else random_embeddings(45, seed=2)
        indices, scores = nearest_neighbors(
            queries, references, k, metric=metric, block_size=block_size, exclude_self=exclude_self
        )
        expected_scores, rankings = oracle_rankings(queries, references, metric, exclude_self)
        expected = np.stack([ranking[:k] for ranking in rankings])
        assert indices.dtype == np.int64 and scores.dtype == np.float32
        assert indices.shape == scores.shape == (queries.shape[0], k)
        expected_top = np.take_along_axis(expected_scores, expected, axis=1)
        np.testing.assert_allclose(scores, expected_top, rtol=1e-5, atol=1e-5)
        # A returned ranking is the float64 ranking up to float32 rounding: the float64
        # score of each returned index is the float64 score expected at its position ...
        returned_top = np.take_along_axis(expected_scores, indices, axis=1)
        np.testing.assert_allclose(returned_top, expected_top, rtol=0, atol=1e-5)
        assert all(len(set(row)) == k for row in indices.tolist())
        if exclude_self:
            assert not np.any(indices == np.arange(queries.shape[0])[:, None])
        # ... and the very index wherever no other score lies within 1e-5 of it.
        sorted_rows = np.stack(
            [row[order] for row, order in zip(expected_scores, rankings, strict=True)]
        )
        gaps = np.abs(np.diff(sorted_rows, axis=1))
        isolated = np.ones_like(sorted_rows, dtype=bool)
        isolated[:, 1:] &= gaps > 1e-5
        isolated[:, :-1] &= gaps > 1e-5
        isolated = isolated[:, :k]
        assert isolated.mean() > 0.95
        np.testing.assert_array_equal(indices[isolated], expected[isolated])

    @pytest.mark.parametrize("metric", ["cosine", "dot"])
    @pytest.mark.parametrize("block_size", [1, 2, 3, 5, 100])
    @pytest.mark.parametrize("exclude_self", [False, True])
    def test_ties_go_to_the_lower_index(self, metric, block_size, exclude_self):
        k = TIED.shape[0] - 1
        indices, _ = nearest_neighbors(
            TIED, TIED, k, metric=metric, block_size=block_size, exclude_self=exclude_self
        )
        _, rankings = oracle_rankings(TIED, TIED, metric, exclude_self)
        np.testing.assert_array_equal(indices, np.stack([ranking[:k] for ranking in rankings]))

    def test_hand_computed(self):
        references = [[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [2.0, 0.0]]
        indices, scores = nearest_neighbors([[1.0, 0.0]], references, 4)
        # cosines 1, 0, 1/sqrt(2), 1: rows 0 and 3 tie, the lower index first.
        assert indices.tolist() == [[0, 3, 2, 1]]
        np.testing.assert_allclose(scores, [[1.0, 1.0, 0.5**0.5, 0.0]], atol=1e-7)
        indices, scores = nearest_neighbors([[1.0, 0.0]], references, 2, metric="dot")
        assert indices.tolist() == [[3, 0]] and scores.tolist() == [[2.0, 1.0]]

    def test_exclude_self_leaves_out_the_row_not_its_copies(self):
        gallery = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
        indices, scores = nearest_neighbors(gallery, gallery, 1, exclude_self=True)
        assert indices.ravel().tolist() == [1, 0, 0]
        assert scores.ravel().tolist() == [1.0, 1.0, 0.0]

    def test_float64_and_memmap_galleries(self, tmp_path):
        references = random_embeddings(50, seed=3).astype(np.float64)
        stored = np.lib.format.open_memmap(
            tmp_path / "gallery.npy", mode="w+", dtype=np.float64, shape=references.shape
        )
        stored[:] = references
        queries = random_embeddings(9, seed=4)
        expected = nearest_neighbors(queries, references.astype(np.float32), 5, block_size=8)
        for gallery in (references, stored, references.tolist()):
            indices, scores = nearest_neighbors(queries, gallery, 5, block_size=8)
            np.testing.assert_array_equal(indices, expected[0])
            np.testing.assert_allclose(scores, expected[1], rtol=1e-6)

    def test_bfloat16_embeddings_of_a_mixed_precision_model(self):
        import ml_dtypes

        rng = np.random.default_rng(5)
        exact = rng.normal(size=(30, 8)).astype(ml_dtypes.bfloat16)
        labels = np.arange(30) % 3
        as_float32 = exact.astype(np.float32)  # the same values, widened
        assert retrieval_metrics(exact, labels) == retrieval_metrics(as_float32, labels)
        indices, scores = nearest_neighbors(exact, exact, 3, exclude_self=True)
        expected_indices, expected_scores = nearest_neighbors(
            as_float32, as_float32, 3, exclude_self=True
        )
        np.testing.assert_array_equal(indices, expected_indices)
        np.testing.assert_array_equal(scores, expected_scores)

    def test_memory_is_bounded_by_the_block_not_the_gallery(self):
        references = random_embeddings(20_000, dim=8, seed=5)
        queries = random_embeddings(300, dim=8, seed=6)
        tracemalloc.start()
        try:
            nearest_neighbors(queries, references, 5, metric="dot", block_size=128)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        full_scores = queries.shape[0] * references.shape[0] * 4  # 24 MB
        assert peak < 1.5e6 < full_scores / 10

    @pytest.mark.parametrize(
        ("arguments", "match"),
        [
            ({"queries": [1.0, 2.0]}, r"`queries` must be a 2-D \[N, dim\] array"),
            ({"references": np.ones((2, 3, 4))}, r"`references` must be a 2-D"),
            ({"queries": np.ones((0, 4))}, r"`queries` is empty"),
            ({"queries": np.ones((2, 3))}, r"`queries` have dimension 3 but `references` have 4"),
            ({"k": 9}, r"`k=9` is larger than the gallery: there are only 8 references"),
            ({"k": 8, "exclude_self": True}, r"only 7 references besides each query itself"),
            ({"k": 0}, r"`k` must be an integer >= 1, got 0"),
            ({"k": 2.0}, r"`k` must be an integer"),
            ({"metric": "euclidean"}, r"`metric` must be one of 'cosine', 'dot', got 'euclidean'"),
            ({"backend": "annoy"}, r"`backend` must be one of 'exact', 'faiss'"),
            ({"block_size": 0}, r"`block_size` must be an integer >= 1"),
            ({"block_size": (4, 0)}, r"`block_size` must be an integer >= 1, got 0"),
            ({"block_size": (1, 2, 3)}, r"`block_size` must be an int or a pair"),
            ({"exclude_self": 1}, r"`exclude_self` must be True or False"),
            ({"queries": [["a", "b", "c", "d"]]}, r"`queries` must hold real numbers"),
            ({"queries": np.ones((3, 4)), "exclude_self": True}, r"there are 3 queries and 8"),
        ],
    )
    def test_usage_errors(self, arguments, match):
        call = {"queries": np.ones((8, 4)), "references": np.ones((8, 4)), "k": 2, **arguments}
        with pytest.raises(UsageError, match=match):
            nearest_neighbors(**call)

    @pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
    @pytest.mark.parametrize("name", ["queries", "references"])
    def test_non_finite_values_name_the_row(self, name, value):
        arrays = {"queries": random_embeddings(5), "references": random_embeddings(7)}
        arrays[name][3, 2] = value
        with pytest.raises(UsageError, match=rf"`{name}` row 3 holds NaN or infinite values"):
            nearest_neighbors(arrays["queries"], arrays["references"], 2, block_size=2)

    def test_zero_row_under_cosine(self):
        references = random_embeddings(6)
        references[4] = 0.0
        with pytest.raises(UsageError, match=r"`references` row 4 is all zeros.*metric='dot'"):
            nearest_neighbors(random_embeddings(2), references, 2)
        assert nearest_neighbors(random_embeddings(2), references, 2, metric="dot")[0].shape == (
            2,
            2,
        )

    def test_dot_overflow(self):
        with pytest.raises(UsageError, match=r"beyond float32; scale them down"):
            nearest_neighbors([[1e20, 0.0]], [[1e20, 0.0], [1.0, 0.0]], 1, metric="dot")


# ----------------------------------------------------------------------------- FAISS backend


class _FakeFlatIndex:
    """A stand-in for `faiss.IndexFlatIP` where faiss-cpu is not installed: float64 brute force."""

    def __init__(self, dim):
        self.vectors = np.zeros((0, dim), dtype=np.float32)

    def add(self, vectors):
        self.vectors = np.concatenate([self.vectors, vectors])

    def search(self, queries, k):
        scores = queries.astype(np.float64) @ self.vectors.T.astype(np.float64)
        order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        return np.take_along_axis(scores, order, axis=1).astype(np.float32), order


@pytest.fixture
def faiss_or_stand_in(monkeypatch):
    """The real faiss when installed (`pip install .[faiss]`), else the stand-in above."""
    try:
        import faiss  # noqa: F401
    except ImportError:
        monkeypatch.setitem(sys.modules, "faiss", types.SimpleNamespace(IndexFlatIP=_FakeFlatIndex))


class TestFaissBackend:
    @pytest.mark.parametrize("metric", ["cosine", "dot"])
    @pytest.mark.parametrize("exclude_self", [False, True])
    def test_agrees_with_the_exact_search(self, faiss_or_stand_in, metric, exclude_self):
        references = random_embeddings(70, seed=7)
        queries = references if exclude_self else random_embeddings(20, seed=8)
        exact = nearest_neighbors(queries, references, 5, metric, exclude_self=exclude_self)
        approximate = nearest_neighbors(
            queries, references, 5, metric, exclude_self=exclude_self, backend="faiss"
        )
        np.testing.assert_array_equal(approximate[0], exact[0])
        np.testing.assert_allclose(approximate[1], exact[1], rtol=1e-5, atol=1e-5)
        assert approximate[0].dtype == np.int64

    def test_missing_faiss_says_how_to_install_it(self, monkeypatch):
        monkeypatch.setitem(sys.modules, "faiss", None)
        with pytest.raises(UsageError, match=r"pip install supcon_tf\[faiss\]"):
            nearest_neighbors(np.eye(3), np.eye(3), 1, backend="faiss")


# ----------------------------------------------------------------------------- metrics


class TestRetrievalMetrics:
    @pytest.mark.parametrize("metric", ["cosine", "dot"])
    @pytest.mark.parametrize("block_size", [2, 3, 4096])
    def test_same_set_with_ties_and_lone_classes(self, metric, block_size):
        ks = (1, 2, 4, 8)
        result = retrieval_metrics(TIED, TIED_LABELS, ks=ks, metric=metric, block_size=block_size)
        assert_metrics_equal(result, oracle_metrics(TIED, TIED_LABELS, None, None, ks, metric))

    @pytest.mark.parametrize("metric", ["cosine", "dot"])
    def test_separate_sets_with_ties_and_absent_labels(self, metric):
        queries, query_labels = TIED[:6], TIED_LABELS[:6]  # Label 3 has no reference.
        references, reference_labels = TIED[5:], TIED_LABELS[5:]
        ks = (1, 3, 6)
        result = retrieval_metrics(
            queries, query_labels, references, reference_labels, ks=ks, metric=metric, block_size=2
        )
        expected = oracle_metrics(queries, query_labels, references, reference_labels, ks, metric)
        assert_metrics_equal(result, expected)

    @pytest.mark.parametrize("same_set", [True, False])
    def test_random_embeddings_many_classes(self, same_set):
        rng = np.random.default_rng(9)
        queries, query_labels = random_embeddings(90, dim=8, seed=10), rng.integers(0, 12, 90)
        references, reference_labels = (None, None)
        if not same_set:
            references, reference_labels = (
                random_embeddings(130, dim=8, seed=11),
                rng.integers(0, 14, 130),
            )
        ks = (1, 2, 4, 8, 16)
        result = retrieval_metrics(
            queries, query_labels, references, reference_labels, ks=ks, block_size=16
        )
        expected = oracle_metrics(queries, query_labels, references, reference_labels, ks)
        assert_metrics_equal(result, expected)

    def test_first_relevant_beyond_the_ranked_depth_and_query_chunks(self, monkeypatch):
        # Pairs of classes: R = 1 and ks=(1,), so one neighbour per query is ranked and the
        # reciprocal rank of every other query needs the pass over the whole gallery.
        queries = random_embeddings(40, dim=6, seed=12)
        labels = np.repeat(np.arange(20), 2)
        monkeypatch.setattr(metrics_module, "_CHUNK_ENTRIES", 7)
        result = retrieval_metrics(queries, labels, ks=(1,), block_size=5)
        expected = oracle_metrics(queries, labels, None, None, (1,))
        assert expected["mean_reciprocal_rank"] < 0.5  # Most first hits lie deeper than 1.
        assert_metrics_equal(result, expected)

    def test_hand_computed_same_set(self):
        # Cosines: rows 1 and 2 are at 45 degrees from their neighbours, exactly tied in
        # float32 too; 1 and 3 are orthogonal. Labels a, a, b, b.
        embeddings = np.array([[1.0, 0.0], [1.0, 1.0], [0.0, 1.0], [-1.0, 1.0]])
        # Rankings (own row left out): 0 -> 1 2 3 (hit first); 1 -> 0 2 (tie, the lower
        # index first: hit); 2 -> 1 3 (tie: miss, then hit); 3 -> 2 (hit).
        result = retrieval_metrics(embeddings, ["a", "a", "b", "b"], ks=(1, 2))
        assert result == pytest.approx(
            {
                "precision_at_1": 3 / 4,
                "recall_at_1": 3 / 4,
                "recall_at_2": 1.0,
                "r_precision": 3 / 4,
                "map_at_r": 3 / 4,
                "mean_reciprocal_rank": (1 + 1 + 1 / 2 + 1) / 4,
            }
        )

    def test_hand_computed_separate_sets(self):
        gallery = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [-1.0, 0.0], [0.0, -1.0]])
        gallery_labels = [0, 1, 1, 0, 2]
        queries = np.array([[1.0, 0.2], [0.0, -1.0], [5.0, 0.0]])
        query_labels = [1, 0, 7]  # Label 7 has no reference: left out.
        # Query 0 ranks 0 2 1 4 3 (labels 0 1 1 2 0): R = 2, hits at 2 and 3.
        # Query 1 ranks 4, then 0 and 3 tied at cosine 0 (by index), then 2, 1: labels
        # 2 0 0 1 1; R = 2, hits at 2 and 3.
        result = retrieval_metrics(queries, query_labels, gallery, gallery_labels, ks=(1, 2, 4))
        assert result == pytest.approx(
            {
                "precision_at_1": 0.0,
                "recall_at_1": 0.0,
                "recall_at_2": 1.0,
                "recall_at_4": 1.0,
                "r_precision": (1 / 2 + 1 / 2) / 2,
                "map_at_r": (1 / 2 * (1 / 2) + 1 / 2 * (1 / 2)) / 2,
                "mean_reciprocal_rank": 1 / 2,
            }
        )

    @pytest.mark.parametrize(
        ("arguments", "match"),
        [
            ({"reference_embeddings": np.ones((4, 2))}, r"pass `reference_embeddings` and"),
            ({"reference_labels": [0, 1]}, r"pass `reference_embeddings` and"),
            ({"query_labels": [0, 1, 1]}, r"`query_labels` has 3 labels for 4 embeddings"),
            ({"query_labels": [[0, 1, 1, 0]]}, r"`query_labels` must be a vector \[N\]"),
            ({"query_labels": [0.5, 1.0, 1.0, 0.0]}, r"must hold integer or string class"),
            ({"ks": (1, 4)}, r"Recall@4 but the gallery holds only 3 references besides each"),
            ({"ks": ()}, r"`ks` is empty"),
            ({"ks": (0, 1)}, r"`ks` must be an integer >= 1, got 0"),
            ({"ks": "12"}, r"`ks` must be an integer"),
            ({"metric": "l2"}, r"`metric` must be one of 'cosine', 'dot'"),
            ({"query_embeddings": np.ones((4, 2, 1))}, r"`query_embeddings` must be a 2-D"),
        ],
    )
    def test_usage_errors(self, arguments, match):
        call = {"query_embeddings": random_embeddings(4), "query_labels": [0, 1, 1, 0], **arguments}
        with pytest.raises(UsageError, match=match):
            retrieval_metrics(**call)

    def test_separate_sets_errors(self):
        queries = random_embeddings(3)
        with pytest.raises(UsageError, match=r"dimension 16 but `references` have 8"):
            retrieval_metrics(queries, [0, 1, 2], random_embeddings(5, dim=8), [0] * 5)
        with pytest.raises(UsageError, match=r"one kind \(both integers or both strings\)"):
            retrieval_metrics(queries, [0, 1, 2], random_embeddings(5), ["a"] * 5, ks=(1,))
        with pytest.raises(UsageError, match=r"`reference_labels` has 4 labels for 5"):
            retrieval_metrics(queries, [0, 1, 2], random_embeddings(5), [0] * 4, ks=(1,))
        with pytest.raises(UsageError, match=r"Recall@8 but the gallery holds only 5 references;"):
            retrieval_metrics(queries, [0, 1, 2], random_embeddings(5), [0] * 5, ks=(8,))
        nan_gallery = random_embeddings(5)
        nan_gallery[2, 0] = np.nan
        with pytest.raises(UsageError, match=r"`references` row 2 holds NaN"):
            retrieval_metrics(queries, [0, 1, 2], nan_gallery, [0] * 5, ks=(1,))

    def test_no_query_with_a_relevant_reference(self):
        with pytest.raises(DataError, match=r"no query has a reference of its own class besides"):
            retrieval_metrics(random_embeddings(3), [0, 1, 2], ks=(1,))
        with pytest.raises(DataError, match=r"each class needs at least one reference"):
            retrieval_metrics(
                random_embeddings(2), [0, 1], random_embeddings(3), [5, 5, 6], ks=(1,)
            )


# ----------------------------------------------------------------------------- benchmark


def test_benchmark_code_path_at_a_tiny_size():
    from benchmarks import retrieval as benchmark

    result = benchmark.measure(
        num_queries=30, num_references=500, dim=8, k=4, block_size=64, seed=0
    )
    assert result["index_agreement"] == 1.0
    assert result["max_score_difference"] < 1e-5
    assert result["seconds"] > 0 and result["peak_rss_mb"] >= result["baseline_rss_mb"] > 0
    assert (result["faiss_seconds"] is None) == (result["time_ratio"] is None)
    assert "| exact, blocked |" in benchmark.table(result)
