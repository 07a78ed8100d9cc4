"""Weighted k-nearest-neighbour classification of embeddings, and a callback that logs it.

`knn_accuracy` measures a representation without training a classifier (cosine
similarity, exponential weights of Wu et al. 2018); `KNNMonitor` logs it during
pretraining.

Example:

>>> bank = [[1.0, 0.0], [0.0, 1.0]]
>>> knn_accuracy(bank, [0, 1], [[0.9, 0.2], [0.1, 0.8]], [0, 1], k=1)
1.0
"""

import keras
import numpy as np

from supcon_tf.evaluation._checks import (
    _check_embeddings,
    _check_labels,
    _check_positive_int,
    _check_positive_number,
)
from supcon_tf.evaluation.metrics import predict
from supcon_tf.evaluation.representation import l2_normalize

WEIGHTINGS = ("exponential", "inverse_distance", "uniform")

# Added to distances before inverting them (weighting="inverse_distance"), so that a
# neighbour identical to the query gets a large but finite weight.
_DISTANCE_EPSILON = 1e-6


def knn_scores(
    train_embeddings,
    train_labels,
    query_embeddings,
    k=200,
    temperature=0.1,
    weighting="exponential",
    num_classes=None,
    batch_size=1024,
):
    """Weighted kNN class votes `[Q, C]` of queries against a bank of labelled embeddings.

    Both sets are L2-normalised, so the similarity is the cosine `s = z_q . z_i`. Each
    query takes its `k` most similar bank entries and every neighbour votes for its class
    with weight

    * `"exponential"` (default): `exp(s / temperature)`, the weighted kNN of Wu et al.
      2018 ("Unsupervised Feature Learning via Non-Parametric Instance Discrimination",
      Sec. 3.4; `temperature=0.1`, `k=200` in that paper, as in InstDisc, MoCo and
      SimCLR-style evaluations);
    * `"inverse_distance"`: `1 / (||z_q - z_i|| + 1e-6)` with the Euclidean distance of
      the unit vectors, `sqrt(2 - 2 s)`;
    * `"uniform"`: 1 (a majority vote).

    `k` is capped at the size of the bank. Neighbours tied at the `k`-th similarity are
    chosen arbitrarily.

    Args:
        train_embeddings: `[N, D]` bank embeddings.
        train_labels: `[N]` integer labels of the bank.
        query_embeddings: `[Q, D]` embeddings to classify.
        k: number of neighbours.
        temperature: temperature of the `"exponential"` weighting.
        weighting: one of `WEIGHTINGS`.
        num_classes: number of classes (default: `max(train_labels) + 1`).
        batch_size: queries per similarity block (bounds memory at `batch_size * N`).

    Returns:
        A float64 `[Q, num_classes]` array of summed neighbour weights.

    Example:

    >>> bank = [[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]]
    >>> knn_scores(bank, [0, 0, 1], [[1.0, 0.05]], k=2, weighting="uniform").tolist()
    [[2.0, 0.0]]
    """
    bank = l2_normalize(_check_embeddings(train_embeddings, "train_embeddings"))
    queries = l2_normalize(_check_embeddings(query_embeddings, "query_embeddings"))
    bank_labels = _check_labels(train_labels, "train_labels")
    if bank_labels.shape[0] != bank.shape[0]:
        raise ValueError(
            f"`train_labels` has {bank_labels.shape[0]} entries but `train_embeddings` has "
            f"{bank.shape[0]} rows."
        )
    if queries.shape[1] != bank.shape[1]:
        raise ValueError(
            f"`query_embeddings` have dimension {queries.shape[1]} but `train_embeddings` "
            f"have {bank.shape[1]}."
        )
    if weighting not in WEIGHTINGS:
        raise ValueError(f"Unknown `weighting`={weighting!r}. Expected one of {WEIGHTINGS}.")
    _check_positive_number(temperature, "temperature")
    k = min(_check_positive_int(k, "k"), bank.shape[0])
    batch_size = _check_positive_int(batch_size, "batch_size")
    if num_classes is None:
        num_classes = int(bank_labels.max()) + 1
    num_classes = _check_positive_int(num_classes, "num_classes")
    if bank_labels.max() >= num_classes:
        raise ValueError(
            f"`train_labels` holds class {bank_labels.max()} but `num_classes`={num_classes}."
        )
    scores = np.zeros((queries.shape[0], num_classes))
    for start in range(0, queries.shape[0], batch_size):
        similarities = queries[start : start + batch_size] @ bank.T
        if k < bank.shape[0]:
            neighbours = np.argpartition(-similarities, k - 1, axis=1)[:, :k]
        else:
            neighbours = np.broadcast_to(np.arange(k), similarities.shape)
        neighbour_similarities = np.take_along_axis(similarities, neighbours, axis=1)
        if weighting == "exponential":
            # Shifting by the row maximum rescales a row's weights by a constant, which
            # leaves the arg-max unchanged and keeps exp() from overflowing.
            shift = neighbour_similarities.max(axis=1, keepdims=True)
            weights = np.exp((neighbour_similarities - shift) / temperature)
        elif weighting == "inverse_distance":
            distances = np.sqrt(np.maximum(2.0 - 2.0 * neighbour_similarities, 0.0))
            weights = 1.0 / (distances + _DISTANCE_EPSILON)
        else:
            weights = np.ones_like(neighbour_similarities)
        block = scores[start : start + batch_size]
        rows = np.repeat(np.arange(block.shape[0]), k)
        np.add.at(block, (rows, bank_labels[neighbours].ravel()), weights.ravel())
    return scores


