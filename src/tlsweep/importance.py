"""Hyperparameter importance with Optuna's evaluators, written to ``importance.parquet``.

Which trials count: only COMPLETE ones. A pruned trial's value is a partial one (it stopped
early, mostly in the head phase), and mixing partial with final values would credit whatever
the pruner keyed on. Fixed parameters have no importance and are left out. Categorical parameters
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

from tlsweep.results import file_metadata, write_parquet

if TYPE_CHECKING:
    import optuna

IMPORTANCE = "importance.parquet"
EVALUATORS = ("ped-anova", "fanova", "mdi")
COLUMNS = ["param", "importance", "evaluator", "n_trials", "objective", "best_value",
           "at_edge", "n_pruned_excluded"]
TREATMENT = ("Only complete trials count; pruned trials are left out because their values are "
             "partial. Fixed parameters are not listed.")
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


def importance_frame(study: optuna.Study, evaluators: tuple[str, ...] = ("ped-anova",),
                     seed: int = 0) -> pd.DataFrame:
    import optuna

    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    pruned = len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.PRUNED,)))
    objective = study.user_attrs.get("objective", "value")
    if len(complete) < 2 or not complete[0].params:
        return pd.DataFrame(columns=COLUMNS)
    best = max(complete, key=lambda t: t.value)
    rows = []
    for name in evaluators:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            scores = optuna.importance.get_param_importances(
                study, evaluator=make_evaluator(name, seed), normalize=True)
        for param, score in scores.items():
            rows.append({"param": param, "importance": float(score), "evaluator": name,
                         "n_trials": len(complete), "objective": objective,
                         "best_value": _shown(best.params.get(param)),
                         "at_edge": edge(best.params.get(param), best.distributions.get(param)),
                         "n_pruned_excluded": pruned})
    return pd.DataFrame(rows, columns=COLUMNS)


def write_importance(study: optuna.Study, directory: Path,
                     evaluators: tuple[str, ...] = EVALUATORS) -> pd.DataFrame:
    frame = importance_frame(study, evaluators)
    write_parquet(frame, directory / IMPORTANCE, {**file_metadata(study), "treatment": TREATMENT})
    return frame
