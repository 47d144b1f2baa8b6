"""The search space: its six hyperparameters, their ranges as the space file gives them, and
Optuna's suggestions from them (the only caller of ``trial.suggest_*``).

A fixed value is not suggested (Optuna's samplers gain nothing from a constant), but it is still
part of the returned parameters, so every trial carries all six settings.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, get_args

from pydantic import (
    AfterValidator,
    Discriminator,
    Field,
    Tag,
    ValidationInfo,
    field_validator,
    model_validator,
)

from tlsweep.config._base import (
    FIXED,
    RANGE,
    ResolvedPath,
    Strict,
    read_yaml,
    resolve_path,
    validate,
)
from tlsweep.system import Record

if TYPE_CHECKING:
    import optuna

Weighting = Literal["none", "balanced", "sqrt"]


class FloatRange(Strict, use_attribute_docstrings=True):
    """A searched range of numbers, ends included."""

    low: float
    """The range's lower end."""
    high: float
    """The range's upper end; equal to ``low``, the value is fixed."""
    log: bool = False
    """Sample on a log scale, as suits learning rates; needs ``low`` > 0."""

    @model_validator(mode="after")
    def _check_order(self) -> FloatRange:
        if self.low > self.high:
            raise ValueError(f"low ({self.low}) must not exceed high ({self.high})")
        if self.log and self.low <= 0:
            raise ValueError(f"a log range needs low > 0 (got low={self.low})")
        return self


def _by_shape(value: Any) -> str:
    """A mapping is a searched range or choice; anything else is a fixed value."""
    return RANGE if isinstance(value, dict) else FIXED


FloatParam = Annotated[
    Annotated[float, Tag(FIXED)] | Annotated[FloatRange, Tag(RANGE)],
    Discriminator(_by_shape),
]


class WeightingChoices(Strict, use_attribute_docstrings=True):
    choices: list[Weighting] = Field(min_length=1)
    """The class weightings to choose from."""


WeightingParam = Annotated[
    Annotated[Weighting, Tag(FIXED)]
    | Annotated[WeightingChoices, Tag(RANGE)],
    Discriminator(_by_shape),
]


class BackboneChoice(Strict, use_attribute_docstrings=True):
    """One candidate backbone: a registered one by its name, or a custom one (``model``)."""

    weights: str = "imagenet"
    """``imagenet`` (from the Keras cache or the network), ``none`` (trained from scratch), or
    the path of a ``.weights.h5`` file."""
    model: ResolvedPath | None = None
    """A whole ``.keras`` feature extractor (no head), which makes this a custom backbone: it
    carries its own weights and must declare ``preprocessing``. Null: a registered backbone."""
    preprocessing: str | None = None
    """How pixels are scaled: ``unit`` (x/255), ``symmetric`` (x/127.5-1), ``none``, or the
    name of a registered backbone whose preprocessing it shares. Null: the registered
    backbone's own."""
    min_size: int | None = Field(default=None, ge=1)
    """Smallest image side in pixels the backbone accepts (a registered one's own minimum
    stands if larger); ``data.image_size`` below it is an error. Null: the backbone's own."""

    @field_validator("weights")
    @classmethod
    def _resolve_weights(cls, value: str, info: ValidationInfo) -> str:
        if value in ("imagenet", "none"):
            return value
        return str(resolve_path(Path(value), info))


class BackboneChoices(Strict, use_attribute_docstrings=True):
    choices: dict[str, BackboneChoice] = Field(min_length=1)
    """The backbones to choose from, by name: a registered backbone's name, or any name for a
    custom ``model``."""


BackboneParam = Annotated[
    Annotated[str, Tag(FIXED)] | Annotated[BackboneChoices, Tag(RANGE)],
    Discriminator(_by_shape),
]


def _within(low: float, high: float, name: str):
    def check(value: float | FloatRange) -> float | FloatRange:
        lo, hi = (value.low, value.high) if isinstance(value, FloatRange) else (value, value)
        if lo < low or hi > high:
            raise ValueError(f"{name} must lie within [{low}, {high}]")
        return value

    return AfterValidator(check)


def _positive(value: float | FloatRange) -> float | FloatRange:
    lo = value.low if isinstance(value, FloatRange) else value
    if lo <= 0:
        raise ValueError("a learning rate must be > 0")
    return value


class SearchSpace(Strict, use_attribute_docstrings=True):
    """A mapping is a range or a choice; a plain value is fixed."""

    backbone: BackboneParam
    """A registered backbone's name, with ``imagenet`` weights (fixed), or ``choices``: the
    backbones to search among, registered or custom, each with its settings."""
    unfreeze_depth: Annotated[FloatParam, _within(0.0, 1.0, "unfreeze_depth")] = FloatRange(
        low=0.0, high=0.6
    )
    """Fraction of the backbone's layers unfrozen from the top for phase 2 (fine-tuning),
    rounded to whole blocks: 0 to 1."""
    head_lr: Annotated[FloatParam, AfterValidator(_positive)] = FloatRange(
        low=1e-4, high=1e-2, log=True
    )
    """Learning rate of phase 1, the head: above 0."""
    finetune_lr: Annotated[FloatParam, AfterValidator(_positive)] = FloatRange(
        low=1e-6, high=1e-4, log=True
    )
    """Learning rate of phase 2, fine-tuning: above 0."""
    augmentation_strength: Annotated[
        FloatParam, _within(0.0, 1.0, "augmentation_strength")
    ] = FloatRange(low=0.0, high=1.0)
    """Strength of the training images' augmentation (flip, rotation, zoom, translation,
    contrast, scaled together): 0 (none) to 1."""
    class_weighting: WeightingParam = WeightingChoices(choices=list(get_args(Weighting)))
    """Class weights in the loss: ``none``, ``balanced`` (n / (k·n_c): n images, k classes, n_c
    of class c) or ``sqrt`` (its square root); one, or ``choices`` among them."""

    def backbone_choices(self) -> dict[str, BackboneChoice]:
        if isinstance(self.backbone, str):
            return {self.backbone: BackboneChoice()}
        return dict(self.backbone.choices)



def load_space(path: Path, text: str | None = None) -> tuple[SearchSpace, str]:
    replay = text is not None
    data, text = read_yaml(path, "search-space file", text)
    return validate(SearchSpace, data, path, replay), text


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


def anchor_params(space: SearchSpace, anchor: Any, objective: str) -> dict[str, Any]:
    """The values to enqueue for the anchor recipe (``FinalistsConfig.anchor``), as ``suggest``
    will ask for them: the space's first backbone, each range's value clipped into the range,
    its class weighting under ``objective`` (``AnchorConfig.weighting_for``) if the space
    allows it, else the space's first. A setting the space
    fixes is not asked for, so the trial gets the space's value; the trial's row shows them."""
    values: dict[str, Any] = {"backbone": next(iter(space.backbone_choices()))}
    for name in NUMERIC_PARAMS:
        param = getattr(space, name)
        if isinstance(param, FloatRange):
            values[name] = min(max(float(getattr(anchor, name)), param.low), param.high)
    weighting = space.class_weighting
    if isinstance(weighting, WeightingChoices):
        wanted = anchor.weighting_for(objective)
        values["class_weighting"] = wanted if wanted in weighting.choices else \
            weighting.choices[0]
    return values
