"""95% intervals for the accuracies tlsweep shows, each with its method stated. No TensorFlow.

- Accuracy: the Wilson score interval (Wilson 1927), which keeps its coverage near 0 and 1 and on
  the small validation sets users bring, where the normal approximation does not.
- Balanced accuracy: the posterior of the mean of per-class recalls, each recall Beta(k+1, n-k+1)
  under a uniform prior (Brodersen et al., ICPR 2010, "The balanced accuracy and its posterior
  distribution"): its shortest 95% interval, from Monte Carlo draws with a fixed seed so that a
  file rewritten twice holds the same numbers. The shortest interval, not the central one: when
  every image of each class is right, the central interval excludes the observed 1.0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

from tlsweep.measures._objective import Objective
from tlsweep.system import Record

CONFIDENCE = 0.95
WILSON = "Wilson score interval"
BRODERSEN = "shortest 95% interval of the balanced accuracy's posterior (Brodersen et al. 2010)"
_DRAWS = 20_000


@dataclass(frozen=True)
class Estimate(Record):
    """A measured score, its 95% interval, the number of images and how the interval was made."""

    value: float
    low: float
    high: float
    n: int
    method: str


    def text(self) -> str:
        return f"{self.value:.3f} [{self.low:.3f}, {self.high:.3f}]"

    def contains(self, value: float) -> bool:
        return self.low <= value <= self.high


def wilson(correct: int, n: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Wilson score interval for ``correct`` successes out of ``n``."""
    if n <= 0:
        return 0.0, 1.0
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    p = correct / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def balanced_posterior(confusion: np.ndarray, confidence: float = CONFIDENCE,
                       draws: int = _DRAWS, seed: int = 0) -> tuple[float, float]:
    """Central interval of the balanced accuracy's posterior, over the classes present."""
    confusion = np.asarray(confusion, dtype=np.int64)
    support = confusion.sum(axis=1)
    present = support > 0
    if not present.any():
        return 0.0, 1.0
    correct = np.diag(confusion)[present]
    wrong = support[present] - correct
    rng = np.random.default_rng(seed)
    recalls = rng.beta(correct + 1.0, wrong + 1.0, size=(draws, int(present.sum())))
    means = np.sort(recalls.mean(axis=1))
    inside = int(np.ceil(confidence * draws))
    widths = means[inside - 1:] - means[:draws - inside + 1]
    start = int(np.argmin(widths))
    return float(means[start]), float(means[start + inside - 1])


def accuracy_estimate(confusion: np.ndarray) -> Estimate:
    confusion = np.asarray(confusion, dtype=np.int64)
    n, correct = int(confusion.sum()), int(np.trace(confusion))
    low, high = wilson(correct, n)
    value = correct / n if n else float("nan")
    if n:  # at p = 0 or 1 a bound is the value itself, which rounding can put a hair inside
        low, high = min(low, value), max(high, value)
    return Estimate(value, low, high, n, WILSON)


def balanced_estimate(confusion: np.ndarray) -> Estimate:
    confusion = np.asarray(confusion, dtype=np.int64)
    support = confusion.sum(axis=1)
    present = support > 0
    value = float(np.mean(np.diag(confusion)[present] / support[present])) if present.any() \
        else float("nan")
    low, high = balanced_posterior(confusion)
    # At a bound the draws stop a hair short of it (a Beta never reaches 1): the interval holds
    # the observed value by definition of the shortest interval's limit.
    if present.any():
        low, high = min(low, value), max(high, value)
    return Estimate(value, low, high, int(confusion.sum()), BRODERSEN)


def estimate(confusion: np.ndarray, metric: str) -> Estimate:
    """``metric``: accuracy or balanced_accuracy (a ``val_``/``test_`` prefix is ignored)."""
    objective = Objective.named(metric)
    return balanced_estimate(confusion) if objective.balanced else accuracy_estimate(confusion)


def tied_with(best: float, candidate: Estimate) -> bool:
    """A trial is tied with the best when the best value lies inside the trial's own 95%
    interval: on these images, the two cannot be told apart."""
    return candidate.high >= best


def images_per_point(n: int) -> float:
    """How many images one point (0.01) of accuracy is on a set of ``n``."""
    return n / 100
