"""The one number a user is shown for the delivered model, with its interval and what it was
measured on. No TensorFlow.

The headline is the delivered model on the study's test split, which nothing chose: the
benchmark suite measured three candidates on the same ten runs against a held-out folder the
tool never saw (``benchmarks/RESULTS.md``, "The benchmark suite"), and the test split's interval
covered it most often and lay nearest. Cross-validation's out-of-fold predictions keep
look-alike images in one fold, which on look-alike-rich sets (defect crops, a few photos of each
object) is a harder task than new images from the same folder, and their fold models saw
(k-1)/k of the data; pooled with the test split they still pulled the estimate down. The test
split after ``duplicates: move`` can be small, and its interval is then wide: that is its
noise, said. Without a test split the out-of-fold predictions are the estimate.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tlsweep.measures._intervals import estimate
from tlsweep.system import Record


@dataclass(frozen=True)
class Headline(Record):
    """The delivered model's score: ``metric`` (the study's), its 95% interval, the number of
    images, what they were (``source``) and how the interval was made (``interval``)."""

    metric: str
    value: float
    low: float
    high: float
    n: int
    source: str
    interval: str

    def text(self) -> str:
        name = self.metric.replace("_", " ")
        return (f"{name} {self.value:.3f} [{self.low:.3f}, {self.high:.3f}] on {self.n} images: "
                f"{self.source}; 95% interval: {self.interval}")

    @classmethod
    def from_dict(cls, data: dict) -> Headline:
        return cls(**data)


def pooled_headline(parts: list[tuple[list[list[int]], str]], metric: str) -> Headline | None:
    """The headline from ``parts``, each (a confusion matrix, what its images were), pooled into
    one confusion matrix; None without any."""
    if not parts:
        return None
    confusion = np.sum([np.asarray(c, np.int64) for c, _ in parts], axis=0)
    found = estimate(confusion, metric)
    return Headline(metric.removeprefix("val_").removeprefix("test_"), found.value, found.low,
                    found.high, found.n, " pooled with ".join(words for _, words in parts),
                    found.method)


def headline_text(headline: dict | None, probe: dict | None) -> str | None:
    """The line a user reads: the delivered model's headline and, on the same images, the
    linear probe's (each a ``Headline`` as stored); None without a headline."""
    if not headline:
        return None
    found = Headline.from_dict(headline)
    text = f"estimate: {found.text()}."
    if probe:
        baseline = Headline.from_dict(probe)
        text += (f" The linear probe on the same images: {baseline.value:.3f} "
                 f"[{baseline.low:.3f}, {baseline.high:.3f}], "
                 f"{found.value - baseline.value:+.3f} against it.")
    return text
