from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tlsweep.config import BackboneChoice
from tlsweep.errors import ConfigError
from tlsweep.training.backbones import (
    REGISTRY,
    block_of,
    block_starts,
    build,
    preprocessor,
    resolve,
)

WHERE = "space.yaml: backbone.choices.X"
REQUIRED = {"MobileNetV2", "MobileNetV3Small", "MobileNetV3Large", "EfficientNetB0",
            "EfficientNetV2B0", "ResNet50", "ResNet50V2", "DenseNet121", "ConvNeXtTiny",
            "Xception"}


def test_registry_covers_the_required_backbones() -> None:
    assert set(REGISTRY) >= REQUIRED


def test_unknown_backbone_lists_known_ones() -> None:
    with pytest.raises(ConfigError, match=r"unknown backbone 'MobileNetV9'.*MobileNetV2"):
        resolve("MobileNetV9", BackboneChoice(weights="none"), 160, WHERE)


def test_image_size_below_minimum() -> None:
    with pytest.raises(ConfigError, match=r"at least 71 px.*image_size is 64"):
        resolve("Xception", BackboneChoice(weights="none"), 64, WHERE)
    assert resolve("Xception", BackboneChoice(weights="none"), 71, WHERE).min_size == 71


def test_missing_weights_file(tmp_path: Path) -> None:
    choice = BackboneChoice(weights=str(tmp_path / "absent.weights.h5"))
    with pytest.raises(ConfigError, match=r"X\.weights: weights file .*absent.* does not exist"):
        resolve("MobileNetV2", choice, 96, WHERE)


def test_imagenet_without_network_or_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TLSWEEP_OFFLINE", "1")
    with pytest.raises(ConfigError, match=r"not in the Keras cache .*network is unreachable"):
        resolve("ResNet50", BackboneChoice(weights="imagenet"), 96, WHERE)


def test_imagenet_found_in_keras_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TLSWEEP_OFFLINE", "1")
    cache = tmp_path / "keras_home" / "models"
    cache.mkdir(parents=True)
    (cache / "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5").write_bytes(b"x")
    assert resolve("ResNet50", BackboneChoice(weights="imagenet"), 96, WHERE).pretrained


def test_custom_keras_backbone_must_declare_preprocessing(tmp_path: Path) -> None:
    model = tmp_path / "mine.keras"
    model.write_bytes(b"zip")
    with pytest.raises(ConfigError, match="must declare its preprocessing"):
        resolve("Mine", BackboneChoice(model=model), 32, WHERE)
    with pytest.raises(ConfigError, match="unknown preprocessing 'rescale'"):
        resolve("Mine", BackboneChoice(model=model, preprocessing="rescale"), 32, WHERE)
    with pytest.raises(ConfigError, match="does not exist"):
        resolve("Mine", BackboneChoice(model=tmp_path / "gone.keras", preprocessing="unit"), 32,
                WHERE)
    ok = resolve("Mine", BackboneChoice(model=model, preprocessing="ResNet50"), 32, WHERE)
    assert ok.preprocessing == "ResNet50" and ok.pretrained


@pytest.mark.slow
def test_each_backbone_gets_its_own_preprocessing() -> None:
    import keras

    pixels = np.random.default_rng(0).uniform(0, 255, (2, 8, 8, 3)).astype(np.float32)
    resnet = preprocessor(resolve("ResNet50", BackboneChoice(weights="none"), 32, WHERE))
    mobilenet = preprocessor(resolve("MobileNetV2", BackboneChoice(weights="none"), 32, WHERE))
    expected = keras.applications.resnet50.preprocess_input(pixels.copy())
    np.testing.assert_allclose(np.asarray(resnet(pixels.copy())), expected, rtol=1e-6)
    # MobileNet scales to [-1, 1]; ResNet subtracts ImageNet means in BGR ("caffe" mode).
    assert not np.allclose(np.asarray(resnet(pixels.copy())), np.asarray(mobilenet(pixels.copy())))
    np.testing.assert_allclose(np.asarray(mobilenet(pixels.copy())), pixels / 127.5 - 1, atol=1e-5)


@pytest.mark.slow
def test_local_weights_file_is_loaded(tmp_path: Path) -> None:
    import keras

    keras.utils.set_random_seed(1)
    source = keras.applications.MobileNetV3Small(include_top=False, weights=None,
                                                 input_shape=(32, 32, 3))
    path = tmp_path / "mnv3.weights.h5"
    source.save_weights(path)
    keras.utils.set_random_seed(2)
    model = build(resolve("MobileNetV3Small", BackboneChoice(weights=str(path)), 32, WHERE), 32)
    for mine, theirs in zip(model.weights, source.weights, strict=True):
        np.testing.assert_array_equal(np.asarray(mine), np.asarray(theirs))


def test_block_boundaries_follow_keras_layer_names() -> None:
    names = ["Conv1", "bn_Conv1", "block_1_expand", "block_1_expand_BN", "block_1_project",
             "block_10_expand", "block_10_add", "Conv_1", "Conv_1_bn", "out_relu"]
    kernels = [True, False, True, False, True, True, False, True, False, False]
    assert block_starts(names, kernels) == [0, 2, 5, 7, 10]
    assert block_of("conv4_block2_out") == "conv4_block2"
    assert block_of("block2a_se_squeeze") == "block2a"
    assert block_of("expanded_conv_5_add") == "expanded_conv_5"
    assert block_of("Conv_1_bn") is None


def test_unnamed_layers_group_behind_their_convolution() -> None:
    names = ["conv", "bn", "relu", "pool", "conv_1", "bn_1", "relu_1", "dense", "relu_2"]
    kernels = [True, False, False, False, True, False, False, True, False]
    assert block_starts(names, kernels) == [0, 4, 7, 9]
