"""How far apart two models' scores are on the same images, and how noisy that gap is: a paired,
class-stratified bootstrap over the images (Efron & Tibshirani 1993, ch. 6), so that the images
both models got right or wrong cancel out of the gap's noise. No TensorFlow.

Used to choose between the finalists on their pooled out-of-fold predictions, where one image is
a third of a point and the best of several scores is biased upward: a challenger displaces the
default only when it leads by more than a stated number of standard errors (the one-standard-
error rule of Breiman et al. 1984, ``Classification and Regression Trees``, §3.4.3)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tlsweep.measures._objective import Objective
from tlsweep.system import Record

_DRAWS = 2_000


@dataclass(frozen=True)
class PairedGap(Record):
    """``challenger`` minus ``default`` on the same images, and the bootstrap standard error."""

    gap: float
    se: float

    def clear_lead(self, margin: float) -> bool:
        """Whether the challenger leads by more than ``margin`` standard errors."""
        return self.gap > margin * self.se


def _score(labels: np.ndarray, right: np.ndarray, classes: np.ndarray,
           balanced: bool) -> np.ndarray:
    """The metric of ``right`` (draws x images, 1 where a prediction was right)."""
    if not balanced:
        return right.mean(axis=-1)
    recalls = [right[..., labels == c].mean(axis=-1) for c in classes]
    return np.asarray(np.mean(recalls, axis=0))


def paired_gap(labels: np.ndarray, challenger: np.ndarray, default: np.ndarray, metric: str,
               draws: int = _DRAWS, seed: int = 0) -> PairedGap:
    """The gap in ``metric`` between two sets of predicted classes of the same labelled images,
    with its standard error from resampling the images within each class (so that every
    resample holds every class, in its own proportion, as balanced accuracy needs).

    ``challenger`` and ``default`` may also be runs x images (several seeds' models, each pair
    scored on the same images): the gap is then the mean of the runs' gaps, and each draw
    resamples the images once for every run, because the runs share them."""
    labels = np.asarray(labels)
    balanced = Objective.named(metric).balanced
    classes = np.unique(labels)
    right_a = np.atleast_2d(np.asarray(challenger) == labels).astype(np.float64)
    right_b = np.atleast_2d(np.asarray(default) == labels).astype(np.float64)
    gap = float(np.mean(_score(labels, right_a, classes, balanced) -
                        _score(labels, right_b, classes, balanced)))
    rng = np.random.default_rng(seed)
    picks = np.empty((draws, len(labels)), np.int64)
    for c in classes:
        members = np.flatnonzero(labels == c)
        picks[:, members] = rng.choice(members, size=(draws, len(members)))
    gaps = np.mean(_score(labels, right_a[:, picks], classes, balanced) -
                   _score(labels, right_b[:, picks], classes, balanced), axis=0)
    return PairedGap(gap, float(np.std(gaps, ddof=1)))
