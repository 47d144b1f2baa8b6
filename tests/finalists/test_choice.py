"""Which finalist the stage delivers: the anchor unless a searched finalist leads it clearly on
the same out-of-fold images; then the probe, cheaper, unless that choice leads it clearly."""

from __future__ import annotations

from typing import Any

import numpy as np

from tlsweep.finalists import BaselineResult, FinalistResult
from tlsweep.finalists._choice import choose_finalist, probe_challenge

LABELS = np.repeat([0, 1], 150)


def _predicted(wrong: range) -> tuple[list[list[int]], list[int]]:
    predicted = LABELS.copy()
    predicted[list(wrong)] = 1 - LABELS[list(wrong)]
    confusion = np.zeros((2, 2), np.int64)
    np.add.at(confusion, (LABELS, predicted), 1)
    return confusion.tolist(), predicted.tolist()


def _row(trial: int, wrong: range, value: float = 0.5) -> FinalistResult:
    confusion, predicted = _predicted(wrong)
    return FinalistResult(trial, value, 4, cv_confusion=confusion, cv_predicted=predicted)


def _probe(wrong: range) -> BaselineResult:
    confusion, predicted = _predicted(wrong)
    return BaselineResult("Tiny", 1.0, 0.5, "balanced", confusion, None, "train", 1.0,
                          "balanced", cv_confusion=confusion, cv_predicted=predicted)


def _choose(rows: dict[int, FinalistResult], anchor: int | None, margin: float = 1.0) -> Any:
    return choose_finalist(rows, anchor, LABELS, "accuracy", margin, seed=0)


def test_a_searched_finalist_a_few_images_ahead_does_not_displace_the_anchor() -> None:
    rows = {0: _row(0, range(0, 300, 5)),  # 60 wrong
            3: _row(3, range(1, 286, 5), value=0.9)}  # 57 wrong, all other images
    choice = _choose(rows, anchor=0)
    assert choice.chosen == 0 and "not a clear lead" in choice.reason
    assert _choose(rows, anchor=0, margin=0.0).chosen == 3  # no margin: the top score
    assert _choose(rows, anchor=None).chosen == 3  # no anchor: the top score


def test_a_searched_finalist_far_ahead_displaces_the_anchor() -> None:
    rows = {0: _row(0, range(0, 300, 3)), 4: _row(4, range(0, 300, 30)),
            5: _row(5, range(0, 300, 20))}
    choice = _choose(rows, anchor=0)
    assert choice.chosen == 4 and "a clear lead" in choice.reason


def test_without_an_anchor_ties_on_the_folds_go_to_the_better_search_value() -> None:
    rows = {1: _row(1, range(0, 300, 5), value=0.7), 2: _row(2, range(1, 300, 5), value=0.8)}
    assert _choose(rows, anchor=None).chosen == 2


def test_the_finalist_must_lead_the_cheaper_probe_clearly_to_be_delivered() -> None:
    chosen = _row(0, range(0, 300, 5))  # 60 wrong
    close = [_probe(range(1, 286, 5))]  # 57 wrong: a hair ahead
    level = [_probe(range(1, 300, 5))]  # 60 wrong, other images
    far_behind = [_probe(range(0, 300, 2))]  # 150 wrong
    ahead = [_probe(range(0, 300, 50))]  # 6 wrong
    for probes in (close, level, ahead):  # not separable from the finalist, or better
        choice = probe_challenge(probes, chosen, LABELS, "accuracy", 1.0, 0)
        assert choice is not None and choice.chosen == "Tiny"
        assert "the cheaper model, the probe, is delivered" in choice.reason
    assert "cannot tell fine-tuning from the probe" in probe_challenge(
        level, chosen, LABELS, "accuracy", 1.0, 0).reason
    assert "the probe scored higher" in probe_challenge(
        ahead, chosen, LABELS, "accuracy", 1.0, 0).reason
    kept = probe_challenge(far_behind, chosen, LABELS, "accuracy", 1.0, 0)
    assert kept.chosen is None and "the fine-tuned model is delivered" in kept.reason
    assert probe_challenge([], chosen, LABELS, "accuracy", 1.0, 0) is None
    # No margin: the finalist needs only to score higher (a tie is not higher).
    assert probe_challenge(level, chosen, LABELS, "accuracy", 0.0, 0).chosen == "Tiny"
