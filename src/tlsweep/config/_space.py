"""Search space -> Optuna suggestions. The only caller of ``trial.suggest_*``.

A fixed value is not suggested (Optuna's samplers gain nothing from a constant), but it is still
part of the returned parameters, so every trial carries all six settings.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import TYPE_CHECKING

from tlsweep.config._schema import FloatRange, SearchSpace, WeightingChoices
from tlsweep.system import Record

if TYPE_CHECKING:
    import optuna

@dataclass(frozen=True)
class TrialParams(Record):
    backbone: str
    unfreeze_depth: float
    head_lr: float
    finetune_lr: float
    augmentation_strength: float
    class_weighting: str



# The six searched settings, in the order tables show them: the one list, read off TrialParams.
PARAM_NAMES = tuple(f.name for f in fields(TrialParams))
NUMERIC_PARAMS = tuple(f.name for f in fields(TrialParams) if f.type in (float, "float"))


def _float(trial: optuna.Trial, name: str, param: float | FloatRange) -> float:
    if isinstance(param, FloatRange):
        if param.low == param.high:
            return param.low
        return trial.suggest_float(name, param.low, param.high, log=param.log)
    return float(param)


def _choice(trial: optuna.Trial, name: str, choices: list[str]) -> str:
    return choices[0] if len(choices) == 1 else trial.suggest_categorical(name, choices)


def suggest(trial: optuna.Trial, space: SearchSpace) -> TrialParams:
    weighting = space.class_weighting
    weighting_choices = (
        list(weighting.choices) if isinstance(weighting, WeightingChoices) else [weighting]
    )
    return TrialParams(
        backbone=_choice(trial, "backbone", list(space.backbone_choices())),
        unfreeze_depth=_float(trial, "unfreeze_depth", space.unfreeze_depth),
        head_lr=_float(trial, "head_lr", space.head_lr),
        finetune_lr=_float(trial, "finetune_lr", space.finetune_lr),
        augmentation_strength=_float(trial, "augmentation_strength", space.augmentation_strength),
        class_weighting=_choice(trial, "class_weighting", weighting_choices),
    )
