"""Is a model file what it claims to be? Judged from its bytes, before TensorFlow is imported.

Keras 3's ``.keras`` is a zip archive holding ``config.json``; a SavedModel a folder holding
``saved_model.pb``; a TFLite model a FlatBuffer whose file identifier, at byte 4, is ``TFL3``.
Keras reports a truncated or foreign ``.keras`` file as ``ValueError: File not found`` (issue
38), which sends the user looking for a file that is there: here the file is named with what is
wrong with it and the fix. What only loading can tell (a damaged weight inside a whole archive)
is mapped to the same kind of message by ``loading``.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tlsweep.errors import ConfigError, TlsweepError

KERAS_CONFIG = "config.json"
SAVEDMODEL_GRAPH = "saved_model.pb"
TFLITE_IDENTIFIER = b"TFL3"
MAX_CAUSE = 200  # characters of a loader's own message: its first line says enough


def model_file_problem(path: Path, fmt: str) -> str | None:
    """What is wrong with the ``fmt`` model at ``path``, in words; None when it looks whole."""
    if fmt == "savedmodel":
        if (path / SAVEDMODEL_GRAPH).is_file():
            return None
        return f"is not a SavedModel folder (it holds no {SAVEDMODEL_GRAPH})"
    if not path.is_file():
        return "is not a file"
    if fmt.startswith("tflite"):
        return _tflite_problem(path)
    if fmt == "onnx":
        return None if path.stat().st_size else "is empty, not an ONNX model"
    return _keras_archive_problem(path)


def _tflite_problem(path: Path) -> str | None:
    with path.open("rb") as handle:
        head = handle.read(8)
    if head[4:8] == TFLITE_IDENTIFIER:
        return None
    return "is not a TFLite model (it lacks the TFL3 identifier: truncated, or another file)"


def _keras_archive_problem(path: Path) -> str | None:
    try:
        with zipfile.ZipFile(path) as archive:
            if KERAS_CONFIG not in archive.namelist():
                return f"is a zip archive without {KERAS_CONFIG}, not a Keras model"
            json.loads(archive.read(KERAS_CONFIG))
    except zipfile.BadZipFile as exc:
        # A truncated archive loses its central directory, at the end: no zip at all.
        return f"is not a Keras model archive ({exc}: truncated, or another kind of file)"
    except (OSError, ValueError) as exc:
        return f"is not a readable Keras model archive ({_first_line(exc)})"
    return None


def check_model_file(path: Path, fmt: str, remedy: str) -> None:
    problem = model_file_problem(path, fmt)
    if problem is not None:
        raise ConfigError(f"{path}: {problem}. {remedy}")


@contextmanager
def loading(path: Path, fmt: str, remedy: str) -> Iterator[None]:
    """Any error while TensorFlow loads the model becomes one message that names the file:
    past ``check_model_file``, what fails here is inside the file (a damaged weight)."""
    try:
        yield
    except TlsweepError:
        raise
    except Exception as exc:  # every loader error, whatever its type, is about this file
        raise ConfigError(f"{path}: cannot be loaded as a {fmt} model "
                          f"({type(exc).__name__}: {_first_line(exc)}). {remedy}") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else "no message")[:MAX_CAUSE]


def fingerprint(path: Path) -> str:
    """The sha256 of a model file: which trained model an export was made from."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
