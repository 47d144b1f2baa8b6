"""Importance is honest: it finds the one parameter that matters. No TensorFlow needed."""

from __future__ import annotations

import math
from pathlib import Path

import optuna
import pandas as pd
import pytest

from tests.conftest import tiny_space, write_yaml
from tlsweep.config import suggest
from tlsweep.config._space import load_space
from tlsweep.inspection import EVALUATORS, write_importance
from tlsweep.inspection._importance import COLUMNS, edge, importance_frame


def study_of(objective, tmp_path: Path, trials: int = 60) -> optuna.Study:
    space, _ = load_space(write_yaml(tmp_path / "space.yaml", tiny_space(
        None, backbone="{choices: {A: {weights: none}, B: {weights: none}}}")))
    study = optuna.create_study(direction="maximize",
                                sampler=optuna.samplers.RandomSampler(seed=1))
    study.set_user_attr("objective", "val_accuracy")
    study.optimize(lambda trial: objective(suggest(trial, space)), n_trials=trials)
    return study


@pytest.mark.parametrize("evaluator", EVALUATORS)
def test_a_continuous_parameter_that_alone_matters_ranks_first(tmp_path: Path,
                                                               evaluator: str) -> None:
    # Peaks at head_lr = 1e-2: only head_lr moves the value.
    study = study_of(lambda p: 1.0 - abs(math.log10(p.head_lr) + 2.0), tmp_path)
    frame = importance_frame(study, (evaluator,))
    top = frame.sort_values("importance", ascending=False).iloc[0]
    assert top["param"] == "head_lr" and top["importance"] >= 0.5, frame
    assert frame["importance"].sum() == pytest.approx(1.0)


@pytest.mark.parametrize("evaluator", EVALUATORS)
def test_a_categorical_parameter_that_alone_matters_ranks_first(tmp_path: Path,
                                                                evaluator: str) -> None:
    scores = {"none": 0.5, "balanced": 0.9, "sqrt": 0.7}
    study = study_of(lambda p: scores[p.class_weighting], tmp_path)
    frame = importance_frame(study, (evaluator,))
    top = frame.sort_values("importance", ascending=False).iloc[0]
    assert top["param"] == "class_weighting" and top["importance"] >= 0.5, frame


def test_pruned_trials_are_excluded_and_said_so(tmp_path: Path) -> None:
    study = study_of(lambda p: p.head_lr, tmp_path, trials=20)
    study.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.PRUNED,
                                              params={}, distributions={}))
    frame = write_importance(study, tmp_path)
    assert list(frame.columns) == COLUMNS
    assert set(frame["n_trials"]) == {20} and set(frame["n_pruned_excluded"]) == {1}
    stored = pd.read_parquet(tmp_path / "importance.parquet")
    assert set(stored["evaluator"]) == set(EVALUATORS) and len(stored) == 3 * 6


def test_edge_detection() -> None:
    from optuna.distributions import CategoricalDistribution, FloatDistribution

    log_range = FloatDistribution(1e-4, 1e-2, log=True)
    assert edge(1.1e-4, log_range) == "low" and edge(9e-3, log_range) == "high"
    assert edge(1e-3, log_range) is None
    assert edge("sqrt", CategoricalDistribution(["none", "sqrt"])) is None


def test_pruned_trials_count_at_a_step_they_all_reached(tmp_path: Path) -> None:
    """Ten trials pruned at step 3 of 6 and four complete: importance rests on all fourteen,
    each by its best value up to step 3, and finds the parameter that alone matters there."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution

    study = optuna.create_study(direction="maximize")
    study.set_user_attr("objective", "val_accuracy")
    distributions = {"head_lr": FloatDistribution(1e-4, 1e-1, log=True),
                     "class_weighting": CategoricalDistribution(["none", "sqrt"])}
    for index in range(14):
        head_lr = 10 ** (-4 + 3 * index / 13)
        params = {"head_lr": head_lr, "class_weighting": ["none", "sqrt"][index % 2]}
        curve = {step: 0.5 + 0.1 * math.log10(head_lr) + 0.01 * step for step in range(6)}
        pruned = index < 10
        steps = {s: v for s, v in curve.items() if s <= 3} if pruned else curve
        study.add_trial(optuna.trial.create_trial(
            state=optuna.trial.TrialState.PRUNED if pruned else optuna.trial.TrialState.COMPLETE,
            params=params, distributions=distributions, intermediate_values=steps,
            value=None if pruned else max(curve.values())))
    frame = importance_frame(study, ("ped-anova",))
    assert set(frame["n_trials"]) == {14} and set(frame["n_pruned_counted"]) == {10}
    assert set(frame["step"]) == {3} and set(frame["n_pruned_excluded"]) == {0}
    top = frame.sort_values("importance", ascending=False).iloc[0]
    assert top["param"] == "head_lr"


def test_a_ranking_from_few_trials_carries_its_warning(tmp_path: Path) -> None:
    from tlsweep.inspection import few_trials_warning

    few = importance_frame(study_of(lambda p: p.head_lr, tmp_path, trials=6), ("ped-anova",))
    assert "Only 6 trials count" in few_trials_warning(few)
    many = importance_frame(study_of(lambda p: p.head_lr, tmp_path, trials=20), ("ped-anova",))
    assert few_trials_warning(many) is None
