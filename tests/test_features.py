"""Tests of the frozen-feature linear stage: supcon_tf.experiment.features and linear_head."""

import json
import shutil
from pathlib import Path

import keras
import numpy as np
import pytest

from supcon_tf.data import make_dataset
from supcon_tf.errors import UsageError
from supcon_tf.experiment import ExperimentConfig, run_experiment
from supcon_tf.experiment.features import FrozenFeatures, embed, embed_inputs
from supcon_tf.models import (
    build_cross_entropy_classifier,
    build_encoder,
    build_linear_classifier,
    linear_head,
)
from supcon_tf.training.checkpoints import TrainingCheckpoint


def _encoder():
    return build_encoder("small_cnn", (6, 6, 1), width_multiplier=0.125)


def _images(count, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((count, 6, 6, 1)).astype("float32"), rng.integers(0, 3, count)


def _flatten():
    """An "encoder" whose features are the pixels, so batches can be traced to images."""
    return keras.Sequential([keras.Input((2, 2, 1)), keras.layers.Flatten()])


class _DoubleWhenTraining(keras.layers.Layer):
    """A stand-in augmenter: doubles the images in training mode only."""

    def call(self, images, training=False):
        return images * 2.0 if training else images


class TestLinearHead:
    def test_head_on_features_is_the_classifier_on_images(self):
        classifier = build_linear_classifier(_encoder(), 3, hidden_units=5, standardize=True)
        head = linear_head(classifier)
        images, _ = _images(16)
        features = embed(classifier.layers[1], images, batch_size=16)
        for training in (False, True):
            np.testing.assert_allclose(
                head(features, training=training),
                classifier(images, training=training),
                rtol=1e-5,
                atol=1e-6,
            )

    def test_head_matches_a_float64_transcription(self):
        # Standardisation with the batch's statistics (training), ReLU hidden layer, logits.
        classifier = build_linear_classifier(_encoder(), 3, hidden_units=5, standardize=True)
        head = linear_head(classifier)
        features = np.random.default_rng(1).normal(size=(12, head.input_shape[1]))
        epsilon = classifier.get_layer("feature_standardization").epsilon
        standardized = (features - features.mean(0)) / np.sqrt(features.var(0) + epsilon)
        hidden, logits = classifier.get_layer("hidden_dense"), classifier.get_layer("logits")
        hidden_values = np.maximum(
            standardized @ np.array(hidden.kernel, "float64") + np.array(hidden.bias), 0.0
        )
        expected = hidden_values @ np.array(logits.kernel, "float64") + np.array(logits.bias)
        actual = head(features.astype("float32"), training=True)
        np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=1e-5)

    def test_head_shares_the_classifiers_weights(self):
        classifier = build_linear_classifier(_encoder(), 2)
        head = linear_head(classifier)
        head.get_layer("logits").kernel.assign(np.ones(head.get_layer("logits").kernel.shape))
        np.testing.assert_array_equal(classifier.get_layer("logits").kernel, 1.0)
        assert head.input_shape == classifier.layers[1].output_shape

    def test_one_epoch_on_features_trains_the_head_as_one_on_images(self):
        # The image path (before): the classifier fits on shuffled image batches. The
        # features path: its head fits on the frozen features of the same batches.
        encoder = _encoder()
        before = build_linear_classifier(encoder, 3, hidden_units=4, standardize=True)
        after = build_linear_classifier(encoder, 3, hidden_units=4, standardize=True)
        after.set_weights(before.get_weights())
        images, labels = _images(40)
        train = embed(encoder, images, 8)
        empty = (np.zeros((0, train.shape[1]), "float32"), np.zeros(0, "int64"))
        features = FrozenFeatures(train[None], labels, empty, empty, num_classes=3)
        head = linear_head(after)
        for model in (before, head):
            model.compile(
                keras.optimizers.SGD(0.1, momentum=0.9),
                keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            )
        initial = [np.array(weight) for weight in before.get_weights()]
        batches = make_dataset(
            images, labels, batch_size=8, shuffle=True, seed=3, drop_remainder=True, epochs=2
        )
        before.fit(batches, epochs=2, steps_per_epoch=5, shuffle=False, verbose=0)
        head.fit(
            features.training_batches(8, seed=3, epochs=2, initial_epoch=0, steps_done=0),
            epochs=2,
            steps_per_epoch=5,
            shuffle=False,
            verbose=0,
        )
        for expected, actual in zip(before.get_weights(), after.get_weights(), strict=True):
            np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=1e-5)
        # Training moved the head (the comparison is not between untrained weights).
        assert not np.allclose(initial[-2], after.get_layer("logits").kernel)

    @pytest.mark.parametrize(
        ("model", "match"),
        [
            (None, "`classifier` must be a model of build_linear_classifier"),
            (
                lambda: build_cross_entropy_classifier(_encoder(), 2),
                r"second layer is the frozen encoder; got Functional \(trainable=True\)",
            ),
        ],
    )
    def test_errors(self, model, match):
        with pytest.raises(ValueError, match=match):
            linear_head(model() if model else None)


