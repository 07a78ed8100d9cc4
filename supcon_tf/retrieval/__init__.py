"""Search a gallery of embeddings and score retrieval, at any scale.

* `search`: `nearest_neighbors(queries, references, k)`, the exact top-k by cosine or
  dot product, block by block in bounded memory (optionally FAISS behind the same call);
* `metrics`: `retrieval_metrics(query_embeddings, query_labels, ...)`, Precision@1,
  Recall@k, R-precision, MAP@R and mean reciprocal rank as metric-learning papers report
  them, with the queries as the gallery or a separate gallery.

Example:

>>> import numpy as np
>>> from supcon_tf import retrieval
>>> embeddings = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
>>> retrieval.nearest_neighbors(embeddings, embeddings, k=1, exclude_self=True)[0].ravel().tolist()
[1, 0, 3, 2]
>>> retrieval.retrieval_metrics(embeddings, [0, 0, 1, 1], ks=(1,))["map_at_r"]
1.0
"""

from supcon_tf.retrieval.metrics import retrieval_metrics
from supcon_tf.retrieval.search import nearest_neighbors

__all__ = ["nearest_neighbors", "retrieval_metrics"]
