"""Interval helpers against known values (scipy's, and textbook Wilson intervals). No TensorFlow."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import beta, binomtest

from tlsweep.measures import BRODERSEN, WILSON, estimate, wilson
from tlsweep.measures._intervals import (
    accuracy_estimate,
    balanced_estimate,
    balanced_posterior,
    tied_with,
)


@pytest.mark.parametrize("correct,n", [(8, 10), (0, 10), (10, 10), (97, 100), (412, 1000)])
def test_wilson_matches_scipy(correct: int, n: int) -> None:
    expected = binomtest(correct, n).proportion_ci(0.95, method="wilson")
    assert wilson(correct, n) == pytest.approx((expected.low, expected.high), abs=1e-9)


def test_wilson_textbook_value() -> None:
    # 8 of 10: the interval in Newcombe (1998), table I.
    assert wilson(8, 10) == pytest.approx((0.4902, 0.9433), abs=1e-4)


def shortest_beta_interval(a: float, b: float) -> tuple[float, float]:
    """The shortest 95% interval of Beta(a, b), by scipy."""
    from scipy.optimize import minimize_scalar

    width = lambda p: beta.ppf(p + 0.95, a, b) - beta.ppf(p, a, b)  # noqa: E731
    start = minimize_scalar(width, bounds=(0, 0.05), method="bounded").x
    return float(beta.ppf(start, a, b)), float(beta.ppf(start + 0.95, a, b))


@pytest.mark.parametrize("correct,n", [(8, 10), (10, 10), (3, 20)])
def test_balanced_posterior_of_one_class_is_its_beta_posterior(correct: int, n: int) -> None:
    # Only one class present: the balanced accuracy is that class's recall, Beta(k+1, n-k+1).
    low, high = balanced_posterior(np.array([[correct, n - correct], [0, 0]]))
    assert (low, high) == pytest.approx(shortest_beta_interval(correct + 1, n - correct + 1),
                                        abs=0.006)


def test_a_perfect_score_lies_inside_its_interval() -> None:
    found = balanced_estimate(np.array([[12, 0], [0, 9]]))
    assert found.value == 1.0 == found.high and found.low < 0.95


def test_a_perfect_or_null_accuracy_lies_inside_its_interval() -> None:
    """Wilson's upper bound at p = 1 is 1 in exact arithmetic; in floats it lands a hair below
    (0.9999999999999999) for many n, which put a perfect CV score outside its interval."""
    for n in range(1, 400):
        perfect = accuracy_estimate(np.diag([n, 0]))
        null = accuracy_estimate(np.array([[0, n], [0, 0]]))
        assert perfect.low <= perfect.value == 1.0 <= perfect.high, (n, perfect)
        assert null.low <= null.value == 0.0 <= null.high, (n, null)


def test_balanced_posterior_of_two_classes_narrows_and_centres() -> None:
    # Two classes of 50 at recall 0.9 and 0.7: the mean's posterior is centred near 0.8 and
    # narrower than either class's own interval.
    confusion = np.array([[45, 5], [15, 35]])
    found = balanced_estimate(confusion)
    assert found.value == pytest.approx(0.8)
    assert found.low < 0.8 < found.high and found.method == BRODERSEN
    one = beta.ppf([0.025, 0.975], 46, 6)
    assert found.high - found.low < one[1] - one[0] + 0.05
    assert balanced_posterior(confusion) == balanced_posterior(confusion)  # seeded


def test_many_small_classes_of_high_recall_keep_their_score_inside_the_interval() -> None:
    # 39 classes of 30 images at recall 0.8-0.93, as in the suite's caltech39: the uniform prior
    # alone pulls each recall toward 0.5 by more than the mean's half-width.
    correct = np.resize([24, 26, 27, 28], 39)
    confusion = np.diag(correct) + np.roll(np.diag(30 - correct), 1, axis=1)
    found = balanced_estimate(confusion)
    uniform = np.random.default_rng(0).beta(correct + 1.0, 31.0 - correct, (20_000, 39))
    assert np.quantile(uniform.mean(axis=1), 0.975) < found.value  # what the hull repairs
    assert found.low < found.value - 0.01 and found.high > found.value + 0.01
    middle = (found.low + found.high) / 2
    assert abs(middle - found.value) < (found.high - found.low) / 4


def test_accuracy_estimate_and_ties() -> None:
    found = accuracy_estimate(np.array([[40, 10], [10, 40]]))
    assert (found.value, found.n, found.method) == (0.8, 100, WILSON)
    assert (found.low, found.high) == pytest.approx(wilson(80, 100))
    assert found.contains(0.75) and not found.contains(0.9)
    assert tied_with(0.85, found) and not tied_with(0.9, found)
    assert estimate(np.array([[40, 10], [10, 40]]), "val_balanced_accuracy").method == BRODERSEN
    with pytest.raises(ValueError):
        estimate(np.eye(2), "val_loss")
