"""The stage's fold lines: progress, the pace's ETA, and one plain warning when the run will end
past its budget. No TensorFlow."""

from __future__ import annotations

import time

from tlsweep.finalists._run import _FoldClock


def test_the_clock_warns_once_when_the_pace_ends_past_the_budget() -> None:
    clock = _FoldClock(4, deadline=time.monotonic() + 0.05)
    time.sleep(0.1)  # one fold took 0.1 s: four end past a deadline 0.05 s away
    first = clock.landed()
    assert first.startswith("1 of 4 folds in") and "left" in first
    assert "past budget.timeout" in first and "slower than the search's epochs" in first
    assert "past budget.timeout" not in clock.landed(), "said once"


def test_no_warning_inside_the_budget_or_without_one() -> None:
    roomy = _FoldClock(2, deadline=time.monotonic() + 3600)
    assert "past" not in roomy.landed()
    last = roomy.landed()
    assert last.startswith("2 of 2 folds in") and "left" not in last
    assert "past" not in _FoldClock(2, deadline=None).landed()
