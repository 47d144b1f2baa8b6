"""Backbone name -> constructor, its own preprocess_input, its minimum input size and its weights.

The registry is plain data, so that checking a sweep (names, sizes, weight files) needs no
TensorFlow; only ``build`` and ``preprocessor`` import Keras.
"""

from __future__ import annotations

import os
import re
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tlsweep.config import BackboneChoice
from tlsweep.errors import ConfigError
from tlsweep.system import environment


@dataclass(frozen=True)
class Entry:
    constructor: str  # attribute of keras.applications
    module: str  # keras.applications sub-module holding its preprocess_input
    min_size: int
    cache_prefix: str  # how Keras names the downloaded no-top weights in ~/.keras/models


REGISTRY: dict[str, Entry] = {
    "MobileNetV2": Entry("MobileNetV2", "mobilenet_v2", 32, "mobilenet_v2_weights_tf_dim_ordering"),
    "MobileNetV3Small": Entry("MobileNetV3Small", "mobilenet_v3", 32, "weights_mobilenet_v3_small"),
    "MobileNetV3Large": Entry("MobileNetV3Large", "mobilenet_v3", 32, "weights_mobilenet_v3_large"),
    "EfficientNetB0": Entry("EfficientNetB0", "efficientnet", 32, "efficientnetb0"),
    "EfficientNetV2B0": Entry("EfficientNetV2B0", "efficientnet_v2", 32, "efficientnetv2-b0"),
    "ResNet50": Entry("ResNet50", "resnet50", 32, "resnet50_weights_tf_dim_ordering"),
    "ResNet50V2": Entry("ResNet50V2", "resnet_v2", 32, "resnet50v2_weights_tf_dim_ordering"),
    "DenseNet121": Entry("DenseNet121", "densenet", 32, "densenet121_weights_tf_dim_ordering"),
    "ConvNeXtTiny": Entry("ConvNeXtTiny", "convnext", 32, "convnext_tiny"),
    "Xception": Entry("Xception", "xception", 71, "xception_weights_tf_dim_ordering"),
}

# Preprocessing for custom (.keras) backbones, which must declare theirs.
SIMPLE_PREPROCESSING = {
    "none": (1.0, 0.0),
    "unit": (1 / 255.0, 0.0),  # [0, 1]
    "symmetric": (1 / 127.5, -1.0),  # [-1, 1]
}


@dataclass(frozen=True)
class Backbone:
    """A checked backbone choice, ready to build."""

    name: str
    weights: str  # "imagenet", "none", a .weights.h5 path, or "saved" for a .keras model
    model_path: Path | None
    preprocessing: str  # a registry name or a SIMPLE_PREPROCESSING key
    min_size: int

    @property
    def pretrained(self) -> bool:
        return self.weights != "none"


def keras_cache_dir() -> Path:
    return Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "models"


def _network_reachable(host: str = "storage.googleapis.com", port: int = 443) -> bool:
    if os.environ.get(environment.OFFLINE, "") not in ("", "0"):
        return False
    try:
        socket.create_connection((host, port), timeout=3).close()
        return True
    except OSError:
        return False


def _imagenet_cached(entry: Entry) -> bool:
    cache = keras_cache_dir()
    return cache.is_dir() and any(p.name.startswith(entry.cache_prefix) for p in cache.iterdir())


def _check_preprocessing(name: str, where: str) -> str:
    if name not in SIMPLE_PREPROCESSING and name not in REGISTRY:
        allowed = ", ".join([*SIMPLE_PREPROCESSING, *REGISTRY])
        raise ConfigError(f"{where}.preprocessing: unknown preprocessing {name!r}; allowed: "
                          f"{allowed}.")
    return name


def _custom(name: str, choice: BackboneChoice, where: str) -> Backbone:
    path = choice.model
    assert path is not None
    if path.suffix != ".keras":
        raise ConfigError(f"{where}.model: {path} is not a .keras file. Save the feature "
                          f"extractor with model.save('name.keras').")
    if not path.is_file():
        raise ConfigError(f"{where}.model: {path} does not exist. Fix the path (relative paths "
                          f"are resolved against the search-space file).")
    if choice.weights != "imagenet":
        raise ConfigError(f"{where}.weights: a .keras backbone carries its own weights; remove "
                          f"the weights key.")
    if choice.preprocessing is None:
        raise ConfigError(f"{where}.preprocessing: a .keras backbone must declare its "
                          f"preprocessing (one of: {', '.join(SIMPLE_PREPROCESSING)}, or a "
                          f"registered backbone name).")
    return Backbone(name, "saved", path, _check_preprocessing(choice.preprocessing, where),
                    choice.min_size or 1)


