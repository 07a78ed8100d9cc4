"""Tests of supcon_tf.models: the SupCon model and the two classifier phases."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from supcon_tf.losses import SupervisedContrastiveLoss
from supcon_tf.models import (
    HybridSupConModel,
    SupConModel,
    build_cross_entropy_classifier,
    build_linear_classifier,
)
from supcon_tf.models.encoders import build_encoder
from supcon_tf.models.layers import ProjectionHead
from tests.reference import supcon_reference

SHAPE = (8, 8, 1)


def _data(num_samples=32, seed=0):
    """Two separable classes: bright top half vs bright bottom half, plus noise."""
    rng = np.random.default_rng(seed)
    labels = np.arange(num_samples) % 2
    images = rng.random((num_samples, *SHAPE)).astype("float32") * 0.3
    images[labels == 0, :4] += 0.7
    images[labels == 1, 4:] += 0.7
    return images, labels.astype("int32")


def _encoder():
    return build_encoder("small_cnn", SHAPE, width_multiplier=0.25)


def _model(augmenter=None, num_views=2):
    keras.utils.set_random_seed(0)
    return SupConModel(
        _encoder(), ProjectionHead(output_units=8), augmenter=augmenter, num_views=num_views
    )


def _weights(model):
    return [np.array(weight) for weight in model.weights]


class TestSupConModel:
    def test_views_drawn_by_the_input_pipeline(self):
        # [B, V, H, W, C] inputs: view v is encoded and projected as the image it holds.
        model = _model(num_views=3)
        images = np.stack([_data(4, seed=seed)[0] for seed in range(3)], axis=1)
        outputs = model(images).numpy()
        single = SupConModel(model.encoder, model.projection_head, num_views=1)
        for view in range(3):
            expected = single(images[:, view]).numpy()[:, 0]
            np.testing.assert_allclose(outputs[:, view], expected, rtol=1e-5, atol=1e-6)
        assert model.compute_output_shape((None, 3, 8, 8, 1)) == (None, 3, 8)
        with pytest.raises(ValueError, match="must have num_views=3 views, got shape"):
            model(images[:, :2])

    def test_output_is_views_of_projected_features(self):
        model = _model(num_views=3)
        images, _ = _data(4)
        outputs = model(images).numpy()
        assert outputs.shape == (4, 3, 8)
        expected = model.projection_head(model.encoder(images)).numpy()
        for view in range(3):
            np.testing.assert_allclose(outputs[:, view], expected, rtol=1e-5, atol=1e-5)

    def test_augmenter_draws_different_views_only_in_training(self):
        model = _model(augmenter=keras.layers.GaussianNoise(0.5, seed=1))
        images, _ = _data(4)
        training = model(images, training=True).numpy()
        inference = model(images, training=False).numpy()
        assert not np.allclose(training[:, 0], training[:, 1])
        np.testing.assert_allclose(inference[:, 0], inference[:, 1], rtol=1e-5, atol=1e-6)

    @pytest.mark.parametrize("with_labels", [True, False])
    def test_evaluate_loss_matches_reference(self, with_labels):
        """`evaluate(x, y)` is SupCon, `evaluate(x)` is SimCLR (y=None), as in the paper."""
        model = _model()
        model.compile(optimizer="adam", loss=SupervisedContrastiveLoss(temperature=0.5))
        images, labels = _data(8)
        embeddings = model.predict(images, verbose=0).astype("float64")
        if with_labels:
            loss = model.evaluate(images, labels, batch_size=8, verbose=0)
            expected = supcon_reference(embeddings, labels, temperature=0.5).mean()
        else:
            loss = model.evaluate(images, batch_size=8, verbose=0)
            expected = supcon_reference(embeddings, None, temperature=0.5).mean()
        np.testing.assert_allclose(loss, expected, rtol=1e-4)

    @pytest.mark.parametrize("with_labels", [True, False])
    def test_pretraining_decreases_the_loss(self, with_labels):
        model = _model(augmenter=keras.layers.GaussianNoise(0.05, seed=1))
        model.compile(
            optimizer=keras.optimizers.Adam(3e-3), loss=SupervisedContrastiveLoss(temperature=0.5)
        )
        images, labels = _data()
        targets = labels if with_labels else None
        before = model.evaluate(images, targets, batch_size=32, verbose=0)
        model.fit(images, targets, batch_size=16, epochs=8, verbose=0)
        after = model.evaluate(images, targets, batch_size=32, verbose=0)
        assert after < before - 0.05, (before, after)

    def test_saving_round_trip(self, tmp_path):
        augmenter = keras.layers.Pipeline(
            [keras.layers.RandomFlip("vertical", seed=2), keras.layers.GaussianNoise(0.1, seed=3)]
        )
        model = _model(augmenter=augmenter, num_views=3)
        model.compile(optimizer="adam", loss=SupervisedContrastiveLoss(temperature=0.2))
        images, labels = _data(8)
        model.fit(images, labels, batch_size=8, epochs=1, verbose=0)
        path = tmp_path / "supcon.keras"
        model.save(path)
        loaded = keras.saving.load_model(path)
        assert isinstance(loaded, SupConModel) and loaded.num_views == 3
        assert isinstance(loaded.augmenter, keras.layers.Pipeline)
        assert loaded.loss.temperature == 0.2
        np.testing.assert_allclose(loaded(images), model(images), rtol=1e-5, atol=1e-5)

    def test_get_config_round_trip(self):
        model = _model(augmenter=keras.layers.GaussianNoise(0.1), num_views=4)
        model(_data(2)[0])
        config = model.get_config()
        assert config["num_views"] == 4
        clone = SupConModel.from_config(config)
        assert clone.num_views == 4 and isinstance(clone.projection_head, ProjectionHead)
        assert clone.projection_head.output_units == 8
        assert clone.get_config()["augmenter"]["class_name"] == "GaussianNoise"

    @pytest.mark.parametrize(
        ("kwargs", "match"),
        [
            ({"encoder": "small_cnn"}, "`encoder` must be a keras.Model, got str"),
            ({"num_views": 0}, "`num_views` must be a positive integer, got 0"),
            ({"augmenter": "flip"}, "`augmenter` must be a Keras layer or None"),
        ],
    )
    def test_errors(self, kwargs, match):
        arguments = {"encoder": _encoder(), **kwargs}
        with pytest.raises(ValueError, match=match):
            SupConModel(**arguments)


def _compile(model, learning_rate=1e-2):
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )


class TestClassifiers:
    def test_linear_classifier_keeps_the_encoder_frozen(self):
        encoder = _encoder()
        images, labels = _data()
        # Move the BatchNorm statistics away from their initial values first.
        encoder(images, training=True)
        before = _weights(encoder)
        classifier = build_linear_classifier(encoder, num_classes=2)
        _compile(classifier)
        head = classifier.get_layer("logits")
        head_before = np.array(head.kernel)
        loss_before = classifier.evaluate(images, labels, verbose=0)[0]
        classifier.fit(images, labels, batch_size=8, epochs=5, verbose=0)
        for old, new in zip(before, _weights(encoder), strict=True):
            np.testing.assert_array_equal(old, new)
        assert not np.allclose(head_before, np.array(head.kernel))
        assert classifier.evaluate(images, labels, verbose=0)[0] < loss_before
        assert len(classifier.trainable_weights) == 2

    def test_linear_classifier_is_logistic_regression_on_features(self):
        encoder = _encoder()
        classifier = build_linear_classifier(encoder, num_classes=3)
        images, _ = _data(4)
        features = encoder(images, training=False).numpy().astype("float64")
        head = classifier.get_layer("logits")
        expected = features @ np.array(head.kernel) + np.array(head.bias)
        np.testing.assert_allclose(classifier(images), expected, rtol=1e-4, atol=1e-5)

    def test_hidden_layer_and_dropout(self):
        classifier = build_linear_classifier(_encoder(), 2, hidden_units=16, dropout=0.5)
        names = [layer.name for layer in classifier.layers]
        assert {"features_dropout", "hidden_dense", "hidden_dropout", "logits"} <= set(names)
        assert classifier.get_layer("hidden_dense").units == 16

    def test_first_keras_example_classifier_has_the_published_parameter_count(self):
        # The 2020/11/01 Keras example: Dropout 0.5, Dense(64) linear, Dropout 0.5,
        # Dense(10) on its 314,432-parameter encoder: 323,338 in all (8,256 + 650 in the head).
        for build in (build_linear_classifier, build_cross_entropy_classifier):
            classifier = build(
                build_encoder("keras_example_cnn", (32, 32, 3)),
                10,
                hidden_units=64,
                dropout=0.5,
                hidden_activation="linear",
            )
            head = [(layer.name, layer.count_params()) for layer in classifier.layers[2:]]
            assert head == [
                ("features_dropout", 0),
                ("hidden_dense", 8256),
                ("hidden_dropout", 0),
                ("logits", 650),
            ]
            assert classifier.count_params() == 323_338
            assert classifier.get_layer("hidden_dense").get_config()["activation"] == "linear"

    def test_linear_hidden_layer_makes_the_head_affine(self):
        encoder = _encoder()
        classifier = build_linear_classifier(encoder, 3, hidden_units=5, hidden_activation="linear")
        images, _ = _data(4)
        features = encoder(images, training=False).numpy().astype("float64")
        hidden, logits = classifier.get_layer("hidden_dense"), classifier.get_layer("logits")
        expected = (features @ np.array(hidden.kernel) + np.array(hidden.bias)) @ np.array(
            logits.kernel
        ) + np.array(logits.bias)
        np.testing.assert_allclose(classifier(images), expected, rtol=1e-4, atol=1e-5)

    def test_standardized_features_have_zero_mean_and_unit_variance(self):
        encoder = _encoder()
        classifier = build_linear_classifier(encoder, 2, standardize=True)
        standardization = classifier.get_layer("feature_standardization")
        assert standardization.trainable_weights == []  # no scale, no offset
        assert len(classifier.trainable_weights) == 2  # only the logits layer
        images, _ = _data(32)
        features = encoder(images, training=False).numpy().astype("float64")
        batch = keras.Model(classifier.input, standardization.output)(images, training=True)
        expected = (features - features.mean(0)) / np.sqrt(
            features.var(0) + standardization.epsilon
        )
        np.testing.assert_allclose(batch, expected, rtol=1e-3, atol=1e-4)

    def test_cross_entropy_baseline_trains_the_encoder(self):
        encoder = _encoder()
        before = [np.array(weight) for weight in encoder.trainable_weights]
        model = build_cross_entropy_classifier(encoder, num_classes=2)
        _compile(model)
        images, labels = _data()
        model.fit(images, labels, batch_size=8, epochs=2, verbose=0)
        changed = [
            not np.allclose(old, np.array(new))
            for old, new in zip(before, encoder.trainable_weights, strict=True)
        ]
        assert all(changed)

    def test_classifier_saving_round_trip(self, tmp_path):
        classifier = build_linear_classifier(_encoder(), 2, hidden_units=4)
        path = tmp_path / "classifier.keras"
        classifier.save(path)
        loaded = keras.saving.load_model(path)
        images, _ = _data(4)
        np.testing.assert_allclose(loaded(images), classifier(images), rtol=1e-5, atol=1e-5)

    @pytest.mark.parametrize("build", [build_linear_classifier, build_cross_entropy_classifier])
    @pytest.mark.parametrize(
        ("kwargs", "match"),
        [
            ({"num_classes": 1}, "`num_classes` must be an integer >= 2, got 1"),
            ({"hidden_units": 0}, "`hidden_units` must be a positive integer or None"),
            ({"dropout": 1.0}, r"`dropout` must be in \[0, 1\)"),
            ({"encoder": None}, "`encoder` must be a keras.Model, got NoneType"),
            ({"hidden_activation": "tanh"}, "Unknown `hidden_activation` 'tanh'"),
        ],
    )
    def test_errors(self, build, kwargs, match):
        arguments = {"encoder": _encoder(), "num_classes": 2, **kwargs}
        with pytest.raises(ValueError, match=match):
            build(**arguments)


def _hybrid(hybrid_weight=0.7):
    supcon = SupConModel(_encoder(), projection_head=ProjectionHead(16), num_views=2)
    model = HybridSupConModel(supcon, num_classes=3, hybrid_weight=hybrid_weight)
    model.compile(optimizer="sgd", loss=SupervisedContrastiveLoss(temperature=0.2))
    return model


class TestHybrid:
    def test_gradient_is_the_weighted_sum_of_its_parts(self):
        # d(lambda * SupCon + CE) = lambda * dSupCon + dCE, each part from its own tape;
        # the parts are recomputed independently: SupCon from the embeddings (the loss
        # class), CE by hand from the logits (log-softmax over every view).
        images, labels = _data(12)
        labels = labels % 3
        model = _hybrid(0.7)
        model(images[:2])
        variables = model.trainable_variables

        def gradients(objective):
            with tf.GradientTape() as tape:
                embeddings, logits = model(images, training=True)
                value = objective(embeddings, logits)
            return [
                g if g is not None else tf.zeros_like(v)
                for g, v in zip(tape.gradient(value, variables), variables, strict=True)
            ]

        def supcon(embeddings, _):
            return SupervisedContrastiveLoss(temperature=0.2)(labels, embeddings)

        def cross_entropy(_, logits):
            log_probabilities = tf.nn.log_softmax(logits, axis=-1)
            picked = tf.gather(log_probabilities, labels, axis=2, batch_dims=1)
            return -tf.reduce_mean(picked)

        def total(embeddings, logits):
            return model.compute_loss(images, labels, (embeddings, logits))

        whole = gradients(total)
        parts = [
            0.7 * a + b for a, b in zip(gradients(supcon), gradients(cross_entropy), strict=True)
        ]
        for got, expected in zip(whole, parts, strict=True):
            np.testing.assert_allclose(
                got.numpy(), expected.numpy(), rtol=1e-5, atol=1e-6 * np.abs(expected).max()
            )

    def test_fit_and_classifier(self):
        images, labels = _data(16)
        model = _hybrid()
        history = model.fit(images, labels % 3, batch_size=8, epochs=1, verbose=0)
        assert np.isfinite(history.history["loss"][0])
        assert tuple(model.classifier()(images[:3]).shape) == (3, 3)

    def test_get_config_round_trip(self):
        model = _hybrid(0.25)
        restored = HybridSupConModel.from_config(model.get_config())
        assert (restored.num_classes, restored.hybrid_weight) == (3, 0.25)
        assert restored.supcon_model.num_views == 2

    @pytest.mark.parametrize(
        "arguments,match",
        [
            ({"hybrid_weight": 0.0}, "`hybrid_weight` must be a positive finite number, got 0.0"),
            ({"hybrid_weight": "big"}, "`hybrid_weight` must be a positive finite number"),
            ({"num_classes": 1}, "`num_classes` must be an integer >= 2, got 1"),
        ],
    )
    def test_bad_arguments(self, arguments, match):
        supcon = SupConModel(_encoder())
        options = {"num_classes": 3, **arguments}
        with pytest.raises(ValueError, match=match):
            HybridSupConModel(supcon, **options)

    def test_needs_a_supcon_model(self):
        with pytest.raises(
            ValueError, match="`supcon_model` must be a SupConModel, got Sequential"
        ):
            HybridSupConModel(keras.Sequential(), num_classes=3)
