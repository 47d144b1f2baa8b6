"""The paired gap between two models' predictions on the same images, and its noise."""

from __future__ import annotations

import numpy as np
import pytest

from tlsweep.measures import paired_gap


def _predictions(labels: np.ndarray, wrong: np.ndarray) -> np.ndarray:
    """``labels`` with the images at ``wrong`` given another class."""
    predicted = labels.copy()
    predicted[wrong] = 1 - labels[wrong]
    return predicted


def test_the_gap_is_the_difference_of_the_scores_and_its_noise_shrinks_with_agreement() -> None:
    labels = np.repeat([0, 1], 150)
    default = _predictions(labels, np.arange(0, 300, 5))  # 60 wrong: accuracy 0.8
    better = _predictions(labels, np.arange(0, 300, 10))  # 30 of those same 60 wrong: 0.9
    lead = paired_gap(labels, better, default, "accuracy")
    assert lead.gap == pytest.approx(0.1)
    # Where one model is right on every image the other is, only the 30 images they disagree
    # on vary the gap: its bootstrap SE is about sqrt(p(1-p)/n) with p = 0.1, n = 300.
    assert lead.se == pytest.approx(np.sqrt(0.1 * 0.9 / 300), rel=0.15)
    unpaired = np.sqrt(0.8 * 0.2 / 300 + 0.9 * 0.1 / 300)
    assert lead.se < 0.7 * unpaired
    assert lead.clear_lead(1.0) and not lead.clear_lead(lead.gap / lead.se + 0.01)


def test_balanced_accuracy_weights_each_class_equally() -> None:
    labels = np.array([0] * 270 + [1] * 30)
    default = labels.copy()
    default[270:285] = 0  # half the rare class wrong: balanced accuracy 0.75
    lead = paired_gap(labels, labels, default, "balanced_accuracy", seed=3)
    assert lead.gap == pytest.approx(0.25)
    by_image = paired_gap(labels, labels, default, "accuracy")
    assert by_image.gap == pytest.approx(0.05)
    # 15 images of the rare class's 30 decide it: half of that recall's SE, sqrt(0.25 / 30) / 2,
    # where by image they are 15 of 300.
    assert lead.se == pytest.approx(np.sqrt(0.25 / 30) / 2, rel=0.15)
    assert lead.se > 3 * by_image.se


def test_identical_predictions_have_no_gap_and_no_noise() -> None:
    labels = np.repeat([0, 1, 2], 20)
    same = _predictions(labels % 2, np.arange(0, 60, 7))
    lead = paired_gap(labels, same, same, "balanced_accuracy")
    assert (lead.gap, lead.se) == (0.0, 0.0) and not lead.clear_lead(0.0)


def test_runs_on_the_same_images_average_their_gaps_and_resample_the_images_once() -> None:
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 2, 2000)
    default = np.stack([np.where(rng.random(2000) < 0.7, labels, 1 - labels) for _ in range(4)])
    fixed = rng.random((4, 2000)) < 0.05
    challenger = np.where(fixed, labels, default)
    each = [paired_gap(labels, challenger[i], default[i], "accuracy") for i in range(4)]
    mean = paired_gap(labels, challenger, default, "accuracy")
    assert mean.gap == pytest.approx(np.mean([g.gap for g in each]))
    # Each run's models disagree on different images, so the mean's noise falls near 1/sqrt(4).
    assert mean.se == pytest.approx(np.mean([g.se for g in each]) / 2, rel=0.2)
    # Four copies of one run are one run: nothing averages out when the images are shared.
    copies = paired_gap(labels, np.stack([challenger[0]] * 4), np.stack([default[0]] * 4),
                        "accuracy")
    assert copies.gap == pytest.approx(each[0].gap) and copies.se == pytest.approx(each[0].se)
