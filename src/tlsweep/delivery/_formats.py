"""The exported formats: each written by Keras 3's own exporter, run by its own runtime.

- ``keras`` (``Model.save``) and ``savedmodel`` (``Model.export``, ``tf_saved_model``): run by
  TensorFlow.
- ``tflite``: LiteRT, Keras' ``litert`` exporter; run by ai-edge-litert's interpreter where it is
  installed (``tlsweep[export]``), else by TensorFlow's own (deprecated in TensorFlow 2.20).
- ``tflite-float16`` and ``tflite-int8``: the same, quantised by the LiteRT converter: float16
  weights, or int8 weights with float activations (dynamic range; no calibration images
  needed). They answer differently from the Keras model by design, so ``export`` measures the
  change on the study's test split instead of holding them to a tolerance.
- ``onnx``: Keras' ``onnx`` exporter (tf2onnx); run by onnxruntime.

Nothing here imports TensorFlow or a runtime at module level: ``export`` checks that a format's
packages are installed before any work.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tlsweep.errors import ConfigError

Probabilities = Callable[[np.ndarray], np.ndarray]
QUANTIZATIONS = ("float16", "int8")


@dataclass(frozen=True)
class Format:
    key: str  # --format (with --quantize) and the card's ``files``
    file: str  # beside the card
    packages: tuple[str, ...] = ()  # import names needed beyond TensorFlow
    quantization: str | None = None

    @property
    def litert(self) -> bool:
        return self.key.startswith("tflite")


FORMATS = {f.key: f for f in (
    Format("keras", "model.keras"),
    Format("savedmodel", "savedmodel"),
    Format("tflite", "model.tflite"),
    Format("tflite-float16", "model-float16.tflite", quantization="float16"),
    Format("tflite-int8", "model-int8.tflite", quantization="int8"),
    Format("onnx", "model.onnx", ("tf2onnx", "onnx", "onnxruntime")),
)}
FORMAT_FILES = {key: f.file for key, f in FORMATS.items()}
CHOICES = ("keras", "savedmodel", "tflite", "onnx")  # --format; quantised: --quantize


def export_format(fmt: str, quantize: str | None) -> Format:
    """The format ``--format fmt --quantize quantize`` asks for, its packages checked."""
    if fmt not in CHOICES:
        raise ConfigError(f"--format: unknown format {fmt!r}; choose one of: "
                          f"{', '.join(CHOICES)}.")
    if quantize is not None:
        if quantize not in QUANTIZATIONS:
            raise ConfigError(f"--quantize: unknown quantisation {quantize!r}; choose one of: "
                              f"{', '.join(QUANTIZATIONS)}.")
        if fmt != "tflite":
            raise ConfigError(f"--quantize {quantize}: only the tflite format is quantised; "
                              f"add --format tflite, or leave --quantize out.")
        fmt = f"tflite-{quantize}"
    return require_packages(FORMATS[fmt], f"--format {fmt}")


def require_packages(fmt: Format, what: str) -> Format:
    """``fmt``, once its runtime's packages are found installed; ``what`` names the asker."""
    missing = [p for p in fmt.packages if importlib.util.find_spec(p) is None]
    if missing:
        raise ConfigError(f"{what}: the {fmt.key} format needs {', '.join(missing)}, which is "
                          f"not installed. Install it with `pip install 'tlsweep[export]'`.")
    return fmt


def save(model: Any, fmt: Format, target: Path) -> None:
    """``model`` (already called once: the ONNX exporter needs its traced shapes) as ``fmt``."""
    if fmt.key == "keras":
        model.save(target)
    elif fmt.key == "savedmodel":
        model.export(str(target), format="tf_saved_model", verbose=False)
    elif fmt.key == "onnx":
        model.export(str(target), format="onnx", verbose=False)
    else:
        model.export(str(target), format="litert", verbose=False,
                     **_converter_options(fmt.quantization))


def _converter_options(quantization: str | None) -> dict[str, Any]:
    if quantization is None:
        return {}
    import tensorflow as tf

    options: dict[str, Any] = {"optimizations": [tf.lite.Optimize.DEFAULT]}
    if quantization == "float16":
        options["target_spec"] = {"supported_types": [tf.float16]}
    return options


def runtime(fmt: Format, path: Path) -> Probabilities:
    """uint8 images -> probabilities through ``fmt``'s own runtime (LiteRT or ONNX formats)."""
    if fmt.key == "onnx":
        return _onnx(path)
    if fmt.litert:
        return _litert(path)
    raise ValueError(f"{fmt.key} runs in TensorFlow, not in a runtime of its own")


def _onnx(path: Path) -> Probabilities:
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda images: np.asarray(session.run(None, {name: images})[0], np.float32)


def _litert(path: Path) -> Probabilities:
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:  # without tlsweep[export]: TensorFlow's own, deprecated interpreter
        import tensorflow as tf

        Interpreter = tf.lite.Interpreter
    interpreter = Interpreter(model_path=str(path))
    entry = interpreter.get_input_details()[0]
    result = interpreter.get_output_details()[0]
    allocated: list[tuple[int, ...]] = [()]  # the input shape the tensors are allocated for

    def probabilities(images: np.ndarray) -> np.ndarray:
        if allocated[0] != images.shape:  # a new batch or image shape
            interpreter.resize_tensor_input(entry["index"], list(images.shape))
            interpreter.allocate_tensors()
            allocated[0] = images.shape
        interpreter.set_tensor(entry["index"], images)
        interpreter.invoke()
        return np.array(interpreter.get_tensor(result["index"]), np.float32)

    return probabilities
