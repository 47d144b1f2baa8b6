"""Every finished trial as one point for the report's plots: complete and pruned alike.

Optuna's own plots draw complete trials only, and a sweep with a pruner prunes most of its
trials: its history, parallel-coordinate and slice plots then showed 5 of 18. Here a pruned
trial is valued as the leaderboard values it: by its best epoch up to the step it reached (its
intermediate values are the objective per epoch), and that step is kept so the plots can say
how far it got. No TensorFlow, and no Optuna plotting.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import pandas as pd

from tlsweep.config import PARAM_NAMES

COMPLETE, PRUNED = "complete", "pruned"


@dataclass(frozen=True)
class TrialPoints:
    """``frame``: one row per counted trial (trial, state, value, step and a column per
    parameter); ``distributions``: each varied parameter's, in the search space's order;
    ``left_out``: failed trials, and any pruned before it recorded an epoch (not drawn);
    running and waiting trials are neither."""

    frame: pd.DataFrame
    distributions: dict[str, Any]
    left_out: int

    @property
    def complete(self) -> pd.DataFrame:
        return self.frame[self.frame["state"] == COMPLETE]

    @property
    def pruned(self) -> pd.DataFrame:
        return self.frame[self.frame["state"] == PRUNED]

    def counts(self) -> str:
        """"13 trials: 4 complete, 9 pruned", the words every plot's title uses."""
        total, complete, pruned = len(self.frame), len(self.complete), len(self.pruned)
        text = f"{total} trial{'s' * (total != 1)}: {complete} complete, {pruned} pruned"
        return text + (f" ({self.left_out} failed, not drawn)" if self.left_out else "")


def _value(trial: Any) -> tuple[float, int | None] | None:
    """(value, last step reached): a complete trial's value, a pruned trial's best epoch up
    to the step it reached; None for a trial with nothing measured."""
    steps = trial.intermediate_values
    last = max(steps) if steps else None
    if trial.state.name == "COMPLETE" and trial.value is not None:
        return float(trial.value), last
    finite = [v for v in steps.values() if v is not None and not math.isnan(v)]
    return (max(finite), last) if finite else None


def _varied(distribution: Any) -> bool:
    """Fixed parameters (one value only) have nothing to plot, as importance leaves them out."""
    return not distribution.single()


def trial_points(study: Any) -> TrialPoints:
    rows, distributions, left_out = [], {}, 0
    for trial in study.get_trials(deepcopy=False):
        state = trial.state.name
        found = _value(trial) if state in ("COMPLETE", "PRUNED") else None
        if found is None:
            left_out += state in ("FAIL", "COMPLETE", "PRUNED")
            continue
        value, step = found
        rows.append({"trial": trial.number, "state": state.lower(), "value": value,
                     "step": step, **trial.params})
        for name, distribution in trial.distributions.items():
            if _varied(distribution):
                distributions.setdefault(name, distribution)
    order = {name: index for index, name in enumerate(PARAM_NAMES)}
    named = sorted(distributions, key=lambda name: (order.get(name, len(order)), name))
    columns = ["trial", "state", "value", "step", *named]
    frame = pd.DataFrame(rows).reindex(columns=columns) if rows else pd.DataFrame(columns=columns)
    return TrialPoints(frame.sort_values("trial", ignore_index=True),
                       {name: distributions[name] for name in named}, left_out)


# ----------------------------------------------------------------------------- axes
def is_categorical(distribution: Any) -> bool:
    return hasattr(distribution, "choices")


def is_log(distribution: Any) -> bool:
    return bool(getattr(distribution, "log", False))


def position(value: Any, distribution: Any) -> float:
    """Where ``value`` sits in its range, 0 (low) to 1 (high), in log space for a log range;
    a categorical value by its choice's index."""
    if is_categorical(distribution):
        choices = list(distribution.choices)
        index = choices.index(value) if value in choices else 0
        return index / max(len(choices) - 1, 1)
    low, high, point = float(distribution.low), float(distribution.high), float(value)
    if is_log(distribution):
        low, high, point = math.log(low), math.log(high), math.log(point)
    return (point - low) / ((high - low) or 1.0)


def ticks(distribution: Any) -> list[tuple[float, str]]:
    """An axis's labels at their positions: each choice, or the range's ends and middle."""
    if is_categorical(distribution):
        choices = list(distribution.choices)
        return [(position(c, distribution), str(c)) for c in choices]
    low, high = float(distribution.low), float(distribution.high)
    middle = math.sqrt(low * high) if is_log(distribution) else (low + high) / 2
    return [(position(v, distribution), f"{v:.3g}") for v in (low, middle, high)]


def label(name: str) -> str:
    """A long parameter name on two lines, so that axis labels side by side do not run into
    each other."""
    return name.replace("_", "\n", 1) if len(name) > 12 else name
