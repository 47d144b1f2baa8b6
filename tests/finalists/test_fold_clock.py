"""The stage's fold lines: progress, the pace's ETA, and one plain warning when the run will end
past its budget. No TensorFlow."""

from __future__ import annotations

import time

from tlsweep.finalists._crossval import _FoldClock


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


def test_past_deadline_counts_the_folds_left_and_the_refit() -> None:
    clock = _FoldClock(10, deadline=time.monotonic() + 0.6)
    assert clock.past_deadline(3, 5) is None  # no pace yet: nothing to refuse on
    time.sleep(0.1)
    clock.landed()  # 0.1 s a fold: 2 folds and the refit (1.25 folds) end ~0.45 s from here
    assert clock.past_deadline(2, 5) is None
    past = clock.past_deadline(9, 5)  # ~1.0 s from here, ~0.5 s past the deadline
    assert past is not None and 0.3 < past < 0.8
    # Without a refit (the fold models averaged), only the folds: ~0.9 s from here.
    clock.refit = False
    without = clock.past_deadline(9, 5)
    assert without is not None and 0.08 < past - without < 0.17
    assert _FoldClock(2, deadline=None).past_deadline(100, 5) is None


class _Sent(list):
    def send(self, message: object) -> None:
        self.append(message)


def test_a_finalist_whose_folds_would_end_past_the_budget_is_not_started() -> None:
    """The anchor goes first and always runs; trial 7 (ranked first among the searched) fits;
    trial 9 would end past the deadline at the pace so far, so it is cut, and said."""
    from types import SimpleNamespace

    import numpy as np
    import sklearn.model_selection  # noqa: F401  imported now, not on the stage's clock

    from tlsweep.finalists._crossval import FoldWork
    from tlsweep.finalists._protocol import Finalist
    from tlsweep.finalists._records import FoldResult

    labels = np.array([0, 1] * 10)
    searched = [Finalist(7, None, 0.9, 3, None, None), Finalist(9, None, 0.8, 3, None, None)]
    anchor = Finalist(2, None, 0.7, 3, None, None, anchor=True)
    sent = _Sent()
    # 0.2 s a fold, 3 folds and a refit of 1.5 folds' time: trial 7 ends at 1.5 s, trial 9
    # would at 2.1 s.
    task = SimpleNamespace(folds=3, done={}, deliver="refit", deadline=time.monotonic() + 1.8,
                           role="lead",
                           folds_saved_in=__import__("pathlib").Path("/nonexistent"),
                           spec=SimpleNamespace(sweep=SimpleNamespace(config=SimpleNamespace(
                               objective="val_accuracy", seed=0))))
    data = SimpleNamespace(y_train=labels[:14], y_val=labels[14:], n_classes=2,
                           duplicates=None)
    run = FoldWork(sent, task, data, None, None, sent.send)

    def fold_results(jobs, folds, claim):
        for job in jobs:
            time.sleep(0.2)
            yield FoldResult(job.finalist.number, job.index, job.key,
                             [0] * len(job.held), 0.1, "here", "now")

    run.fold_results = fold_results
    results = run.cross_validate([*searched, anchor])
    assert set(results) == {2, 7} and run.cut_finalists == [9]
    said = [m for m in sent if isinstance(m, str)]
    assert any(line.startswith("trial 9 not cross-validated: at the pace so far (6 folds)")
               and "past budget.timeout" in line for line in said), said
    trained = [m.fold.trial for m in sent if not isinstance(m, str)]
    assert trained == [2, 2, 2, 7, 7, 7]  # the anchor first, then the searched by rank


def test_a_refit_that_would_end_past_the_budget_is_found_from_the_chosen_ones_folds() -> None:
    """Its three folds took 4 to 6 s, each on two thirds of train+val: a refit on all of it
    takes about 7.5 s. Ten seconds left hold it; five do not (about 2.5 s past); without a
    timeout nothing is past."""
    from types import SimpleNamespace

    from tlsweep.finalists._run import FinalRun

    run = object.__new__(FinalRun)
    run.cv = SimpleNamespace(fold_seconds={3: [4.0, 5.0, 6.0]}.get, fold_path=lambda f, i: i)
    run.by_trial = {3: SimpleNamespace(fold_scores=[0.5, 0.6, 0.7])}
    chosen = SimpleNamespace(number=3)
    run.task = SimpleNamespace(deadline=time.monotonic() + 10)
    assert run.refit_past_budget(chosen) is None
    run.task = SimpleNamespace(deadline=time.monotonic() + 5)
    past = run.refit_past_budget(chosen)
    assert past is not None and 2.3 < past < 2.7
    run.task = SimpleNamespace(deadline=None)
    assert run.refit_past_budget(chosen) is None
