"""The anchor recipe (``finalists.anchor``): read from the sweep file, enqueued as the study's
first trial inside the search space, and asked for by ``suggest`` as enqueued. No TensorFlow."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from tests.conftest import tiny_space, tiny_sweep, write_yaml
from tlsweep.config import load_sweep, suggest
from tlsweep.errors import ConfigError
from tlsweep.sweep._study import ANCHOR, enqueue_anchor


def sweep_with(tmp_path: Path, finalists: str | None, space: dict[str, str] | None = None,
               **overrides: str | None) -> Path:
    space_file = write_yaml(tmp_path / "space.yaml", tiny_space(None, **(space or {})))
    return write_yaml(tmp_path / "sweep.yaml", tiny_sweep(tmp_path / "data", space_file,
                                                          finalists=finalists, **overrides))


def test_anchor_is_off_unless_asked_and_true_gives_the_measured_recipe(tmp_path: Path) -> None:
    assert load_sweep(sweep_with(tmp_path, None)).config.finalists.anchor is None
    assert load_sweep(sweep_with(tmp_path, "{anchor: false}")).config.finalists.anchor is None
    anchor = load_sweep(sweep_with(tmp_path, "{anchor: true}")).config.finalists.anchor
    assert anchor is not None
    assert (anchor.unfreeze_depth, anchor.head_lr, anchor.finetune_lr,
            anchor.augmentation_strength, anchor.class_weighting) == (0.3, 1e-5, 1e-4, 0.6, "none")
    assert (anchor.head_epochs, anchor.finetune_epochs, anchor.total_epochs) == (1, 25, 26)
    shorter = load_sweep(sweep_with(tmp_path, "{anchor: {finetune_epochs: 8}}"))
    assert shorter.config.finalists.anchor.total_epochs == 9


@pytest.mark.parametrize("finalists, overrides, expected", [
    ("{anchor: {finetune_epochs: 0}}", {}, "finalists.anchor.finetune_epochs"),
    ("{anchor: {depth: 0.3}}", {}, "key 'finalists.anchor': unknown key 'depth'"),
    ("{anchor: true}", {"engine": "keras-tuner", "pruner": None},
     "'finalists.anchor' is enqueued as an Optuna trial"),
])
def test_a_bad_anchor_names_its_key(tmp_path: Path, finalists: str,
                                    overrides: dict[str, str | None], expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_sweep(sweep_with(tmp_path, finalists, **overrides))
    assert expected in str(caught.value)


def first_trial(sweep_path: Path) -> tuple[optuna.Study, optuna.Trial]:
    sweep = load_sweep(sweep_path)
    study = optuna.create_study(direction="maximize")
    enqueue_anchor(study, sweep)
    return study, study.ask()


def test_the_anchor_is_the_first_trial_with_its_values(tmp_path: Path) -> None:
    sweep_path = sweep_with(tmp_path, "{anchor: {head_lr: 3.0e-3, finetune_lr: 1.0e-3}}")
    study, trial = first_trial(sweep_path)
    params = suggest(trial, load_sweep(sweep_path).space)
    assert trial.number == 0 and trial.user_attrs[ANCHOR] is True
    assert (params.unfreeze_depth, params.head_lr, params.finetune_lr,
            params.augmentation_strength, params.class_weighting) == (
        0.3, 3e-3, 1e-3, 0.3, "none")  # augmentation 0.6 clipped to the space's 0.3
    assert not study.get_trials(states=(optuna.trial.TrialState.WAITING,))
    assert "anchor" not in study.ask().user_attrs  # the next trial is the sampler's


def test_the_anchor_stays_inside_the_space_and_takes_what_it_fixes(tmp_path: Path) -> None:
    sweep_path = sweep_with(tmp_path, "{anchor: true}", space={
        "unfreeze_depth": "0.5", "class_weighting": "{choices: [balanced, sqrt]}"})
    _, trial = first_trial(sweep_path)
    params = suggest(trial, load_sweep(sweep_path).space)
    assert params.unfreeze_depth == 0.5  # fixed by the space
    assert params.head_lr == 1e-3  # 1e-5 clipped up to the range's low end
    assert params.class_weighting in ("balanced", "sqrt")  # "none" is not allowed here


def test_without_an_anchor_nothing_is_enqueued(tmp_path: Path) -> None:
    study, trial = first_trial(sweep_with(tmp_path, None))
    assert ANCHOR not in trial.user_attrs and len(study.trials) == 1
