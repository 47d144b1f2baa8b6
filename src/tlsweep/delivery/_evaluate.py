"""``tlsweep evaluate``: a model on a labelled folder (one sub-folder per class), with intervals.

Accuracy (Wilson) and balanced accuracy (its posterior), per-class precision, recall (each with
Wilson's interval) and F1, the confusion matrix, calibration (expected calibration error over
equal-width confidence bins, and its reliability figure) and the most confidently wrong files.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tlsweep.delivery._modelcard import ModelSource
from tlsweep.delivery._predict import Predictions, image_files, predict_files
from tlsweep.errors import ConfigError
from tlsweep.measures import Estimate, estimate, wilson

CALIBRATION_BINS = 15
WORST = 10  # confidently wrong files listed for review


def labelled_files(folder: Path, class_names: list[str]) -> tuple[list[Path], list[int]]:
    if not folder.is_dir():
        raise ConfigError(f"{folder}: no such folder. Give a folder with one sub-folder of "
                          f"images per class.")
    classes = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise ConfigError(f"{folder}: no class sub-folders. Put each class's images in a "
                          f"sub-folder named after the class.")
    unknown = [p.name for p in classes if p.name not in class_names]
    if unknown:
        raise ConfigError(f"{folder}: class folder(s) {', '.join(unknown)} are not classes of "
                          f"this model ({', '.join(class_names)}). Rename or remove them.")
    files, labels = [], []
    for sub in classes:
        found = image_files([sub])
        files += found
        labels += [class_names.index(sub.name)] * len(found)
    return files, labels


@dataclass
class Evaluation:
    class_names: list[str]
    predictions: Predictions
    labels: np.ndarray  # of the decoded files, in their order

    @property
    def predicted(self) -> np.ndarray:
        return self.predictions.probabilities.argmax(axis=1)

    @property
    def confidence(self) -> np.ndarray:
        return self.predictions.probabilities.max(axis=1)

    def confusion(self) -> np.ndarray:
        n = len(self.class_names)
        matrix = np.zeros((n, n), np.int64)
        np.add.at(matrix, (self.labels, self.predicted), 1)
        return matrix

    def scores(self) -> dict[str, Estimate]:
        matrix = self.confusion()
        return {metric: estimate(matrix, metric) for metric in ("accuracy", "balanced_accuracy")}

    def per_class(self) -> pd.DataFrame:
        from sklearn.metrics import precision_recall_fscore_support

        indices = list(range(len(self.class_names)))
        precision, recall, f1, support = precision_recall_fscore_support(
            self.labels, self.predicted, labels=indices, zero_division=0)
        matrix = self.confusion()
        predicted = matrix.sum(axis=0)
        rows = []
        for i, name in enumerate(self.class_names):
            p_low, p_high = wilson(int(matrix[i, i]), int(predicted[i]))
            r_low, r_high = wilson(int(matrix[i, i]), int(support[i]))
            rows.append({"class": name, "precision": precision[i], "precision_low": p_low,
                         "precision_high": p_high, "recall": recall[i], "recall_low": r_low,
                         "recall_high": r_high, "f1": f1[i], "support": int(support[i])})
        return pd.DataFrame(rows)

    def calibration(self, bins: int = CALIBRATION_BINS) -> tuple[float, pd.DataFrame]:
        """(expected calibration error, per bin: confidence, accuracy, count)."""
        edges = np.linspace(0.0, 1.0, bins + 1)
        which = np.clip(np.digitize(self.confidence, edges[1:-1]), 0, bins - 1)
        correct = self.predicted == self.labels
        rows = []
        for b in range(bins):
            inside = which == b
            if inside.any():
                rows.append({"low": edges[b], "high": edges[b + 1], "count": int(inside.sum()),
                             "confidence": float(self.confidence[inside].mean()),
                             "accuracy": float(correct[inside].mean())})
        table = pd.DataFrame(rows, columns=["low", "high", "count", "confidence", "accuracy"])
        n = max(len(self.labels), 1)
        ece = float((table["count"] / n * (table["confidence"] - table["accuracy"]).abs()).sum())
        return ece, table

    def confidently_wrong(self, count: int = WORST) -> pd.DataFrame:
        wrong = np.flatnonzero(self.predicted != self.labels)
        order = wrong[np.argsort(-self.confidence[wrong], kind="stable")][:count]
        return pd.DataFrame({
            "file": [str(self.predictions.paths[i]) for i in order],
            "true": [self.class_names[self.labels[i]] for i in order],
            "predicted": [self.class_names[self.predicted[i]] for i in order],
            "confidence": self.confidence[order]})

    def files_frame(self) -> pd.DataFrame:
        return pd.DataFrame({"file": [str(p) for p in self.predictions.paths],
                             "true": [self.class_names[i] for i in self.labels],
                             "predicted": [self.class_names[i] for i in self.predicted],
                             "confidence": self.confidence})


def evaluate(source: ModelSource, folder: Path, files: list[Path], labels: list[int],
             progress: Any = None) -> Evaluation:
    """The model on ``files`` (``labelled_files`` of ``folder``) and their labels."""
    names = source.card.class_names
    if not files:
        raise ConfigError(f"{folder}: the class folders hold no files.")
    predictions = predict_files(source, files, progress)
    label_of = dict(zip(map(str, files), labels, strict=True))
    kept = np.asarray([label_of[str(p)] for p in predictions.paths], np.int64)
    if not len(kept):
        raise ConfigError(f"{folder}: no file could be decoded as an image.")
    return Evaluation(names, predictions, kept)


def summary(result: Evaluation, source: ModelSource) -> dict[str, Any]:
    ece, bins = result.calibration()
    return {"model": str(source.path), "format": source.format, "study": source.card.study,
            "trial": source.card.trial, "n": len(result.labels),
            "skipped": [{"path": s.path, "reason": s.reason} for s in result.predictions.skipped],
            **{name: found.as_dict() for name, found in result.scores().items()},
            "per_class": result.per_class().to_dict(orient="records"),
            "confusion": result.confusion().tolist(), "class_names": result.class_names,
            "expected_calibration_error": ece, "calibration_bins": bins.to_dict("records"),
            "confidently_wrong": result.confidently_wrong().to_dict(orient="records")}


def calibration_figure(result: Evaluation, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ece, bins = result.calibration()
    figure, axes = plt.subplots(figsize=(4.5, 4.5))
    axes.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfect calibration")
    axes.bar(bins["low"], bins["accuracy"], width=bins["high"] - bins["low"], align="edge",
             alpha=0.7, edgecolor="black", label="accuracy in the bin")
    axes.set(xlabel="confidence (top probability)", ylabel="accuracy", xlim=(0, 1),
             ylim=(0, 1), title=f"reliability: ECE {ece:.3f} on {len(result.labels)} images")
    axes.legend(loc="upper left")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def write_outputs(result: Evaluation, source: ModelSource, out: Path) -> list[Path]:
    """metrics.json, per_class.parquet, predictions.parquet and calibration.png in ``out``."""
    from tlsweep.store import write_parquet
    from tlsweep.system import write_text

    out.mkdir(parents=True, exist_ok=True)
    meta = {"model": str(source.path), "study": source.card.study, "trial": source.card.trial}
    written = [out / "metrics.json", out / "per_class.parquet", out / "predictions.parquet",
               out / "calibration.png"]
    write_text(written[0], json.dumps(summary(result, source), indent=2, default=float) + "\n")
    write_parquet(result.per_class(), written[1], meta)
    write_parquet(result.files_frame(), written[2], meta)
    calibration_figure(result, written[3])
    return written
