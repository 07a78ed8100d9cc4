"""The FAISS backend of `nearest_neighbors`: `IndexFlatIP` behind the same call.

Optional (`pip install supcon_tf[faiss]`, the `faiss-cpu` package). The index holds a
float32 copy of the gallery (L2-normalised for cosine), so this backend needs the
gallery's size again in memory; FAISS orders equal scores as it likes, so the exact
backend stays the reference for ties.
"""

import numpy as np

from supcon_tf.errors import UsageError


def load():
    """The `faiss` module, or a `UsageError` saying how to install it."""
    try:
        import faiss
    except ImportError as error:
        raise UsageError(
            "backend='faiss' needs the faiss-cpu package; install it with "
            "`pip install supcon_tf[faiss]`, or use backend='exact'."
        ) from error
    return faiss


def search(queries, references, k, self_indices=None):
    """`(indices [Q, k] int64, scores [Q, k] float32)` from a FAISS flat inner-product index.

    `queries` and `references` are C-contiguous float32 arrays, L2-normalised for cosine.
    """
    faiss = load()
    index = faiss.IndexFlatIP(references.shape[1])
    index.add(references)
    wanted = k + (self_indices is not None)
    scores, indices = index.search(queries, wanted)
    if self_indices is None:
        return indices.astype(np.int64), scores
    # Drop each query's own row; when it is not among the results, drop the last one.
    own = indices == self_indices[:, None]
    own[~own.any(axis=1), -1] = True
    keep = ~own & (np.cumsum(own, axis=1) <= 1)
    shape = (queries.shape[0], k)
    return indices[keep].reshape(shape).astype(np.int64), scores[keep].reshape(shape)
