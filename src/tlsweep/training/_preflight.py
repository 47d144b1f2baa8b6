"""Load every backbone's weights once, in a throwaway process, before anything is created.

A weights path that is a text file, a truncated ``.weights.h5``, a file made for another
architecture, or a corrupt ``.keras`` backbone would otherwise fail every trial, or worse, load
in part with a warning per layer and train from random weights. Building a backbone needs
TensorFlow, which the orchestrator never imports, so the check runs in a subprocess; a file that
passed is remembered by its path, size and modification time, so a repeated run pays nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import warnings
import zipfile
from pathlib import Path

from tlsweep.errors import ConfigError
from tlsweep.training.backbones import Backbone

TIMEOUT_S = 600


def _identity(backbone: Backbone, image_size: int) -> str | None:
    """What a passed check depends on; None when there is no file to check."""
    path = backbone.model_path or (Path(backbone.weights) if backbone.weights not in (
        "imagenet", "none") else None)
    if path is None:
        return None
    stat = path.stat()
    key = f"{backbone.name}|{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{image_size}"
    return hashlib.sha256(key.encode()).hexdigest()[:24]


def _passed_dir() -> Path:
    from tlsweep.datasets import cache_root

    return cache_root() / "preflight"


def check_weights(backbones: dict[str, Backbone], image_size: int, where: str) -> None:
    """Raise a ConfigError naming the key and the file for the first backbone whose weights
    cannot be loaded as they are."""
    pending = {name: backbone for name, backbone in backbones.items()
               if (key := _identity(backbone, image_size)) is not None
               and not (_passed_dir() / key).is_file()}
    for name, backbone in pending.items():
        # Keras reports a .keras file it cannot open as a zip as "File not found".
        if backbone.model_path is not None and not zipfile.is_zipfile(backbone.model_path):
            raise ConfigError(f"{where}.{name}.model: {backbone.model_path} is not a .keras "
                              f"archive (not a zip file: damaged, or saved in another format). "
                              f"Save the feature extractor again with model.save('name.keras').")
    if not pending:
        return
    request = json.dumps({"image_size": image_size, "backbones": {
        name: [b.name, b.weights, str(b.model_path) if b.model_path else None,
               b.preprocessing, b.min_size] for name, b in pending.items()}})
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run([sys.executable, "-m", "tlsweep.training._preflight"], input=request,
                          capture_output=True, text=True, env=env, timeout=TIMEOUT_S)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    answer = json.loads(lines[-1]) if lines else {
        "failed": next(iter(pending)), "reason": f"the check process exited {done.returncode}"}
    if answer.get("failed"):
        name = answer["failed"]
        backbone = pending[name]
        key = "model" if backbone.model_path else "weights"
        path = backbone.model_path or backbone.weights
        raise ConfigError(f"{where}.{name}.{key}: {path} cannot be loaded as {backbone.name}'s "
                          f"{'backbone' if backbone.model_path else 'weights'}: "
                          f"{answer['reason']}. Point {key} at an intact file made for this "
                          f"architecture.")
    _passed_dir().mkdir(parents=True, exist_ok=True)
    for backbone in pending.values():
        (_passed_dir() / str(_identity(backbone, image_size))).write_text("ok")


def _load(backbone: Backbone, image_size: int) -> str | None:
    """Why ``backbone`` cannot be built with its weights, or None."""
    from tlsweep.training.backbones import build

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            build(backbone, image_size)
        except Exception as exc:  # h5py, zipfile and Keras raise many kinds for a bad file
            text = str(exc).splitlines()[0] if str(exc) else ""
            return f"{type(exc).__name__}{': ' + text[:200] if text else ''}"
    # Keras 3 loads a file made for another architecture layer by layer, warning for each
    # layer it skips or cannot match: the backbone would train from partly random weights.
    mismatched = [str(w.message) for w in caught if "load" in str(w.message).lower()
                  and any(word in str(w.message).lower() for word in
                          ("skip", "mismatch", "expected", "does not match", "incompatible"))]
    if mismatched:
        return (f"{len(mismatched)} layers do not match the file "
                f"(first: {mismatched[0].splitlines()[0][:200]})")
    return None


def main() -> None:
    request = json.loads(sys.stdin.read())
    for name, fields in request["backbones"].items():
        backbone = Backbone(fields[0], fields[1], Path(fields[2]) if fields[2] else None,
                            fields[3], fields[4])
        reason = _load(backbone, request["image_size"])
        if reason is not None:
            print(json.dumps({"failed": name, "reason": reason}), flush=True)
            return
    print(json.dumps({"failed": None}), flush=True)


if __name__ == "__main__":
    main()
