"""One pixel path (issue 38): an exported model fed a raw image of any size answers as
``tlsweep predict`` does, in every format.

``predict`` (like training and ``evaluate``) shrinks each file with PIL's bilinear resize before
the model sees it; the exported model resizes inside itself with the same resize rebuilt in
Keras ops (``delivery._resize``). Being by construction the resize the model was trained with,
it costs no accuracy: ``benchmarks/resize_accuracy.py`` measures that on a real study. Here a
tiny model is exported in each format and, in a Python that never imports tlsweep, fed the
files' raw pixels at 1x, 2x and 8x its image size, square and not; its probabilities must be
those ``tlsweep predict`` prints for the same files.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from tests.conftest import run_cli

pytestmark = pytest.mark.slow

SIZE = 32
CLASSES = ["red", "green", "blue"]
# (height, width): 1x, 2x and 8x, square and not; the tall 8x one is the shape Pillow shrinks
# vertically first; the last is no power of two in either direction.
SHAPES = [(32, 32), (64, 64), (256, 256), (64, 32), (32, 256), (256, 64), (96, 40)]
TOLERANCE = {"keras": 1e-4, "savedmodel": 1e-4, "tflite": 1e-3, "onnx": 1e-4}

FRESH_PROCESS = """
import json, sys
from collections import defaultdict
import numpy as np
from PIL import Image
import keras, onnxruntime, tensorflow as tf
from ai_edge_litert.interpreter import Interpreter
folder, files = sys.argv[1], sys.argv[2:]
by_shape = defaultdict(list)
for f in files:
    by_shape[Image.open(f).size].append(f)
keras_model = keras.models.load_model(folder + "/model.keras")
serve = tf.saved_model.load(folder + "/savedmodel").signatures["serving_default"]
interpreter = Interpreter(model_path=folder + "/model.tflite")
session = onnxruntime.InferenceSession(folder + "/model.onnx")
def tflite(images):
    entry = interpreter.get_input_details()[0]
    interpreter.resize_tensor_input(entry["index"], list(images.shape))
    interpreter.allocate_tensors()
    interpreter.set_tensor(entry["index"], images)
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
found = {"keras": {}, "savedmodel": {}, "tflite": {}, "onnx": {}}
for group in by_shape.values():
    images = np.stack([np.asarray(Image.open(f).convert("RGB")) for f in group])
    answers = {"keras": keras_model.predict(images, verbose=0),
               "savedmodel": next(iter(serve(tf.constant(images)).values())).numpy(),
               "tflite": tflite(images),
               "onnx": session.run(None, {session.get_inputs()[0].name: images})[0]}
    for fmt, probabilities in answers.items():
        found[fmt].update(zip(group, np.asarray(probabilities, dtype=float).tolist()))
assert "tlsweep" not in sys.modules
print(json.dumps(found))
"""


def write_images(folder: Path) -> list[Path]:
    """Smooth colour fields with noise, each class's colour dominant in some: content whose
    class probabilities move with the pixels, at every shape twice."""
    rng = np.random.default_rng(0)
    folder.mkdir()
    files = []
    for height, width in SHAPES:
        for copy in range(2):
            y, x = np.mgrid[0:height, 0:width] / max(height, width)
            base = np.stack([np.sin(7 * x + copy), np.cos(5 * y), np.sin(3 * (x + y))], -1)
            pixels = np.clip(128 + 90 * base + rng.normal(0, 40, base.shape), 0, 255)
            path = folder / f"{height}x{width}_{copy}.png"
            Image.fromarray(pixels.astype(np.uint8)).save(path)
            files.append(path)
    return files


def tiny_classifier(path: Path) -> Path:
    """Conv, pooling, softmax: a model whose answers depend on fine detail, so a resize other
    than PIL's shows in its probabilities."""
    import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Conv2D(8, 3, activation="tanh")(inputs)
    x = keras.layers.Conv2D(8, 3, strides=2, activation="tanh")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(len(CLASSES), activation="softmax")(x)
    model = keras.Model(inputs, outputs)
    dense = model.layers[-1]
    dense.set_weights([dense.get_weights()[0] * 8, dense.get_weights()[1]])  # confident
    model.save(path)
    return path


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from tlsweep.delivery import ModelSource, export, plan_export
    from tlsweep.delivery._modelcard import ModelCard

    base = tmp_path_factory.mktemp("pixels")
    card = ModelCard(class_names=CLASSES, image_size=SIZE, backbone="Tiny",
                     preprocessing="unit", study="pixels", trial=0, made_by="kept", params={},
                     metrics={}, format="keras")
    source = ModelSource(tiny_classifier(base / "classifier.keras"), "keras", card)
    for fmt in ("keras", "savedmodel", "tflite", "onnx"):
        export(plan_export(source, base / "export", fmt, replace_other=False))
    return {"base": base, "export": base / "export", "classifier": base / "classifier.keras",
            "files": write_images(base / "images")}


def predicted(model: Path, files: list[Path]) -> dict[str, np.ndarray]:
    done = run_cli("predict", str(model), *map(str, files), "--top", str(len(CLASSES)),
                   "--format", "json")
    assert done.returncode == 0, done.stderr[-3000:]
    found = {}
    for row in json.loads(done.stdout):
        ranked = {row[f"class_{rank}"]: row[f"p_{rank}"] for rank in range(1, len(CLASSES) + 1)}
        found[row["file"]] = np.array([ranked[name] for name in CLASSES])
    return found


def test_every_format_fed_raw_images_gives_predicts_probabilities(
        exported: dict[str, Any]) -> None:
    files = exported["files"]
    by_tlsweep = predicted(exported["export"] / "model.keras", files)
    fresh = subprocess.run([sys.executable, "-c", FRESH_PROCESS, str(exported["export"]),
                            *map(str, files)], capture_output=True, text=True, timeout=600)
    assert fresh.returncode == 0, fresh.stderr[-3000:]
    raw = json.loads(fresh.stdout.strip().splitlines()[-1])
    for fmt, tolerance in TOLERANCE.items():
        for file in files:
            difference = np.abs(np.array(raw[fmt][str(file)]) - by_tlsweep[str(file)]).max()
            assert difference <= tolerance, (fmt, file.name, difference)
    card = json.loads((exported["export"] / "card.json").read_text())
    assert "PIL" in card["input"]["resize"] and "every format" in card["input"]["resize"]


def test_the_old_resizes_would_fail_this_comparison(exported: dict[str, Any]) -> None:
    """The comparison above can fail: the classifier behind the resizes exported before
    (Keras' bilinear, antialiased for keras and SavedModel, not for TFLite) is further from
    predict, on the images larger than the model's size, than those formats' tolerances."""
    import keras

    classifier = keras.models.load_model(exported["classifier"])
    files = [f for f in exported["files"] if not f.name.startswith(f"{SIZE}x{SIZE}")]
    by_tlsweep = predicted(exported["export"] / "model.keras", files)
    for antialias, tolerance in ((True, TOLERANCE["keras"]), (False, TOLERANCE["tflite"])):
        worst = 0.0
        for file in files:
            image = np.asarray(Image.open(file).convert("RGB"), np.float32)[None]
            resized = keras.layers.Resizing(SIZE, SIZE, antialias=antialias)(image)
            other = np.asarray(classifier(resized / 255.0))[0]  # "unit", the card's preprocessing
            worst = max(worst, float(np.abs(other - by_tlsweep[str(file)]).max()))
        assert worst > tolerance, (antialias, worst)
