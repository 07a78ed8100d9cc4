"""`ServingModule`: a run's encoder and classifier as one `tf.Module` with serving signatures.

It saves with `tf.saved_model.save` and loads with plain `tf.saved_model.load`, in a
process that has neither Keras nor `supcon_tf` imported. Its functions take raw images
(see `supcon_tf.serving.preprocessing`):

- `embed(images)`: `{"embeddings"}`, the L2-normalised output of the run's encoder
  (the pooled features the paper evaluates, before the projection head);
- `classify(images)`: `{"probabilities", "labels", "class_names"}`, the softmax of the
  linear classifier on the frozen encoder, the most probable class and its name;
- `search(images)` (with a gallery): `{"ids", "indices", "scores", "labels"}` of the
  `top_k` gallery items of highest cosine similarity, exact (a matrix product and
  `tf.math.top_k`; among equal scores the lower gallery index comes first);
- `encode(inputs)`: the encoder on already preprocessed `[N, height, width, channels]`
  images in `[0, 1]` (what the TFLite file holds).

Each serving signature exists for uint8 images (`embed`, `classify`, `search`; also
`serving_default`) and for float32 images in `[0, 1]` (`embed_float`, ...); from
Python, `module.embed(images)` takes either.

Example:

>>> import keras, numpy as np
>>> from supcon_tf.serving.runs import InputSpec
>>> encoder = keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Flatten(),
...                             keras.layers.Dense(3)])
>>> classifier = keras.Sequential([encoder, keras.layers.Dense(2)])
>>> module = ServingModule(encoder, classifier, InputSpec(4, 4, 1), ["cat", "dog"])
>>> embeddings = module.embed(np.zeros((2, 8, 8, 1), np.uint8))["embeddings"]
>>> tuple(embeddings.shape)
(2, 3)
>>> sorted(module.signatures())
['classify', 'classify_float', 'embed', 'embed_float', 'serving_default']
"""

import numpy as np
import tensorflow as tf

from supcon_tf.serving.preprocessing import preprocess

# The dtypes of the serving signatures: uint8 (0-255) under the plain name, float32
# (0-1) under `<name>_float`.
SIGNATURE_DTYPES = {"": tf.uint8, "_float": tf.float32}


class ServingModule(tf.Module):
    """A run's encoder, classifier and optional search gallery, for `tf.saved_model.save`.

    Args:
        encoder: the run's encoder, `keras.Model` from `[N, *spec.shape]` to `[N, D]`.
        classifier: the run's classifier, images to logits `[N, C]`.
        spec: the run's `supcon_tf.serving.runs.InputSpec`.
        class_names: the `C` class names.
        gallery: optional `(embeddings [M, D], labels [M], ids [M])`: L2-normalised
            embeddings, integer labels and string ids of the search gallery.
        top_k: results per query of `search` (at most the gallery's size).
    """

    def __init__(self, encoder, classifier, spec, class_names, gallery=None, top_k=10):
        super().__init__(name="supcon_serving")
        self.encoder = encoder
        self.classifier = classifier
        self.spec = spec
        self.class_names = tf.Variable(
            [str(name) for name in class_names], trainable=False, name="class_names"
        )
        self.gallery_embeddings = None
        if gallery is not None:
            embeddings, labels, ids = gallery
            self.gallery_embeddings = tf.Variable(
                np.asarray(embeddings, np.float32), trainable=False, name="gallery_embeddings"
            )
            self.gallery_labels = tf.Variable(
                np.asarray(labels, np.int64), trainable=False, name="gallery_labels"
            )
            self.gallery_ids = tf.Variable(
                [str(item) for item in ids], trainable=False, name="gallery_ids"
            )
            self.top_k = int(min(top_k, len(ids)))

    @tf.function
    def encode(self, inputs):
        """L2-normalised embeddings `[N, D]` of preprocessed images `[N, *spec.shape]`."""
        features = self.encoder(inputs, training=False)
        return tf.math.l2_normalize(tf.cast(features, tf.float32), axis=1)

    @tf.function
    def embed(self, images):
        """`{"embeddings": [N, D]}` of raw images (uint8 or float in [0, 1])."""
        return {"embeddings": self.encode(preprocess(images, self.spec))}

    @tf.function
    def classify(self, images):
        """`{"probabilities": [N, C], "labels": [N], "class_names": [N]}` of raw images."""
        logits = self.classifier(preprocess(images, self.spec), training=False)
        probabilities = tf.nn.softmax(tf.cast(logits, tf.float32), axis=-1)
        labels = tf.argmax(probabilities, axis=-1)
        return {
            "probabilities": probabilities,
            "labels": labels,
            "class_names": tf.gather(self.class_names, labels),
        }

    @tf.function
    def search(self, images):
        """`{"ids", "indices", "scores", "labels"}`, each `[N, top_k]`: the nearest gallery
        items of raw images by cosine similarity, best first."""
        queries = self.encode(preprocess(images, self.spec))
        scores = tf.matmul(queries, self.gallery_embeddings, transpose_b=True)
        best_scores, indices = tf.math.top_k(scores, k=self.top_k, sorted=True)
        indices = tf.cast(indices, tf.int64)
        return {
            "ids": tf.gather(self.gallery_ids, indices),
            "indices": indices,
            "scores": best_scores,
            "labels": tf.gather(self.gallery_labels, indices),
        }

    def signatures(self):
        """`{signature name: concrete function}` for `tf.saved_model.save`."""
        functions = {"embed": self.embed, "classify": self.classify}
        if self.gallery_embeddings is not None:
            functions["search"] = self.search
        signatures = {}
        for suffix, dtype in SIGNATURE_DTYPES.items():
            spec = tf.TensorSpec([None, None, None, None], dtype, name="images")
            for name, function in functions.items():
                signatures[name + suffix] = function.get_concrete_function(spec)
        signatures["serving_default"] = signatures["embed"]
        return signatures

    def encode_function(self):
        """The concrete `encode` on float32 `[None, *spec.shape]` (for the TFLite file)."""
        spec = tf.TensorSpec([None, *self.spec.shape], tf.float32, name="inputs")
        return self.encode.get_concrete_function(spec)
