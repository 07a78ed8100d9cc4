"""The retrieval section of a run's report: its encoders as search engines.

`evaluate_retrieval` scores the retrieval of a run's encoders (the SupCon encoder, and
the cross-entropy baseline's features as its head reads them: `classifier_encoder`)
among the test images, with `supcon_tf.retrieval.retrieval_metrics` (report.json
"retrieval"; for a class-disjoint run, among the unseen classes).
"""

import keras

from supcon_tf.errors import DataError
from supcon_tf.evaluation.run import (
    CLASSIFIER_FILES,
    ENCODER_FILES,
    _check_embedding_shape,
    _class_names,
    _load_model,
    _StreamedData,
    _TestData,
    is_streamed,
)
from supcon_tf.files import is_file, join
from supcon_tf.retrieval import retrieval_metrics

RETRIEVAL_KS = (1, 2, 4, 8)
RETRIEVAL_PROTOCOL = (
    "every test image is a query against the other test images (leave-one-out: its own "
    "image is left out of the gallery); cosine similarity, exact search"
)


def classifier_encoder(classifier):
    """The encoder inside a classifier of `supcon_tf.models.classifiers`: its features.

    A linear classifier or the cross-entropy baseline is `images -> encoder -> head`; the
    encoder (a nested model) outputs the features the head reads, the same position as a
    SupCon encoder's features (the baseline's penultimate features when its head is
    linear).

    Example:

    >>> from supcon_tf.models import build_cross_entropy_classifier, build_encoder
    >>> encoder = build_encoder("small_cnn", (8, 8, 1), 0.25)
    >>> classifier_encoder(build_cross_entropy_classifier(encoder, 10)) is encoder
    True
    """
    nested = [layer for layer in classifier.layers if isinstance(layer, keras.Model)]
    if len(nested) != 1:
        raise ValueError(
            f"{classifier.name} holds {len(nested)} nested models; expected one encoder "
            "(a classifier of supcon_tf.models.build_cross_entropy_classifier)."
        )
    return nested[0]


def evaluate_retrieval(model_dir, splits, batch_size=256, split="standard", linear_probe=None):
    """Retrieval metrics of a run's encoders among the test images of `splits`.

    Each test image is a query; the gallery is the other test images (leave-one-out,
    the protocol of the CUB-200 / CARS196 / Stanford Online Products papers). Scored
    by `supcon_tf.retrieval.retrieval_metrics` (exact blocked search, cosine): Precision@1,
    Recall@1/2/4/8, R-precision, MAP@R and mean reciprocal rank. The encoders are
    `encoder.keras` (`"supcon"`: SupCon or SimCLR) and, when present, the encoder
    inside `baseline.keras` (`"cross_entropy"`: its features as its head reads them,
    see `classifier_encoder`).

    Args:
        model_dir: the run folder.
        splits: the evaluated classes' data, in RAM (`x_test`, `y_test`) or streamed
            (`evaluation_batches`), as in `evaluate_run`; for a class-disjoint run, the
            unseen classes.
        batch_size: images per forward pass.
        split: the run's split (`"standard"` or `"class_disjoint"`), recorded.
        linear_probe: optional `{arm: result}` of the linear probes on these classes
            (class-disjoint runs), recorded.

    Returns:
        The JSON-ready section report.json holds under `"retrieval"`: `split`,
        `classes` (names), `protocol`, `num_queries`, `ks`, `models` (`{arm: metrics}`,
        or `{arm: {"note": ...}}` when no query has a relevant image) and
        `linear_probe` when given. Nothing is written.

    Example (a run folder made by hand):

    >>> import tempfile, types, numpy as np
    >>> from supcon_tf.models import build_encoder
    >>> folder = tempfile.mkdtemp()
    >>> build_encoder("small_cnn", (8, 8, 1), 0.25).save(f"{folder}/encoder.keras")
    >>> rng = np.random.default_rng(0)
    >>> splits = types.SimpleNamespace(x_test=rng.random((12, 8, 8, 1)).astype("float32"),
    ...                                y_test=np.arange(12) % 3)
    >>> section = evaluate_retrieval(folder, splits)
    >>> section["num_queries"], sorted(section["models"]["supcon"])[:3]
    (12, ['map_at_r', 'mean_reciprocal_rank', 'precision_at_1'])
    """
    data = _StreamedData(splits, batch_size) if is_streamed(splits) else _TestData(splits)
    labels = data.test_labels()
    ks = [k for k in RETRIEVAL_KS if k <= labels.shape[0] - 1]
    encoders = {}
    if is_file(join(model_dir, ENCODER_FILES["supcon"])):
        encoders["supcon"] = _load_model(join(model_dir, ENCODER_FILES["supcon"]))
    if is_file(join(model_dir, CLASSIFIER_FILES["cross_entropy"])):
        baseline = _load_model(join(model_dir, CLASSIFIER_FILES["cross_entropy"]))
        encoders["cross_entropy"] = classifier_encoder(baseline)
    models = {}
    for name, encoder in encoders.items():
        embeddings = data.test_embeddings(encoder, batch_size)
        _check_embedding_shape(embeddings)
        try:
            models[name] = retrieval_metrics(embeddings, labels, ks=ks)
        except DataError as error:
            models[name] = {"note": str(error)}
    class_names = getattr(splits, "class_names", None)
    section = {
        "split": split,
        "classes": _class_names(class_names, len(class_names)) if class_names else None,
        "protocol": RETRIEVAL_PROTOCOL,
        "num_queries": int(labels.shape[0]),
        "ks": ks,
        "models": models,
    }
    if linear_probe is not None:
        section["linear_probe"] = linear_probe
    return section