def knn_accuracy(
    train_embeddings,
    train_labels,
    test_embeddings,
    test_labels,
    k=200,
    temperature=0.1,
    weighting="exponential",
):
    """Accuracy of the weighted kNN classifier of `knn_scores` (cosine similarity).

    The predicted class is the arg-max of the votes (ties towards the lower index).

    Args:
        train_embeddings: `[N, D]` embeddings of the labelled bank (e.g. the training set).
        train_labels: `[N]` integer labels of the bank.
        test_embeddings: `[Q, D]` embeddings to classify.
        test_labels: `[Q]` integer labels of the queries.
        k: number of neighbours (capped at N).
        temperature: temperature of the `"exponential"` weighting `exp(s / temperature)`.
        weighting: `"exponential"` (Wu et al. 2018, default), `"inverse_distance"` or
            `"uniform"`.

    Returns:
        A float in `[0, 1]`.

    Example:

    >>> bank = [[1.0, 0.0], [0.0, 1.0]]
    >>> knn_accuracy(bank, [0, 1], [[0.9, 0.2], [0.1, 0.8]], [0, 1], k=1)
    1.0
    """
    test_labels = _check_labels(test_labels, "test_labels")
    train_labels = _check_labels(train_labels, "train_labels")
    num_classes = int(max(train_labels.max(initial=0), test_labels.max(initial=0))) + 1
    scores = knn_scores(
        train_embeddings,
        train_labels,
        test_embeddings,
        k=k,
        temperature=temperature,
        weighting=weighting,
        num_classes=num_classes,
    )
    if scores.shape[0] != test_labels.shape[0]:
        raise ValueError(
            f"`test_labels` has {test_labels.shape[0]} entries but `test_embeddings` has "
            f"{scores.shape[0]} rows."
        )
    return float(np.mean(scores.argmax(axis=1) == test_labels))


class KNNMonitor(keras.callbacks.Callback):
    """Logs the weighted kNN accuracy of an encoder every few epochs (online monitoring).

    At the end of every `every_n_epochs`-th epoch the callback embeds `train_data` (the
    labelled bank) and `validation_data` with `encoder` in inference mode and adds
    `val_knn_accuracy` (see `knn_accuracy`) to the epoch logs. Later callbacks see it:
    `History` (`history.history["val_knn_accuracy"]`), the progress bar and a
    `keras.callbacks.TensorBoard` placed *after* this callback in the list (it appears as
    `epoch_knn_accuracy` in the validation run). `keras.callbacks.CSVLogger` fixes its
    columns at the first epoch, so it records the value only with `every_n_epochs=1`.
    The labels are used only for the kNN vote, never for training, so this also measures
    a SimCLR representation during pretraining.

    Args:
        encoder: the model (or callable) mapping images to embeddings `[N, D]`; usually the
            encoder being pretrained (its weights are shared, so the numbers follow training).
        train_data: `(images, labels)` of the kNN bank.
        validation_data: `(images, labels)` to classify.
        k: number of neighbours.
        temperature: temperature of the `exp(s / temperature)` weights (Wu et al. 2018).
        every_n_epochs: evaluate after epochs `every_n_epochs`, `2 * every_n_epochs`, ...
        batch_size: images per encoder forward pass.

    Example:

    >>> import keras, numpy as np
    >>> images = np.random.default_rng(0).random((8, 4)).astype("float32")
    >>> labels = np.array([0, 1] * 4)
    >>> encoder = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    >>> monitor = KNNMonitor(encoder, (images, labels), (images, labels), k=3)
    >>> logs = {}
    >>> monitor.on_epoch_end(0, logs)
    >>> 0.0 <= logs["val_knn_accuracy"] <= 1.0
    True
    """

    def __init__(
        self,
        encoder,
        train_data,
        validation_data,
        k=200,
        temperature=0.1,
        every_n_epochs=1,
        batch_size=256,
    ):
        super().__init__()
        for name, data in (("train_data", train_data), ("validation_data", validation_data)):
            if not isinstance(data, (tuple, list)) or len(data) != 2:
                raise ValueError(f"`{name}` must be an (images, labels) pair, got {type(data)}.")
            if len(data[0]) != len(data[1]):
                raise ValueError(f"`{name}` has {len(data[0])} images but {len(data[1])} labels.")
        self.encoder = encoder
        self.train_data = train_data
        self.validation_data = validation_data
        self.k = _check_positive_int(k, "k")
        self.temperature = _check_positive_number(temperature, "temperature")
        self.every_n_epochs = _check_positive_int(every_n_epochs, "every_n_epochs")
        self.batch_size = _check_positive_int(batch_size, "batch_size")

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every_n_epochs:
            return
        accuracy = knn_accuracy(
            predict(self.encoder, self.train_data[0], self.batch_size),
            self.train_data[1],
            predict(self.encoder, self.validation_data[0], self.batch_size),
            self.validation_data[1],
            k=self.k,
            temperature=self.temperature,
        )
        if logs is not None:
            logs["val_knn_accuracy"] = accuracy
