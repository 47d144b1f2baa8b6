"""What quantising a model costs: its accuracy and balanced accuracy on the study's test split
(its validation split where it has none), quantised against float32, measured at export time and
written to the card. A quantised model answers differently by design; this is the number that
says by how much it matters."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from tlsweep.delivery._formats import Format
    from tlsweep.delivery._modelcard import ModelSource

BATCH = 64


def held_out_images(source: ModelSource) -> tuple[np.ndarray, np.ndarray, str]:
    """(uint8 images at the model's size, labels, which split) of the study behind ``source``,
    decoded as training decoded them (from the study's image cache when it is still there)."""
    from tlsweep.datasets import load_dataset
    from tlsweep.inspection import StudyView
    from tlsweep.store import recorded_sweep

    assert source.study_dir is not None  # plan_export refuses a quantised export without one
    view = StudyView.load(source.study_dir, source.card.study)
    sweep = recorded_sweep(view.study)
    data = load_dataset(sweep.config.data, sweep.config.seed, sweep.path)
    if data.has_test:
        return np.asarray(data.x_test, np.uint8), np.asarray(data.y_test), "test"
    return np.asarray(data.x_val, np.uint8), np.asarray(data.y_val), "validation"


def _predicted(run: Callable[[np.ndarray], np.ndarray], images: np.ndarray) -> np.ndarray:
    return np.concatenate([run(images[i:i + BATCH]).argmax(axis=1)
                           for i in range(0, len(images), BATCH)])


def _scores(labels: np.ndarray, predicted: np.ndarray, classes: int) -> tuple[float, float]:
    accuracy = float(np.mean(predicted == labels))
    recalls = [np.mean(predicted[labels == c] == c) for c in range(classes) if np.any(labels == c)]
    return accuracy, float(np.mean(recalls))


def quantization_change(model: Any, run: Callable[[np.ndarray], np.ndarray],
                        source: ModelSource, fmt: Format) -> dict[str, Any]:
    """The card's record of ``fmt``'s quantisation: both models' scores on the same images, the
    change, and the share of images given the same class."""
    import tensorflow as tf

    images, labels, split = held_out_images(source)
    forward = tf.function(lambda x: model(x, training=False), reduce_retracing=True)
    reference = _predicted(lambda x: np.asarray(forward(tf.constant(x))), images)
    quantized = _predicted(run, images)
    classes = len(source.card.class_names)
    accuracy, balanced = _scores(labels, reference, classes)
    q_accuracy, q_balanced = _scores(labels, quantized, classes)
    return {"quantization": fmt.quantization, "split": split, "images": len(labels),
            "float32": {"accuracy": accuracy, "balanced_accuracy": balanced},
            "quantized": {"accuracy": q_accuracy, "balanced_accuracy": q_balanced},
            "accuracy_change": q_accuracy - accuracy,
            "balanced_accuracy_change": q_balanced - balanced,
            "same_class": float(np.mean(reference == quantized))}
