"""Importance is honest: it finds the one parameter that matters. No TensorFlow needed."""

from __future__ import annotations

import math
from pathlib import Path

import optuna
import pandas as pd
import pytest

from tests.conftest import tiny_space, write_yaml
from tlsweep.config import load_space
from tlsweep.importance import COLUMNS, EVALUATORS, edge, importance_frame, write_importance
from tlsweep.space import suggest


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
