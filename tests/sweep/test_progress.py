"""The live view of a running sweep: one printed line per trial, counts, best value and ETA."""

from __future__ import annotations

import io

import optuna
from optuna.trial import TrialState, create_trial
from rich.console import Console

from tlsweep.config import TrialParams
from tlsweep.sweep._progress import LiveView
from tlsweep.system import format_seconds

PARAMS = TrialParams("MobileNetV2", 0.25, 3e-3, 1e-4, 0.5, "none")


def _view(budget: int = 4, already_done: int = 0) -> tuple[LiveView, io.StringIO]:
    out = io.StringIO()
    console = Console(file=out, width=200, force_terminal=False, color_system=None)
    return LiveView("pets", budget, console, already_done=already_done), out


def _finished(number: int, state: TrialState, value: float | None = None,
              **attrs: object) -> optuna.trial.FrozenTrial:
    trial = create_trial(state=state, value=value, user_attrs=dict(attrs))
    trial.number = number
    return trial


def test_each_trial_prints_its_parameters_and_its_end() -> None:
    view, out = _view()
    study = optuna.create_study(direction="maximize")
    study.set_user_attr("objective", "val_accuracy")
    view.trial_started(0, PARAMS)
    # 80 of 100 right: the value's interval comes from the best epoch's confusion matrix.
    view.trial_finished(_finished(0, TrialState.COMPLETE, 0.8,
                                  result={"confusion": [[40, 10], [10, 40]]}), study)
    view.trial_started(1, PARAMS)
    view.trial_finished(_finished(1, TrialState.PRUNED, pruned_at=5), study)
    view.trial_finished(_finished(2, TrialState.FAIL, error="MemoryError: too big"), study)
    lines = out.getvalue().splitlines()
    assert lines[0] == ("trial 0 started: backbone=MobileNetV2, unfreeze_depth=0.25, "
                        "head_lr=0.003, finetune_lr=0.0001, augmentation_strength=0.5, "
                        "class_weighting=none")
    assert lines[1].startswith("trial 0 complete value 0.8000 [0.7") and lines[1].endswith("(1/4)")
    assert lines[3] == "trial 1 pruned at step 5  (2/4)"
    assert lines[4] == "trial 2 fail MemoryError: too big  (3/4)"
    assert view.counts == {"complete": 1, "pruned": 1, "fail": 1}
    assert view.best == (0.8, 0)


def test_the_best_is_the_highest_complete_value_and_eta_counts_the_rest() -> None:
    view, _ = _view(budget=10, already_done=4)  # a resumed sweep: 4 done before this process
    study = optuna.create_study(direction="maximize")
    assert view.eta() is None  # nothing finished here yet: no rate to extrapolate
    for number, value in ((4, 0.6), (5, 0.9), (6, 0.7)):
        view.trial_finished(_finished(number, TrialState.COMPLETE, value), study)
    assert view.best == (0.9, 5) and view.done == 7
    view.started -= 30.0  # 3 trials in 30 s here, 3 left: about 30 s to go
    assert 29.0 < (view.eta() or 0.0) < 32.0


def test_the_running_trial_shows_its_phase_and_epoch() -> None:
    view, _ = _view()
    view.trial_started(3, PARAMS)
    view.epoch_started("finetune", 6, 12)
    rendered = io.StringIO()
    Console(file=rendered, width=200, color_system=None).print(view)
    assert "trial 3: finetune · epoch 7/12" in rendered.getvalue()
    assert "trials 0/4" in rendered.getvalue() and "ETA –" in rendered.getvalue()


def test_seconds_read_as_minutes_or_hours() -> None:
    assert [format_seconds(s) for s in (None, 59.6, 61, 3600 + 120)] == \
        ["–", "1m00s", "1m01s", "1h02m"]


def test_the_view_shows_the_budget_left_and_the_finalists_share() -> None:
    from types import SimpleNamespace

    view, _ = _view()
    assert view.budget_text() is None  # no deadline: nothing to say
    deadline = SimpleNamespace(timeout=600.0, stage_estimate_s=125.0,
                               left=lambda: 600.0 - 61.0)
    view.deadline = deadline  # type: ignore[assignment]
    assert view.budget_text() == "budget left 8m59s (finalists ~2m05s)"
    deadline.stage_estimate_s = None  # nothing measured yet
    assert view.budget_text() == "budget left 8m59s"
    deadline.timeout = None
    assert view.budget_text() is None
