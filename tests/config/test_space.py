"""The search space: the one list of six hyperparameters, and what ``suggest`` asks Optuna."""

from __future__ import annotations

import dataclasses

import optuna

from tlsweep.config import NUMERIC_PARAMS, PARAM_NAMES, TrialParams, suggest
from tlsweep.config._space import SearchSpace


def test_the_six_hyperparameters_are_read_off_trial_params() -> None:
    assert tuple(f.name for f in dataclasses.fields(TrialParams)) == PARAM_NAMES
    assert len(PARAM_NAMES) == 6
    assert set(NUMERIC_PARAMS) == set(PARAM_NAMES) - {"backbone", "class_weighting"}


def test_fixed_values_are_carried_but_not_suggested() -> None:
    space = SearchSpace.model_validate({
        "backbone": "MobileNetV2", "unfreeze_depth": 0.25,
        "head_lr": {"low": 1e-4, "high": 1e-2, "log": True}, "finetune_lr": 1e-5,
        "augmentation_strength": {"low": 0.0, "high": 0.5}, "class_weighting": "none"})
    trial = optuna.create_study().ask()
    params = suggest(trial, space)
    assert set(trial.params) == {"head_lr", "augmentation_strength"}
    assert params.unfreeze_depth == 0.25 and params.finetune_lr == 1e-5
    assert set(params.as_dict()) == set(PARAM_NAMES)
