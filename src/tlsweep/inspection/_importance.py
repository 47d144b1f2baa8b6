"""Hyperparameter importance with Optuna's evaluators, written to ``importance.parquet``.

Which trials count: complete and pruned ones, compared at one global step that they all reached
(``common_step``): each trial's value there is its best epoch up to that step. A pruned trial's
final value is a partial one, and mixing partial with final values would credit whatever the
pruner keyed on; leaving pruned trials out would rest the ranking on the few that survived. A
trial that stopped before most others did (before the step that four in five trials reached) is
left out and counted. Fixed parameters have no importance and are left out. Categorical parameters
(backbone, class weighting) are handled by the evaluators themselves (PED-ANOVA compares
distributions directly; fANOVA and mean decrease in impurity one-hot encode them). Every
parameter of our space is present in every trial, so there are no conditional parameters to
impute.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from tlsweep.store import file_metadata, write_parquet

if TYPE_CHECKING:
    import optuna

IMPORTANCE = "importance.parquet"
EVALUATORS = ("ped-anova", "fanova", "mdi")
COLUMNS = ["param", "importance", "evaluator", "n_trials", "objective", "best_value",
           "at_edge", "n_pruned_excluded", "step", "n_pruned_counted"]
TREATMENT = ("Complete and pruned trials count, each by its best value up to one global step "
             "that four in five of them reached; trials that stopped earlier are left out. "
             "Fixed parameters are not listed.")
REACHED_SHARE = 0.8  # the common step is the last one at least this share of trials reached
MIN_TRIALS = 10  # below it a ranking is shown with a warning: one or two trials can decide it
EDGE_FRACTION = 0.05  # within 5% of the range (in log space for log ranges) counts as the edge


def make_evaluator(name: str, seed: int = 0) -> Any:
    import optuna

    if name == "fanova":
        return optuna.importance.FanovaImportanceEvaluator(seed=seed)
    if name == "mdi":
        return optuna.importance.MeanDecreaseImpurityImportanceEvaluator(seed=seed)
    return optuna.importance.PedAnovaImportanceEvaluator()


def edge(value: Any, distribution: Any) -> str | None:
    """``low`` or ``high`` when a float value sits at the edge of its range, else None."""
    from optuna.distributions import FloatDistribution, IntDistribution

    if not isinstance(distribution, FloatDistribution | IntDistribution):
        return None
    scale = math.log if distribution.log else (lambda v: v)
    low, high, point = scale(distribution.low), scale(distribution.high), scale(value)
    margin = EDGE_FRACTION * (high - low)
    if point <= low + margin:
        return "low"
    if point >= high - margin:
        return "high"
    return None


def _shown(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def common_step(last_steps: list[int]) -> int | None:
    """The last global step that at least ``REACHED_SHARE`` of the trials reached."""
    if not last_steps:
        return None
    ordered = sorted(last_steps, reverse=True)
    return ordered[max(0, int(len(ordered) * REACHED_SHARE + 0.999) - 1)]


def _comparable_value(trial: optuna.trial.FrozenTrial, step: int | None) -> float | None:
    """The trial's best value up to ``step``; a complete trial without a curve counts by its
    value; None when it stopped before ``step`` or has no parameters."""
    if not trial.params:
        return None
    if step is None or not trial.intermediate_values:
        return float(trial.value) if trial.state.name == "COMPLETE" else None
    if max(trial.intermediate_values) < step:
        return None
    return float(max(v for s, v in trial.intermediate_values.items() if s <= step))


def comparable_study(study: optuna.Study) -> tuple[optuna.Study, int | None, int, int]:
    """(an in-memory study of the counted trials, each valued at the common step; that step;
    pruned trials counted; pruned trials left out)."""
    import optuna

    states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    finished = study.get_trials(deepcopy=False, states=states)
    step = common_step([max(t.intermediate_values) for t in finished if t.intermediate_values])
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    comparable = optuna.create_study(direction="maximize")
    counted_pruned = excluded_pruned = 0
    for trial in finished:
        value = _comparable_value(trial, step)
        pruned = trial.state == optuna.trial.TrialState.PRUNED
        if value is None:
            excluded_pruned += pruned
            continue
        counted_pruned += pruned
        comparable.add_trial(optuna.trial.create_trial(
            params=trial.params, distributions=trial.distributions, value=value))
    return comparable, step, counted_pruned, excluded_pruned


def importance_frame(study: optuna.Study, evaluators: tuple[str, ...] = ("ped-anova",),
                     seed: int = 0) -> pd.DataFrame:
    import optuna

    comparable, step, counted, excluded = comparable_study(study)
    trials = comparable.get_trials(deepcopy=False)
    objective = study.user_attrs.get("objective", "value")
    if len(trials) < 2 or not trials[0].params:
        return pd.DataFrame(columns=COLUMNS)
    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    best = max(complete or trials, key=lambda t: t.value)
    rows = []
    for name in evaluators:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            scores = optuna.importance.get_param_importances(
                comparable, evaluator=make_evaluator(name, seed), normalize=True)
        for param, score in scores.items():
            rows.append({"param": param, "importance": float(score), "evaluator": name,
                         "n_trials": len(trials), "objective": objective,
                         "best_value": _shown(best.params.get(param)),
                         "at_edge": edge(best.params.get(param), best.distributions.get(param)),
                         "n_pruned_excluded": excluded, "step": step,
                         "n_pruned_counted": counted})
    return pd.DataFrame(rows, columns=COLUMNS)


def few_trials_warning(frame: pd.DataFrame) -> str | None:
    """Why a ranking from few trials is not to be trusted, or None."""
    if frame.empty or int(frame["n_trials"].iloc[0]) >= MIN_TRIALS:
        return None
    return (f"Only {int(frame['n_trials'].iloc[0])} trials count (fewer than {MIN_TRIALS}): "
            f"with so few, one or two trials decide the ranking, so read it as a hint, not a "
            f"finding. Run more trials, or let fewer be pruned before fine-tuning "
            f"(pruner.min_finetune_epochs).")


def write_importance(study: optuna.Study, directory: Path,
                     evaluators: tuple[str, ...] = EVALUATORS) -> pd.DataFrame:
    frame = importance_frame(study, evaluators)
    write_parquet(frame, directory / IMPORTANCE, {**file_metadata(study), "treatment": TREATMENT})
    return frame
