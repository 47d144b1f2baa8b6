"""``tlsweep export``: a trained classifier wrapped into a model that takes raw RGB uint8 images of
any size (resizing and the backbone's preprocessing inside it), saved as Keras, SavedModel or
TFLite, with its card beside it."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from tlsweep.delivery._export_folder import ExportFolder, plan_folder, staged
from tlsweep.delivery._model_files import fingerprint, loading
from tlsweep.delivery._modelcard import (
    FORMAT_FILES,
    RESIZE,
    ModelCard,
    ModelSource,
    check_class_count,
)
from tlsweep.delivery._resize import pil_bilinear
from tlsweep.errors import ConfigError

# TFLite against Keras on the same images: float32 kernels of another library, not bit-equal.
# The resize is the same integer arithmetic in both (``_resize``), so only the network's kernels
# differ. Issue 38 promises TFLite within 1e-3 of ``tlsweep predict`` and Keras within 1e-4;
# a TFLite model this close to the Keras one keeps that promise with room to spare.
TFLITE_TOLERANCE = 1e-4


def preprocessing_map(preprocessing: str) -> tuple[np.ndarray, np.ndarray]:
    """(matrix, offset) with preprocess(x) == x @ matrix + offset per pixel. Every backbone's
    ``preprocess_input`` is such a map (a scale, a mean, a channel flip), which a fixed Dense
    layer reproduces in every format; a preprocessing that is not one is refused."""
    from tlsweep.training.backbones import Backbone, preprocessor

    function = preprocessor(Backbone("x", "none", None, preprocessing, 1))
    probes = np.array([[0, 0, 0], [255, 0, 0], [0, 255, 0], [0, 0, 255]], np.float32)
    out = np.asarray(function(probes.reshape(1, 4, 1, 3).copy()), np.float32).reshape(4, 3)
    offset = out[0]
    matrix = (out[1:] - offset) / 255.0
    sample = np.random.default_rng(0).uniform(0, 255, (1, 8, 8, 3)).astype(np.float32)
    expected = np.asarray(function(sample.copy()), np.float32)
    if not np.allclose(sample @ matrix + offset, expected, atol=1e-4):
        raise ConfigError(f"preprocessing {preprocessing!r} is not a per-pixel affine map, so it "
                          f"cannot be built into the exported model.")
    return matrix, offset


def raw_image_model(classifier: Any, card: ModelCard) -> Any:
    """uint8 (batch, height, width, 3) -> class probabilities, the image resized as training
    resized it (PIL's bilinear, ``_resize``), the same in every format."""
    import keras

    size = card.image_size
    raw = keras.Input((None, None, 3), dtype="uint8", name="image")
    pixels = pil_bilinear(raw, size, size)
    matrix, offset = preprocessing_map(card.preprocessing)
    if not (np.allclose(matrix, np.eye(3)) and np.allclose(offset, 0)):
        affine = keras.layers.Dense(3, name="preprocess", trainable=False)
        pixels = affine(pixels)
        affine.set_weights([matrix, offset])
    probabilities = classifier(pixels, training=False)  # dropout off in every format
    what = card.source.replace(" ", "_")
    return keras.Model(raw, probabilities, name=f"tlsweep_{card.study}_{what}")


def _save_tflite(savedmodel: Path, target: Path) -> None:
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(str(savedmodel))
    target.write_bytes(converter.convert())


def tflite_probabilities(path: Path, images: np.ndarray) -> np.ndarray:
    import tensorflow as tf

    interpreter = tf.lite.Interpreter(model_path=str(path))
    entry, result = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    interpreter.resize_tensor_input(entry["index"], list(images.shape))
    interpreter.allocate_tensors()
    interpreter.set_tensor(entry["index"], images)
    interpreter.invoke()
    return np.asarray(interpreter.get_tensor(result["index"]), np.float32)


def check_images(card: ModelCard, count: int = 8) -> np.ndarray:
    """Seeded random images at the model's size, for the TFLite check."""
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (count, card.image_size, card.image_size, 3), dtype=np.uint8)


@dataclass(frozen=True)
class ExportPlan:
    """An export checked before TensorFlow is imported: the model (its card fingerprinted),
    the format, and where it goes."""

    source: ModelSource
    fmt: str
    folder: ExportFolder


def plan_export(source: ModelSource, out: Path, fmt: str, replace_other: bool) -> ExportPlan:
    if fmt not in FORMAT_FILES:
        raise ConfigError(f"--format: unknown format {fmt!r}; choose one of: "
                          f"{', '.join(FORMAT_FILES)}.")
    source = replace(source, card=replace(source.card, made_from=fingerprint(source.path)))
    return ExportPlan(source, fmt, plan_folder(out, source.card, fmt, replace_other))


def load_classifier(source: ModelSource) -> Any:
    """The trained classifier, checked against the card's class list."""
    import keras

    with loading(source.path, source.format, source.remedy):
        classifier = keras.models.load_model(source.path, compile=False)
    check_class_count(source, int(classifier.outputs[0].shape[-1]))
    return classifier


def export(plan: ExportPlan) -> tuple[Path, dict[str, Any]]:
    """Write the model in ``plan.fmt`` and its card into ``plan.folder.out`` (by the rule of
    ``_export_folder``): (the model's path, the TFLite check)."""
    source, fmt = plan.source, plan.fmt
    model = raw_image_model(load_classifier(source), source.card)
    name = FORMAT_FILES[fmt]
    with staged(plan.folder) as staging:
        check = _save(model, source.card, staging, fmt)
        card = replace(source.card, format=fmt, files={**plan.folder.kept_files, fmt: name},
                       input={**source.card.input, "resize": RESIZE})
        card.write(staging)
    return plan.folder.out / name, check


def _save(model: Any, card: ModelCard, folder: Path, fmt: str) -> dict[str, Any]:
    target = folder / FORMAT_FILES[fmt]
    if fmt == "keras":
        model.save(target)
        return {}
    savedmodel = folder / ".savedmodel-staging" if fmt == "tflite" else target
    model.export(str(savedmodel), format="tf_saved_model", verbose=False)
    if fmt != "tflite":
        return {}
    _save_tflite(savedmodel, target)
    shutil.rmtree(savedmodel)
    images = check_images(card)
    difference = np.abs(tflite_probabilities(target, images)
                        - np.asarray(model(images, training=False))).max()
    if difference > TFLITE_TOLERANCE:
        raise ConfigError(f"the TFLite model differs from the Keras model by {difference:.2g} "
                          f"(tolerance {TFLITE_TOLERANCE}), so it was not written; export as "
                          f"keras or savedmodel instead.")
    return {"tflite_vs_keras_max_abs": float(difference), "tolerance": TFLITE_TOLERANCE,
            "images": len(images)}

