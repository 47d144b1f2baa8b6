"""``tlsweep predict``: a model applied to image files, with the top classes of each.

Files are decoded exactly as the training images were (``datasets._data.decode_image``: EXIF
orientation, transparency over white, PIL's bilinear resize to the model's size), so a study's
model predicts here what it was measured on. The same messy files as in training are skipped,
with reasons.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tlsweep.datasets import Skipped, decode_or_skip
from tlsweep.delivery._formats import FORMATS, require_packages, runtime
from tlsweep.delivery._model_files import loading
from tlsweep.delivery._modelcard import ModelSource, check_class_count
from tlsweep.delivery._outputs import check_output_file
from tlsweep.errors import ConfigError

BATCH = 64
OUTPUT_FORMATS = ("table", "csv", "json", "parquet")


def image_files(paths: list[Path]) -> list[Path]:
    """Every file under the given files and folders (recursively), in a stable order. Nothing
    is filtered by name: what cannot be decoded is skipped with its reason, as in training."""
    found: list[Path] = []
    for path in paths:
        if not path.exists():
            raise ConfigError(f"{path}: no such file or folder. Give image files or folders "
                              f"of images.")
        if path.is_dir():
            found += sorted(p for p in path.rglob("*") if p.is_file())
        else:
            found.append(path)
    return found


@dataclass
class Decoded:
    paths: list[Path]
    images: np.ndarray  # uint8 (n, size, size, 3)
    skipped: list[Skipped]


def decode_batches(files: list[Path], size: int, batch: int = BATCH) -> Iterator[Decoded]:
    for start in range(0, len(files), batch):
        kept, images, skipped = [], [], []
        for path in files[start:start + batch]:
            image = decode_or_skip(path, size)
            if isinstance(image, Skipped):
                skipped.append(image)
            else:
                images.append(image)
                kept.append(path)
        array = np.stack(images) if images else np.zeros((0, size, size, 3), np.uint8)
        yield Decoded(kept, array, skipped)


# ----------------------------------------------------------------------------- models
Probabilities = Callable[[np.ndarray], np.ndarray]


def load_model(source: ModelSource) -> Probabilities:
    """uint8 images -> probabilities, for a study's model or any exported format; tried once on
    a blank image, so that a damaged file or a card of another model stops here, named."""
    with loading(source.path, source.format, source.remedy):
        model = _loaded(source)
        size = source.card.image_size
        outputs = model(np.zeros((1, size, size, 3), np.uint8)).shape[-1]
    check_class_count(source, int(outputs))
    return model


def _loaded(source: ModelSource) -> Probabilities:
    fmt = require_packages(FORMATS[source.format], str(source.path))
    if fmt.litert or fmt.key == "onnx":
        return runtime(fmt, source.path)
    import keras
    import tensorflow as tf

    if source.format == "savedmodel":
        serve = tf.saved_model.load(str(source.path)).signatures["serving_default"]
        return lambda images: np.asarray(next(iter(serve(tf.constant(images)).values())),
                                         np.float32)
    model = keras.models.load_model(source.path, compile=False)
    if source.card.format == "keras" and model.inputs[0].dtype != "uint8":
        from tlsweep.delivery._export import raw_image_model

        model = raw_image_model(model, source.card)  # a study's classifier, not yet exported
    forward = tf.function(lambda x: model(x, training=False), reduce_retracing=True)
    return lambda images: np.asarray(forward(tf.constant(images)), np.float32)


# ----------------------------------------------------------------------------- predictions
@dataclass
class Predictions:
    paths: list[Path]
    probabilities: np.ndarray  # (n, classes)
    skipped: list[Skipped]
    class_names: list[str]

    def top(self, k: int) -> pd.DataFrame:
        k = min(k, len(self.class_names))
        order = np.argsort(-self.probabilities, axis=1, kind="stable")[:, :k]
        rows: dict[str, Any] = {"file": [str(p) for p in self.paths]}
        for rank in range(k):
            index = order[:, rank]
            rows[f"class_{rank + 1}"] = [self.class_names[i] for i in index]
            rows[f"p_{rank + 1}"] = self.probabilities[np.arange(len(index)), index]
        return pd.DataFrame(rows)


def predict_files(source: ModelSource, files: list[Path],
                  progress: Callable[[int], None] | None = None) -> Predictions:
    model = load_model(source)
    paths: list[Path] = []
    chunks: list[np.ndarray] = []
    skipped: list[Skipped] = []
    for decoded in decode_batches(files, source.card.image_size):
        skipped += decoded.skipped
        if len(decoded.paths):
            paths += decoded.paths
            chunks.append(model(decoded.images))
        if progress is not None:
            progress(len(decoded.paths) + len(decoded.skipped))
    n_classes = len(source.card.class_names)
    probabilities = np.concatenate(chunks) if chunks else np.zeros((0, n_classes), np.float32)
    return Predictions(paths, probabilities, skipped, source.card.class_names)


def check_output(fmt: str, out: Path | None) -> None:
    """``--format`` and ``--out`` together, before any model is loaded."""
    if fmt not in OUTPUT_FORMATS:
        raise ConfigError(f"--format: unknown format {fmt!r}; choose one of: "
                          f"{', '.join(OUTPUT_FORMATS)}.")
    if fmt == "table" and out is not None:
        raise ConfigError("--out needs --format csv, json or parquet.")
    if fmt == "parquet" and out is None:
        raise ConfigError("--format parquet needs --out FILE.parquet.")
    if out is not None:
        check_output_file(out)


def write_frame(frame: pd.DataFrame, fmt: str, out: Path | None) -> str | None:
    """Write csv/json/parquet to ``out`` (or return csv/json text for the terminal)."""
    if fmt == "parquet":
        from tlsweep.store import write_parquet

        write_parquet(frame, out, {})  # check_output made sure of an --out
        return None
    text = frame.to_csv(index=False) if fmt == "csv" else \
        frame.to_json(orient="records", indent=2) + "\n"
    if out is None:
        return text
    from tlsweep.system import write_text

    write_text(out, text)
    return None
