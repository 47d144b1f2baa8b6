"""``budget.timeout`` as the wall time of the whole run: the search takes a new trial only while
the time left holds that trial and, where this process runs it next, the finalists' stage,
both estimated from what the search has measured so far (``finalists.stage_seconds``). So the
split between search and evaluation follows the measured costs of this data on this machine,
and is revised after every trial."""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Any

from optuna.trial import TrialState

from tlsweep.finalists import EpochCosts, cross_validates, stage_seconds
from tlsweep.system import Record, format_seconds, usable_cores

SPLIT = "run_split"  # the study's user attribute holding the last run's RunSplit
# The fewest folds the stage cuts to for the budget: each fold model still sees two thirds of
# train+val, and every image is held out once among three.
MIN_FOLDS = 3


@dataclass(frozen=True)
class RunSplit(Record):
    """Where a run's wall time went, against its budget: recorded in the study (``SPLIT``) so
    that the estimate can be checked against what was measured."""

    timeout_s: float | None
    search_s: float
    finalists_s: float | None
    refit_s: float | None  # inside finalists_s: making the delivered model
    finalists_estimate_s: float | None  # what the search planned for (``Deadline``)
    stopped: str | None  # why the search stopped early, if it did

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunSplit:
        return cls(**data)

    def text(self) -> str:
        parts = [f"search {format_seconds(self.search_s)}"]
        if self.finalists_s is not None:
            stage = f"finalists {format_seconds(self.finalists_s)}"
            details = []
            if self.refit_s and self.refit_s >= 1:  # the probe's fit: too small to name
                details.append(f"the delivered model's training {format_seconds(self.refit_s)}")
            if self.finalists_estimate_s:
                details.append(f"planned {format_seconds(self.finalists_estimate_s)}")
            parts.append(stage + (f" ({'; '.join(details)})" if details else ""))
        total = self.search_s + (self.finalists_s or 0.0)
        budget = f" of budget.timeout {format_seconds(self.timeout_s)}" if self.timeout_s else ""
        return f"time: {format_seconds(total)}{budget}: {', '.join(parts)}"


def recorded_split(study: Any) -> RunSplit | None:
    stored = study.user_attrs.get(SPLIT)
    return RunSplit.from_dict(stored) if stored else None


class Deadline:
    """``started``: ``time.monotonic()`` when the run began. ``stage_follows``: this process
    runs the finalists' stage after the search (``run`` and ``resume``; not ``tlsweep
    worker``). ``stopped``: why the search stopped early, once it has."""

    def __init__(self, plan: Any, started: float, stage_follows: bool) -> None:
        self.plan, self.started, self.stage_follows = plan, started, stage_follows
        self.timeout = plan.sweep.config.budget.timeout
        self.stopped: str | None = None
        self.stage_estimate_s: float | None = None

    def left(self) -> float:
        return float("inf") if self.timeout is None else \
            self.timeout - (time.monotonic() - self.started)

    def allows_a_trial(self, study: Any) -> bool:
        """Whether a new trial fits. Until one trial has finished, yes, whatever the time: a run
        with no finished trial has nothing to deliver, and nothing measured to plan with."""
        if self.timeout is None:
            return True
        left = self.left()
        finished = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,
                                                              TrialState.PRUNED))
        durations = [t.user_attrs["duration_s"] for t in finished if "duration_s" in t.user_attrs]
        if not durations:
            return True
        trial = statistics.mean(durations)
        stage = self.stage_s(study, finished) if self.stage_follows else 0.0
        if left >= trial + stage:
            return True
        self.stopped = (f"search stopped with {format_seconds(max(left, 0))} of budget.timeout "
                        f"left: a trial takes about {format_seconds(trial)}"
                        + (f" and the finalists' stage about {format_seconds(stage)}"
                           if stage else "") + " here")
        return False

    def stage_s(self, study: Any, finished: list[Any]) -> float:
        self.stage_estimate_s = self.estimate(self.plan.sweep.config, finished)
        return self.stage_estimate_s

    def estimate(self, config: Any, finished: list[Any]) -> float:
        """The finalists' stage's seconds under ``config``, from the ``finished`` trials'
        epochs; 0 before any fine-tune epoch was measured."""
        data = self.plan.dataset
        costs = EpochCosts.measured((t.user_attrs.get("curve", []) for t in finished),
                                    len(data.y_train), map(probe_seconds, finished))
        if costs is None:
            return 0.0
        # The anchor's trial is a finalist of its own, not one of the top k.
        searched = sum(t.state == TrialState.COMPLETE for t in finished) \
            - (config.finalists.anchor is not None)
        return stage_seconds(config, costs, len(data.y_train) + len(data.y_val),
                             max(searched, 0), usable_cores(), len(self.plan.backbones))

    def stage_that_fits(self, study: Any) -> StageFit:
        """The most finalists' folds, from ``finalists.folds`` down to ``MIN_FOLDS``, whose
        stage as estimated ends within the time left; when none does with a refit on
        train+val, the most that do when the chosen finalist's fold models are delivered as
        their ensemble instead (no training beyond the folds); else the cheapest of these (the
        stage then says it will end past the budget). ``finalists.folds`` without a timeout,
        without cross-validation, or before anything was measured. Fewer folds cost less twice
        over: fewer models, each on fewer images; the choice between the candidates gets
        noisier. The plan's estimate becomes ``stage_estimate_s``, what the run's split compares
        the stage with."""
        config = self.plan.sweep.config
        most = config.finalists.folds
        data = self.plan.dataset
        if self.timeout is None or not cross_validates(config,
                                                       len(data.y_train) + len(data.y_val)):
            return StageFit(most)
        finished = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,
                                                              TrialState.PRUNED))
        left = self.left()
        ladder = [StageFit(folds, deliver)
                  for deliver in [None] + (["ensemble"] if config.finalists.deliver == "refit"
                                           else [])
                  for folds in range(most, min(MIN_FOLDS, most) - 1, -1)]
        for fit in ladder:  # the last, the cheapest, whether it fits or not
            estimate = self.estimate(staged(config, fit.folds, fit.deliver), finished)
            if not estimate:  # nothing measured: nothing to cut by
                return StageFit(most)
            self.stage_estimate_s = estimate
            if estimate <= left:
                break
        return fit


@dataclass(frozen=True)
class StageFit:
    """The finalists' stage as cut to the time left: its folds, and how its delivered model is
    made when not as ``finalists.deliver`` says (None: as it says)."""

    folds: int
    deliver: str | None = None


def staged(config: Any, folds: int, deliver: str | None) -> Any:
    """``config`` with the finalists' stage cut to ``folds`` and, if given, ``deliver``."""
    update: dict[str, Any] = {"folds": folds} | ({"deliver": deliver} if deliver else {})
    return config.model_copy(update={"finalists": config.finalists.model_copy(update=update)})


def probe_seconds(trial: Any) -> float:
    """The seconds ``trial`` took to fit the probe its head started from (0: none fitted)."""
    result = trial.user_attrs.get("result") or {}
    return float((result.get("timings") or {}).get("probe_s") or 0.0)