def _check_weights(name: str, entry: Entry, weights: str, where: str) -> None:
    if weights == "imagenet":
        if not _imagenet_cached(entry) and not _network_reachable():
            raise ConfigError(
                f"{where}.weights: imagenet weights for {name} are not in the Keras cache "
                f"({keras_cache_dir()}) and the network is unreachable. Download them on a "
                f"connected machine into that folder, or set weights to a local .weights.h5 file, "
                f"or to none to train from scratch.")
    elif weights != "none":
        path = Path(weights)
        if not path.is_file():
            raise ConfigError(f"{where}.weights: weights file {path} does not exist. Fix the "
                              f"path, or use imagenet or none.")
        if not path.name.endswith(".h5"):
            raise ConfigError(f"{where}.weights: {path} is not a .weights.h5 file.")


def resolve(name: str, choice: BackboneChoice, image_size: int, where: str) -> Backbone:
    """Check one choice before any training: name, weights, preprocessing and input size."""
    if choice.model is not None:
        backbone = _custom(name, choice, where)
    else:
        if name not in REGISTRY:
            raise ConfigError(f"{where}: unknown backbone {name!r}. Known: "
                              f"{', '.join(REGISTRY)}; or give model: path/to/backbone.keras.")
        entry = REGISTRY[name]
        _check_weights(name, entry, choice.weights, where)
        preprocessing = _check_preprocessing(choice.preprocessing or name, where)
        backbone = Backbone(name, choice.weights, None, preprocessing,
                            max(entry.min_size, choice.min_size or 0))
    if image_size < backbone.min_size:
        raise ConfigError(f"{where}: {name} needs images of at least {backbone.min_size} px but "
                          f"data.image_size is {image_size}. Raise data.image_size.")
    return backbone


# ----------------------------------------------------------------------------- Keras side
def preprocessor(backbone: Backbone) -> Any:
    """The backbone's own preprocess_input: never a generic rescale, unless declared."""
    if backbone.preprocessing in SIMPLE_PREPROCESSING:
        scale, offset = SIMPLE_PREPROCESSING[backbone.preprocessing]

        def simple(x: Any) -> Any:
            return x * scale + offset

        return simple
    import importlib

    module = importlib.import_module(
        f"keras.applications.{REGISTRY[backbone.preprocessing].module}")
    return module.preprocess_input


def build(backbone: Backbone, image_size: int) -> Any:
    """The backbone as a Keras model without its top."""
    import keras

    if backbone.model_path is not None:
        return keras.models.load_model(backbone.model_path, compile=False)
    constructor = getattr(keras.applications, REGISTRY[backbone.name].constructor)
    kwargs: dict[str, Any] = {"include_top": False,
                              "input_shape": (image_size, image_size, 3),
                              "weights": "imagenet" if backbone.weights == "imagenet" else None}
    model = constructor(**kwargs)
    if backbone.weights not in ("imagenet", "none"):
        model.load_weights(backbone.weights)
    return model


# Keras application layer names carry their block: block_3_expand (MobileNetV2), block2a_se
# (EfficientNet), conv4_block2_out (ResNet, DenseNet), expanded_conv_5_add (MobileNetV3).
_BLOCK = re.compile(r"^(.*?(?:block_?\d+[a-z]?|expanded_conv_\d+))(?:_|$)")


def block_of(layer_name: str) -> str | None:
    """The named block a layer belongs to, if its name says so."""
    found = _BLOCK.match(layer_name)
    return found.group(1) if found else None


def block_starts(layer_names: list[str], has_kernel: list[bool]) -> list[int]:
    """Indices where a block begins, plus the end: the cuts that never split a block. Outside
    named blocks, a layer with a kernel (convolution, dense) starts a block and the layers
    after it without one (BatchNorm, activation, pooling) belong to it."""
    starts = []
    for i, name in enumerate(layer_names):
        named, previous = block_of(name), block_of(layer_names[i - 1]) if i else None
        if i == 0 or (named is not None and named != previous) or (
                named is None and (has_kernel[i] or previous is not None)):
            starts.append(i)
    return [*starts, len(layer_names)]
