"""``tlsweep export``: a trained classifier wrapped into a model that takes raw RGB uint8 images of
any size (resizing and the backbone's preprocessing inside it), saved in one of ``_formats``
(Keras, SavedModel, LiteRT, quantised LiteRT, ONNX), with its card and ``labels.txt`` beside
it."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from tlsweep.delivery._card_readme import render_page
from tlsweep.delivery._export_folder import ExportFolder, plan_folder, staged
from tlsweep.delivery._formats import Format, export_format, runtime, save
from tlsweep.delivery._model_files import fingerprint, loading
from tlsweep.delivery._modelcard import (
    LABELS,
    PAGE,
    RESIZE,
    ModelCard,
    ModelSource,
    check_class_count,
)
from tlsweep.delivery._quantized import quantization_change
from tlsweep.delivery._resize import pil_bilinear
from tlsweep.errors import ConfigError
from tlsweep.system import write_text

# LiteRT or ONNX against Keras on the same images: float32 kernels of another library, not
# bit-equal. The resize is the same integer arithmetic in all (``_resize``), so only the
# network's kernels differ. Issue 38 promises TFLite within 1e-3 of ``tlsweep predict`` and Keras
# within 1e-4; a model this close to the Keras one keeps that promise with room to spare.
FORMAT_TOLERANCE = 1e-4


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


def check_images(card: ModelCard, count: int = 8) -> np.ndarray:
    """Seeded random images at the model's size, for the check of a format against Keras."""
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (count, card.image_size, card.image_size, 3), dtype=np.uint8)


@dataclass(frozen=True)
class ExportPlan:
    """An export checked before TensorFlow is imported: the model (its card fingerprinted),
    the format (its packages installed), and where it goes."""

    source: ModelSource
    fmt: Format
    folder: ExportFolder


def plan_export(source: ModelSource, out: Path, fmt: str, replace_other: bool,
                quantize: str | None = None) -> ExportPlan:
    chosen = export_format(fmt, quantize)
    if chosen.quantization and source.study_dir is None:
        raise ConfigError(f"--quantize: the change in accuracy is measured on the study's test "
                          f"split, so quantise from the study: `tlsweep export "
                          f"{source.card.study} --format tflite --quantize {quantize}`.")
    source = replace(source, card=replace(source.card, made_from=fingerprint(source.path)))
    return ExportPlan(source, chosen, plan_folder(out, source.card, chosen.key, replace_other))


def load_classifier(source: ModelSource) -> Any:
    """The trained classifier, checked against the card's class list."""
    import keras

    with loading(source.path, source.format, source.remedy):
        classifier = keras.models.load_model(source.path, compile=False)
    check_class_count(source, int(classifier.outputs[0].shape[-1]))
    return classifier


def export(plan: ExportPlan) -> tuple[Path, dict[str, Any]]:
    """Write the model as ``plan.fmt`` and its card into ``plan.folder.out`` (by the rule of
    ``_export_folder``): (the model's path, its check against the Keras model, or for a
    quantised model the change it makes on the study's test split)."""
    source, fmt = plan.source, plan.fmt
    model = raw_image_model(load_classifier(source), source.card)
    model(check_images(source.card, 1))  # traced once: the ONNX exporter needs its shapes
    with staged(plan.folder) as staging:
        save(model, fmt, staging / fmt.file)
        check = _check(model, source, fmt, staging / fmt.file)
        card = replace(source.card, format=fmt.key,
                       files={**plan.folder.kept_files, fmt.key: fmt.file},
                       input={**source.card.input, "resize": RESIZE})
        if fmt.quantization:
            card = replace(card, quantization={**card.quantization, fmt.key: check})
        write_text(staging / LABELS, "".join(f"{name}\n" for name in card.class_names))
        write_text(staging / PAGE, render_page(card, plan.folder.out.name))
        card.write(staging)
    return plan.folder.out / fmt.file, check


def _check(model: Any, source: ModelSource, fmt: Format, target: Path) -> dict[str, Any]:
    if fmt.key in ("keras", "savedmodel"):
        return {}
    run = runtime(fmt, target)
    if fmt.quantization:
        return quantization_change(model, run, source, fmt)
    images = check_images(source.card)
    difference = float(np.abs(run(images) - np.asarray(model(images, training=False))).max())
    if difference > FORMAT_TOLERANCE:
        raise ConfigError(f"the {fmt.key} model differs from the Keras model by "
                          f"{difference:.2g} (tolerance {FORMAT_TOLERANCE}), so it was not "
                          f"written; export as keras or savedmodel instead.")
    return {"max_abs_difference": difference, "tolerance": FORMAT_TOLERANCE,
            "images": len(images)}
