"""Tests of supcon_tf.models.encoders: shapes, stems, parameter counts of the reference ResNets."""

import keras
import numpy as np
import pytest

from supcon_tf.models.encoders import build_encoder


def _trainable_parameters(model):
    return sum(int(np.prod(weight.shape)) for weight in model.trainable_weights)


def _add_layers(model):
    return sum(isinstance(layer, keras.layers.Add) for layer in model.layers)


class TestResNets:
    # Trainable parameters of the published architectures without their classifier:
    # torchvision's resnet18/34/50/101 (11,689,512 / 21,797,672 / 25,557,032 /
    # 44,549,160 parameters) minus their 1000-way fc layer (513,000 or 2,049,000).
    @pytest.mark.parametrize(
        ("name", "expected"),
        [
            ("resnet18", 11_689_512 - 513_000),
            pytest.param("resnet34", 21_797_672 - 513_000, marks=pytest.mark.slow),
            ("resnet50", 25_557_032 - 2_049_000),
            pytest.param("resnet101", 44_549_160 - 2_049_000, marks=pytest.mark.slow),
        ],
    )
    def test_imagenet_stem_matches_torchvision_parameter_count(self, name, expected):
        encoder = build_encoder(name, (32, 32, 3), stem="imagenet")
        assert _trainable_parameters(encoder) == expected

    def test_cifar_stem_resnet18_matches_reference_count(self):
        # The CIFAR ResNet-18 of the SupCon reference code has 11,173,962 parameters
        # with its 10-way linear layer (512 * 10 + 10).
        encoder = build_encoder("resnet18", (32, 32, 3), stem="cifar")
        assert _trainable_parameters(encoder) == 11_173_962 - 5_130

    @pytest.mark.parametrize(
        ("name", "blocks", "features"),
        [
            ("resnet18", 8, 512),
            pytest.param("resnet34", 16, 512, marks=pytest.mark.slow),
            ("resnet50", 16, 2048),
            pytest.param("resnet101", 33, 2048, marks=pytest.mark.slow),
        ],
    )
    def test_blocks_and_feature_width(self, name, blocks, features):
        encoder = build_encoder(name, (16, 16, 3), width_multiplier=0.125)
        assert _add_layers(encoder) == blocks
        assert encoder.output_shape == (None, features // 8)

    def test_cifar_stem_keeps_resolution_imagenet_stem_divides_by_four(self):
        cifar = build_encoder("resnet18", (32, 32, 3), width_multiplier=0.125)
        imagenet = build_encoder("resnet18", (32, 32, 3), width_multiplier=0.125, stem="imagenet")
        assert cifar.get_layer("stem_conv").kernel_size == (3, 3)
        assert cifar.get_layer("stem_conv").strides == (1, 1)
        assert "stem_pool" not in [layer.name for layer in cifar.layers]
        assert imagenet.get_layer("stem_conv").kernel_size == (7, 7)
        assert imagenet.get_layer("stem_conv").strides == (2, 2)
        # Final feature maps: 32 / 8 = 4 (three strided stages) vs 32 / 32 = 1.
        assert cifar.get_layer("stage4_block2_out").output.shape[1] == 4
        assert imagenet.get_layer("stage4_block2_out").output.shape[1] == 1

    def test_forward_and_saving(self, tmp_path):
        encoder = build_encoder("resnet18", (16, 16, 3), width_multiplier=0.125)
        images = np.random.default_rng(0).random((2, 16, 16, 3)).astype("float32")
        path = tmp_path / "encoder.keras"
        encoder.save(path)
        loaded = keras.saving.load_model(path)
        np.testing.assert_allclose(loaded(images), encoder(images), rtol=1e-5, atol=1e-5)


class TestSmallCnnAndOthers:
    def test_small_cnn(self):
        encoder = build_encoder("small_cnn", (8, 8, 1))
        assert encoder.output_shape == (None, 128)
        assert build_encoder("small_cnn", (8, 8, 1), width_multiplier=0.5).output_shape == (
            None,
            64,
        )

    def test_input_scaling_maps_unit_interval_to_symmetric_range(self):
        encoder = build_encoder("small_cnn", (8, 8, 1))
        scaling = keras.Model(encoder.input, encoder.get_layer("input_scaling").output)
        np.testing.assert_allclose(scaling(np.array([[[[0.0]] * 8] * 8])).numpy().min(), -1.0)
        np.testing.assert_allclose(scaling(np.ones((1, 8, 8, 1))).numpy().max(), 1.0)

    @pytest.mark.slow
    def test_keras_example_encoder(self):
        encoder = build_encoder("resnet50v2_keras_example", (32, 32, 3))
        assert encoder.output_shape == (None, 2048)

    def test_first_keras_example_cnn_has_the_published_shapes_and_parameters(self):
        # The 2020/11/01 Keras example's encoder summary: output shapes and parameters.
        encoder = build_encoder("keras_example_cnn", (32, 32, 3))
        published = [
            ((None, 30, 30, 32), 896),
            ((None, 15, 15, 32), 0),
            ((None, 13, 13, 64), 18496),
            ((None, 6, 6, 64), 0),
            ((None, 2304), 0),
            ((None, 128), 295040),
        ]
        layers = [(layer.output.shape, layer.count_params()) for layer in encoder.layers]
        assert layers == published
        assert encoder.count_params() == 314_432
        # Linear 128-d features, and images go in as they are (no input scaling).
        assert encoder.layers[-1].get_config()["activation"] == "linear"
        assert not any(layer.name == "input_scaling" for layer in encoder.layers)

    def test_model_with_features_passes_through(self):
        model = keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Flatten()])
        assert build_encoder(model) is model

    def test_model_with_feature_maps_gets_pooled(self):
        model = keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Conv2D(3, 1)])
        encoder = build_encoder(model)
        images = np.random.default_rng(0).random((2, 4, 4, 1)).astype("float32")
        np.testing.assert_allclose(
            encoder(images), model(images).numpy().mean(axis=(1, 2)), rtol=1e-5, atol=1e-6
        )

    @pytest.mark.slow
    def test_keras_application_passes_through(self):
        application = keras.applications.MobileNetV2(
            input_shape=(32, 32, 3), weights=None, include_top=False, alpha=0.35
        )
        assert build_encoder(application).output_shape == (None, 1280)


@pytest.mark.parametrize(
    ("args", "kwargs", "match"),
    [
        (("vgg", (8, 8, 1)), {}, "Unknown encoder 'vgg'"),
        (("resnet18", (8, 8, 1)), {"stem": "tiny"}, "Unknown stem 'tiny'"),
        (("resnet18", (8, 8, 1)), {"width_multiplier": 0}, "`width_multiplier` must be positive"),
        (("small_cnn", (8, 8)), {}, r"`input_shape` must be \(height, width, channels\)"),
        (("small_cnn", None), {}, "`input_shape` must be"),
    ],
)
def test_errors(args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        build_encoder(*args, **kwargs)


def test_model_with_sequence_output_is_rejected():
    model = keras.Sequential([keras.Input((4, 3)), keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="must output features"):
        build_encoder(model)
