"""The benchmark suite's scorer, run as its own process: it never imports tlsweep, so it sees the
exported model exactly as a user's code does (``suite.py`` runs it).

    python benchmarks/suite_score.py model EXPORT_DIR HELDOUT OUT.json
    python benchmarks/suite_score.py probe WEIGHTS POOL HELDOUT IMAGE_SIZE SEED OUT.json

``model``: every held-out image decoded to RGB uint8 at its own size and fed to the exported
``model.keras`` (its resize and preprocessing are inside it), classes named by its ``card.json``.
``probe``: the simplest thing that works, which a user could fit without us: a logistic regression
on MobileNetV2's frozen pooled features at the same image size (images resized with PIL),
fitted on the pool, with C and class weighting (none or balanced) chosen by 5-fold cross-validated
balanced accuracy, and scored on the held-out images. Both write each image's label and
predicted class, so that the two are compared pairwise on the same images.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image

C_GRID = np.logspace(-4, 2, 13)


def labelled_images(folder: Path) -> tuple[list[Path], list[str]]:
    """Every file under ``folder``'s class folders, with its class name (sorted)."""
    paths, names = [], []
    for class_dir in sorted(p for p in folder.iterdir() if p.is_dir()):
        for path in sorted(class_dir.iterdir()):
            paths.append(path)
            names.append(class_dir.name)
    return paths, names


def decoded(path: Path, size: int | None = None) -> np.ndarray | None:
    """RGB uint8 pixels, resized with PIL to ``size`` when given; None if it will not decode."""
    try:
        with Image.open(path) as image:
            rgb = image.convert("RGB")
            if size is not None:
                rgb = rgb.resize((size, size), Image.BILINEAR)
            return np.asarray(rgb, np.uint8)
    except Exception:  # a broken file: the tool skips it too, and so does a user's loop
        return None


def score_model(export_dir: Path, heldout: Path) -> dict:
    import keras

    card = json.loads((export_dir / "card.json").read_text())
    model = keras.models.load_model(export_dir / card["files"]["keras"], compile=False)
    index = {name: i for i, name in enumerate(card["class_names"])}
    paths, names = labelled_images(heldout)
    by_shape: dict[tuple, list[int]] = {}
    pixels: list[np.ndarray | None] = [decoded(p) for p in paths]
    for i, image in enumerate(pixels):
        if image is not None:
            by_shape.setdefault(image.shape, []).append(i)
    predicted = np.full(len(paths), -1, np.int64)
    for members in by_shape.values():  # one batch per image shape: the model takes any size
        for start in range(0, len(members), 32):
            batch = members[start:start + 32]
            probabilities = np.asarray(model(np.stack([pixels[i] for i in batch]),
                                             training=False))
            predicted[batch] = probabilities.argmax(axis=1)
    kept = predicted >= 0
    return {"labels": [index[n] for n, k in zip(names, kept, strict=True) if k],
            "predicted": predicted[kept].tolist(),
            "skipped": [str(p) for p, k in zip(paths, kept, strict=True) if not k],
            "class_names": card["class_names"]}


def pooled_features(weights: Path, folder: Path, size: int) -> tuple[np.ndarray, list[str]]:
    import keras

    backbone = keras.applications.MobileNetV2(include_top=False, weights=None, pooling="avg",
                                              input_shape=(size, size, 3))
    backbone.load_weights(weights)
    paths, names = labelled_images(folder)
    images = [decoded(p, size) for p in paths]
    kept = [i for i, image in enumerate(images) if image is not None]
    x = np.stack([images[i] for i in kept]).astype(np.float32)
    x = keras.applications.mobilenet_v2.preprocess_input(x)
    features = backbone.predict(x, batch_size=64, verbose=0)
    return features, [names[i] for i in kept]


def score_probe(weights: Path, pool: Path, heldout: Path, size: int, seed: int) -> dict:
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV, StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x_pool, pool_names = pooled_features(weights, pool, size)
    x_held, held_names = pooled_features(weights, heldout, size)
    classes = sorted(set(pool_names))
    index = {name: i for i, name in enumerate(classes)}
    y_pool = np.array([index[n] for n in pool_names])
    search = GridSearchCV(
        make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000)),
        {"logisticregression__C": C_GRID,
         "logisticregression__class_weight": [None, "balanced"]},
        scoring="balanced_accuracy", cv=StratifiedKFold(5, shuffle=True, random_state=seed))
    search.fit(x_pool, y_pool)
    return {"labels": [index[n] for n in held_names],
            "predicted": search.predict(x_held).tolist(),
            "c": float(search.best_params_["logisticregression__C"]),
            "class_weight": str(search.best_params_["logisticregression__class_weight"]),
            "cv_balanced_accuracy": float(search.best_score_), "class_names": classes}


def main(argv: list[str]) -> None:
    kind, *args = argv
    if kind == "model":
        export_dir, heldout, out = args
        result = score_model(Path(export_dir), Path(heldout))
    else:
        weights, pool, heldout, size, seed, out = args
        result = score_probe(Path(weights), Path(pool), Path(heldout), int(size), int(seed))
    Path(out).write_text(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1:])