class TestEmbed:
    def test_features_of_every_image_in_order(self):
        encoder = _encoder()
        images, _ = _images(7)
        expected = encoder(images, training=False)
        np.testing.assert_allclose(embed(encoder, images, 3), expected, rtol=1e-5, atol=1e-6)

    def test_augmenter_runs_in_training_mode_before_the_encoder(self):
        images = np.arange(12, dtype="float32").reshape(3, 2, 2, 1)
        features = embed(_flatten(), images, 2, augmenter=_DoubleWhenTraining(name="double"))
        np.testing.assert_array_equal(features, 2.0 * images.reshape(3, 4))

    def test_empty_split(self):
        assert embed(_flatten(), np.zeros((0, 2, 2, 1), "float32"), 4).shape == (0, 4)

    def test_copies_must_be_positive(self):
        class Inputs:
            splits = None

        with pytest.raises(UsageError, match="`copies` must be an integer >= 1, got 0"):
            embed_inputs(
                _flatten(), Inputs(), 4, augmenter=_DoubleWhenTraining(name="double"), copies=0
            )


def _pixel_features(images, labels, copies=1):
    """`FrozenFeatures` whose copy `k` holds the flattened pixels plus `1000 * k`."""
    pixels = images.reshape(len(images), -1)
    train = np.stack([pixels + 1000.0 * copy for copy in range(copies)])
    empty = (np.zeros((0, pixels.shape[1]), "float32"), np.zeros(0, "int64"))
    return FrozenFeatures(train, labels, empty, (pixels[:3], labels[:3]), num_classes=3)


