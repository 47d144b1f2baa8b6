"""The exported model's accuracy under each resize (issue 38, "one pixel path").

For a suite run (``benchmarks/runs/suite/NAME``, with its study under ``tlsweep/results`` and
its held-out class folders under ``heldout/``) the study's chosen model is exported afresh with
``tlsweep export`` and scored on the held-out images, balanced accuracy per way in:

* ``evaluate``: ``tlsweep evaluate`` on the folder, the pixels as training saw them;
* ``raw``: each file decoded at full size and fed to the exported model, which resizes inside;
* ``PIL first``: each file resized with PIL's bilinear (no JPEG draft decoding) and fed in;
* ``Keras antialiased`` / ``Keras plain``: the exported model's preprocessing and classifier
  behind ``keras.layers.Resizing`` with and without antialiasing, the resizes exported before
  (keras and SavedModel, and TFLite).

Only the CLI and plain Keras on the exported file are used. Run from the repository root:
``python benchmarks/resize_accuracy.py benchmarks/runs/suite/hymenoptera-s0``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps


def cli(*args: str) -> None:
    done = subprocess.run([sys.executable, "-m", "tlsweep", *args], capture_output=True,
                          text=True)
    if done.returncode:
        raise SystemExit(done.stdout + done.stderr)


def balanced_accuracy(labels: np.ndarray, predicted: np.ndarray) -> float:
    return float(np.mean([np.mean(predicted[labels == c] == c) for c in np.unique(labels)]))


def held_out(folder: Path, class_names: list[str]) -> tuple[list[Path], np.ndarray]:
    files, labels = [], []
    for index, name in enumerate(class_names):
        found = sorted(p for p in (folder / name).iterdir() if p.is_file())
        files += found
        labels += [index] * len(found)
    return files, np.array(labels)


def decoded(path: Path) -> np.ndarray:
    with Image.open(path) as image:  # as training does, minus the resize (and JPEG's draft)
        return np.asarray(ImageOps.exif_transpose(image).convert("RGB"))


def score(run: Path) -> dict[str, float]:
    import keras

    results = run / "tlsweep" / "results"
    study = next(p.name for p in results.iterdir() if p.is_dir())
    out = Path(tempfile.mkdtemp()) / "export"
    cli("export", study, "--out", str(out), "--results-dir", str(results), "--format", "keras")
    cli("evaluate", str(out), str(run / "heldout"), "--out", str(out.parent / "evaluation"))
    evaluation = json.loads((out.parent / "evaluation" / "metrics.json").read_text())
    card = json.loads((out / "card.json").read_text())
    size = card["image_size"]
    model = keras.models.load_model(out / "model.keras")
    classifier = next(layer for layer in model.layers if isinstance(layer, keras.Model))
    names = {layer.name for layer in model.layers}
    preprocess = model.get_layer("preprocess") if "preprocess" in names else None

    def behind(antialias: bool) -> keras.Model:
        raw = keras.Input((None, None, 3), dtype="uint8")
        pixels = keras.layers.Resizing(size, size, antialias=antialias)(
            keras.ops.cast(raw, "float32"))
        return keras.Model(raw, classifier(preprocess(pixels) if preprocess else pixels))

    ways = {"raw": model, "Keras antialiased": behind(True), "Keras plain": behind(False)}
    files, labels = held_out(run / "heldout", card["class_names"])
    predicted: dict[str, list[int]] = {way: [] for way in [*ways, "PIL first"]}
    for path in files:
        image = decoded(path)
        for way, net in ways.items():
            predicted[way].append(int(np.argmax(net(image[None]))))
        small = np.asarray(Image.fromarray(image).resize((size, size), Image.Resampling.BILINEAR))
        predicted["PIL first"].append(int(np.argmax(model(small[None]))))
    scores = {"evaluate": evaluation["balanced_accuracy"]["value"]}
    scores |= {way: balanced_accuracy(labels, np.array(p)) for way, p in predicted.items()}
    shapes = np.array([Image.open(p).size for p in files])
    print(f"{run.name}: {len(files)} held-out images, {len(card['class_names'])} classes, "
          f"image_size {size}, files {shapes.min(0).tolist()}..{shapes.max(0).tolist()} px "
          f"(width, height)")
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="benchmarks/runs/suite/NAME folders")
    for run in parser.parse_args().runs:
        for way, value in score(run).items():
            print(f"  {way:18s} balanced accuracy {value:.4f}")


if __name__ == "__main__":
    main()
