"""What a model card says in words: what the model is for, and what it cannot be trusted with,
drawn from the study's own figures (its class counts, the delivered model's confusion on test).
Plain values in: ``_modelcard`` fills the card with it, and this module needs no card type.
No TensorFlow here."""

from __future__ import annotations

from typing import Any

import numpy as np

IMBALANCED = 3.0  # largest over smallest class in training: where accuracy starts to mislead
WEAK_RECALL = 0.8  # a class recalled below this on test is named


def intended_use(class_names: list[str], training_data: dict[str, Any]) -> str:
    folder = training_data.get("folder") or "the study's folder"
    return (f"Classifying RGB images into {len(class_names)} classes "
            f"({_names(class_names)}), for images like those in {folder}: the model was "
            f"chosen and measured on them and on nothing else.")


def _names(names: list[str], most: int = 6) -> str:
    return ", ".join(names[:most]) + (f" and {len(names) - most} more" if names[most:] else "")


def limitations(class_names: list[str], training_data: dict[str, Any], image_size: int,
                confusion: list[list[int]] | None) -> list[str]:
    """From the training counts and (for the delivered model) its confusion on test."""
    found = ["Images from another camera, site, population or time than the training folder "
             "were not tested: measure them with `tlsweep evaluate MODEL FOLDER` before use."]
    train = training_data.get("class_counts", {}).get("train") or {}
    if train and min(train.values()) > 0:
        large, small = max(train, key=train.get), min(train, key=train.get)
        ratio = train[large] / train[small]
        if ratio >= IMBALANCED:
            found.append(f"The classes are imbalanced ({large}: {train[large]} training images, "
                         f"{small}: {train[small]}; {ratio:.0f}:1): read balanced accuracy, "
                         f"and check the small classes' recall on your own images.")
    if confusion is not None:
        matrix = np.asarray(confusion)
        totals = matrix.sum(axis=1)
        recall = np.divide(np.diag(matrix), totals, out=np.zeros(len(totals)), where=totals > 0)
        weak = [(class_names[i], recall[i], int(totals[i])) for i in np.argsort(recall)
                if totals[i] > 0 and recall[i] < WEAK_RECALL]
        if weak:
            found.append("Weak on test: " + "; ".join(
                f"{name} recalled {value:.2f} of {n} images" for name, value, n in weak[:3])
                + ".")
        found.append(f"The test figures rest on {int(totals.sum())} images: see their intervals.")
    found.append(f"Each image is resized to {image_size} px inside the model; detail finer "
                 f"than that is lost.")
    return found