class TestFrozenFeatures:
    def test_batches_are_those_of_the_images_from_any_position(self):
        images = np.arange(10 * 4, dtype="float32").reshape(10, 2, 2, 1)
        labels = np.arange(10) % 3
        features = _pixel_features(images, labels)
        # Resumed at epoch 1, step 2, with 3 batches of 3 per epoch, to the end of epoch 2.
        stream = features.training_batches(3, seed=5, epochs=3, initial_epoch=1, steps_done=2)
        expected = make_dataset(
            images,
            labels,
            batch_size=3,
            shuffle=True,
            seed=5,
            drop_remainder=True,
            epochs=3,
            initial_epoch=1,
        ).skip(2)
        pairs = list(zip(stream, expected, strict=True))
        assert len(pairs) == 4
        for (batch, batch_labels), (image_batch, image_labels) in pairs:
            np.testing.assert_array_equal(batch, np.reshape(image_batch, (3, 4)))
            np.testing.assert_array_equal(batch_labels, image_labels)

    def test_epoch_e_trains_on_copy_e_modulo_the_copies(self):
        images = np.zeros((6, 2, 2, 1), "float32")
        features = _pixel_features(images, np.zeros(6, "int64"), copies=3)
        stream = features.training_batches(2, seed=0, epochs=5, initial_epoch=0, steps_done=0)
        copies = [int(batch[0, 0] // 1000) for batch, _ in stream]
        assert copies == [0, 0, 0, 1, 1, 1, 2, 2, 2, 0, 0, 0, 1, 1, 1]

    def test_evaluation_batches(self):
        images = np.arange(6 * 4, dtype="float32").reshape(6, 2, 2, 1)
        features = _pixel_features(images, np.arange(6) % 3)
        assert features.evaluation_batches("validation", 2) is None
        (batch, labels), *_ = features.evaluation_batches("test", 8)
        np.testing.assert_array_equal(batch, images[:3].reshape(3, 4))
        np.testing.assert_array_equal(labels, [0, 1, 2])
        assert (features.num_train, features.num_validation, features.num_test) == (6, 0, 3)


# ----------------------------------------------------------------------------- the stage


class _KilledError(Exception):
    """Stands in for a killed process."""


def _tiny_npz(path):
    rng = np.random.default_rng(0)
    labels = np.arange(80) % 2
    images = rng.random((80, 6, 6, 1)) * 0.4
    images[labels == 0, :3] += 0.6
    images[labels == 1, 3:] += 0.6
    np.savez(
        path,
        x_train=images[:64].astype("float32"),
        y_train=labels[:64],
        x_test=images[64:].astype("float32"),
        y_test=labels[64:],
    )
    return str(path)


def _stage_config(root, name):
    # 48 training images in batches of 16: 3 steps per epoch; augmented, so the
    # classifier stage embeds 3 copies (one per epoch) of the training set.
    return ExperimentConfig(
        dataset=_tiny_npz(root / "tiny.npz"),
        validation_fraction=0.25,
        width_multiplier=0.125,
        batch_size=16,
        pretrain_epochs=1,
        classifier_epochs=3,
        augment="translate",
        baseline=False,
        evaluate=False,
        backup_steps=1,
        model_dir=str(root / name),
        verbose=0,
    )


@pytest.fixture(scope="module")
def augmented_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("features")
    config = _stage_config(root, "straight")
    return root, config, run_experiment(config)


def test_saved_classifier_maps_images_to_logits(augmented_run):
    _, config, report = augmented_run
    classifier = keras.saving.load_model(Path(config.model_dir) / "classifier.keras")
    assert classifier.input_shape == (None, 6, 6, 1)
    assert classifier.output_shape == (None, 2)
    data = np.load(config.dataset)
    predictions = np.argmax(classifier.predict(data["x_test"], verbose=0), axis=-1)
    accuracy = float(np.mean(predictions == data["y_test"]))
    assert accuracy == pytest.approx(report["supcon"]["test_accuracy"], abs=1e-6)
    assert int(classifier.optimizer.iterations) == 9  # 3 epochs x 3 steps, on the features


def test_stage_resumed_mid_epoch_trains_the_same_classifier(augmented_run, monkeypatch):
    root, straight_config, straight = augmented_run
    config = _stage_config(root, "resumed")
    # The same frozen encoder: the resumed run starts from the straight run's pretraining.
    for name in ("encoder.keras", "phases/pretrain.json"):
        (Path(config.model_dir) / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(Path(straight_config.model_dir) / name, Path(config.model_dir) / name)
    original = TrainingCheckpoint.on_train_batch_end

    def on_train_batch_end(self, batch, logs=None):
        original(self, batch, logs)
        if self.name == "classifier" and self.global_step == 5:  # epoch 1, step 2
            raise _KilledError

    with monkeypatch.context() as patch:
        patch.setattr(TrainingCheckpoint, "on_train_batch_end", on_train_batch_end)
        with pytest.raises(_KilledError):
            run_experiment(config)
    resumed = run_experiment(config)
    marker = json.loads((Path(config.model_dir) / "phases" / "classifier.json").read_text())
    assert marker["resumed_from_epoch"] == 1
    weights = [
        keras.saving.load_model(Path(folder) / "classifier.keras").get_weights()
        for folder in (straight_config.model_dir, config.model_dir)
    ]
    for expected, actual in zip(*weights, strict=True):
        np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-6)
    assert resumed["supcon"]["test_accuracy"] == straight["supcon"]["test_accuracy"]
    assert resumed["supcon"]["selected_epoch"] == straight["supcon"]["selected_epoch"]
