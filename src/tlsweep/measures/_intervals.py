"""95% intervals for the accuracies tlsweep shows, each with its method stated. No TensorFlow.

- Accuracy: the Wilson score interval (Wilson 1927), which keeps its coverage near 0 and 1 and on
  the small validation sets users bring, where the normal approximation does not.
- Balanced accuracy: the posterior of the mean of per-class recalls (Brodersen et al., ICPR
  2010, "The balanced accuracy and its posterior distribution"): its shortest 95% interval, from
  Monte Carlo draws with a fixed seed so that a file rewritten twice holds the same numbers. The
  shortest interval, not the central one: when every image of each class is right, the central
  interval excludes the observed 1.0.

  Under Brodersen's uniform prior each recall, Beta(k+1, n-k+1), is pulled toward 0.5 by about
  (1 - 2p) / (n + 2), while the mean's width shrinks with the square root of the number of
  classes: with many small classes of high recall the whole interval fell below the observed
  score (39 classes of about 30 images at recall 0.86, in the benchmark suite). So the interval
  is the hull of two posteriors' (robust Bayes over a class of priors): the uniform prior's, and
  an empirical-Bayes prior's, where each class's recall is drawn toward the other classes' mean
  with the weight of two images. The second is centred on the observed score; the first keeps a
  perfect score on few images from looking certain.
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
BRODERSEN = ("shortest 95% interval of the balanced accuracy's posterior (Brodersen et al. 2010), "
             "hull over a uniform and an empirical-Bayes prior")
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


def _shortest(draws: np.ndarray, confidence: float) -> tuple[float, float]:
    means = np.sort(draws)
    inside = int(np.ceil(confidence * len(means)))
    widths = means[inside - 1:] - means[:len(means) - inside + 1]
    start = int(np.argmin(widths))
    return float(means[start]), float(means[start + inside - 1])


def _priors(correct: np.ndarray, n: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """The uniform prior, and with 2+ classes the pooled one: each class's Beta prior has the
    other classes' (shrunk) mean recall, with the weight of two images."""
    uniform = (np.ones(len(n)), np.ones(len(n)))
    if len(n) < 2:  # a class alone: nothing else informs it
        return [uniform]
    shrunk = (correct + 1.0) / (n + 2.0)
    others = (shrunk.sum() - shrunk) / (len(n) - 1)
    return [uniform, (2.0 * others, 2.0 * (1.0 - others))]


def balanced_posterior(confusion: np.ndarray, confidence: float = CONFIDENCE,
                       draws: int = _DRAWS, seed: int = 0) -> tuple[float, float]:
    """Shortest interval of the balanced accuracy's posterior over the classes present: the
    hull of the uniform prior's and the pooled (empirical-Bayes) prior's."""
    confusion = np.asarray(confusion, dtype=np.int64)
    support = confusion.sum(axis=1)
    present = support > 0
    if not present.any():
        return 0.0, 1.0
    correct = np.diag(confusion)[present].astype(float)
    n = support[present].astype(float)
    bounds = []
    for a, b in _priors(correct, n):
        rng = np.random.default_rng(seed)
        recalls = rng.beta(correct + a, n - correct + b, size=(draws, len(n)))
        bounds.append(_shortest(recalls.mean(axis=1), confidence))
    return min(low for low, _ in bounds), max(high for _, high in bounds)


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
