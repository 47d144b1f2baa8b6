"""The live rich view of a running sweep: trials done of the budget, best value, the current
trial's phase and epoch, and an ETA. One line per finished trial is printed above it, so a log
(or a terminal that is not interactive) keeps the history too."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from rich.console import Console, Group
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from tlsweep.system import format_seconds

if TYPE_CHECKING:
    import optuna

    from tlsweep.config import TrialParams
    from tlsweep.sweep._deadline import Deadline
    from tlsweep.training import EpochRecord


def _interval(trial: optuna.trial.FrozenTrial, objective: str) -> str:
    """The value's 95% interval, from the best epoch's confusion matrix (``measures``)."""
    confusion = (trial.user_attrs.get("result") or {}).get("confusion")
    if confusion is None:
        return ""
    import numpy as np

    from tlsweep.measures import estimate

    found = estimate(np.asarray(confusion), objective)
    return f" [{found.low:.3f}, {found.high:.3f}]"


class LiveView:
    def __init__(self, study_name: str, budget: int, console: Console | None = None,
                 already_done: int = 0, deadline: Deadline | None = None) -> None:
        """``deadline``: the run's (``budget.timeout``), so that the view says how much of it
        is left and what the finalists' stage after the search is expected to take."""
        self.console = console or Console()
        self.deadline = deadline
        self.study_name, self.budget = study_name, budget
        self.done, self.started = already_done, time.monotonic()
        self.finished_here = 0
        self.counts = {"complete": 0, "pruned": 0, "fail": 0}
        self.best: tuple[float, int] | None = None
        self.trial: int | None = None
        self.phase, self.step, self.total_steps = "", 0, 0
        self.last_val: float | None = None
        self.live = Live(self, console=self.console, refresh_per_second=4, transient=True)

    def __enter__(self) -> LiveView:
        self.live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.live.__exit__(*exc)

    # ----------------------------------------------------------------------- listener
    def trial_started(self, number: int, params: TrialParams) -> None:
        self.trial, self.phase, self.step, self.last_val = number, "starting", 0, None
        self.console.print(f"[dim]trial {number} started:[/] " + ", ".join(
            f"{k}={_short(v)}" for k, v in params.as_dict().items()))

    def epoch_started(self, phase: str, step: int, total_steps: int) -> None:
        self.phase, self.step, self.total_steps = phase, step, total_steps

    def epoch_finished(self, record: EpochRecord) -> None:
        self.last_val = record.val_accuracy

    def trial_finished(self, trial: optuna.trial.FrozenTrial, study: optuna.Study) -> None:
        state = trial.state.name.lower()
        self.counts[state] = self.counts.get(state, 0) + 1
        self.done += 1
        self.finished_here += 1
        complete = state == "complete"
        if complete and (self.best is None or trial.value > self.best[0]):
            self.best = (trial.value, trial.number)
        interval = _interval(trial, study.user_attrs.get("objective", "val_accuracy"))
        detail = f"value {trial.value:.4f}{interval}" if complete else \
            trial.user_attrs.get("error") or f"at step {trial.user_attrs.get('pruned_at')}"
        style = {"complete": "green", "pruned": "yellow"}.get(state, "red")
        self.console.print(f"[{style}]trial {trial.number} {state}[/] {detail}"
                           f"  ({self.done}/{self.budget})")
        self.trial = None

    # ----------------------------------------------------------------------- rendering
    def eta(self) -> float | None:
        if not self.finished_here:
            return None
        per_trial = (time.monotonic() - self.started) / self.finished_here
        return max(self.budget - self.done, 0) * per_trial

    def budget_text(self) -> str | None:
        """The run's time left against budget.timeout, and the finalists' share of it, as the
        search estimates it; None without a timeout."""
        if self.deadline is None or self.deadline.timeout is None:
            return None
        stage = self.deadline.stage_estimate_s
        return (f"budget left {format_seconds(max(self.deadline.left(), 0))}"
                + (f" (finalists ~{format_seconds(stage)})" if stage else ""))

    def __rich__(self) -> Group:
        table = Table.grid(padding=(0, 2))
        best = f"{self.best[0]:.4f} (trial {self.best[1]})" if self.best else "–"
        table.add_row(Text(f"study {self.study_name}", style="bold"),
                      f"trials {self.done}/{self.budget}",
                      f"complete {self.counts['complete']} · pruned {self.counts['pruned']} · "
                      f"failed {self.counts['fail']}",
                      f"best {best}", f"ETA {format_seconds(self.eta())}",
                      self.budget_text() or "")
        rows: list = [table, ProgressBar(total=self.budget, completed=self.done, width=60)]
        if self.trial is not None:
            val = f"  val_acc {self.last_val:.3f}" if self.last_val is not None else ""
            rows.append(Text(f"trial {self.trial}: {self.phase} · epoch "
                             f"{self.step + 1}/{self.total_steps or '?'}{val}"))
        return Group(*rows)


def _short(value: object) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)
