"""The anchor recipe (``finalists.anchor``): read from the sweep file, enqueued once as the
study's first trial inside the search space, asked for by ``suggest`` as enqueued, and chosen as
a finalist with its own schedule. No TensorFlow."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import optuna
import pytest
from rich.console import Console

from tests.conftest import tiny_space, tiny_sweep, write_yaml
from tlsweep.config import anchor_params, load_sweep, suggest
from tlsweep.errors import ConfigError
from tlsweep.finalists import FinalStage, StageInputs
from tlsweep.store import ANCHOR, DEFAULT_START, anchor_recipe, checkpoint_folder, local_url
from tlsweep.store._parquet import leaderboard_frame
from tlsweep.store._storage import STORAGE_FILE
from tlsweep.sweep._study import (
    discard_new_study,
    enqueue_first_trial,
    join_study,
    trial_settings,
)


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
            anchor.augmentation_strength, anchor.class_weighting) == (0.3, 1e-5, 1e-4, 0.6, "auto")
    assert (anchor.head_epochs, anchor.finetune_epochs, anchor.total_epochs) == (1, 25, 26)
    shorter = load_sweep(sweep_with(tmp_path, "{anchor: {finetune_epochs: 8}}"))
    assert shorter.config.finalists.anchor.total_epochs == 9


@pytest.mark.parametrize("finalists, overrides, expected", [
    ("{anchor: {finetune_epochs: 0}}", {}, "finalists.anchor.finetune_epochs"),
    ("{anchor: {depth: 0.3}}", {}, "key 'finalists.anchor': unknown key 'depth'"),
    ("{anchor: true}", {"engine": "keras-tuner", "pruner": None},
     "'finalists.anchor' is enqueued as an Optuna trial"),
    ("{anchor: true, reevaluate: off}", {}, "set finalists.reevaluate to auto or on"),
])
def test_a_bad_anchor_names_its_key(tmp_path: Path, finalists: str,
                                    overrides: dict[str, str | None], expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_sweep(sweep_with(tmp_path, finalists, **overrides))
    assert expected in str(caught.value)


def first_trial(sweep_path: Path) -> tuple[optuna.Study, optuna.Trial]:
    sweep = load_sweep(sweep_path)
    study = optuna.create_study(direction="maximize")
    enqueue_first_trial(study, sweep)
    return study, study.ask()


def test_the_anchor_is_the_first_trial_with_its_values(tmp_path: Path) -> None:
    sweep_path = sweep_with(tmp_path, "{anchor: {head_lr: 3.0e-3, finetune_lr: 1.0e-3}}")
    study, trial = first_trial(sweep_path)
    params = suggest(trial, load_sweep(sweep_path).space)
    assert trial.number == 0
    assert trial.user_attrs[ANCHOR]["finetune_epochs"] == 25  # the recipe, schedule and all
    assert (params.unfreeze_depth, params.head_lr, params.finetune_lr,
            params.augmentation_strength, params.class_weighting) == (
        0.3, 3e-3, 1e-3, 0.3, "none")  # augmentation 0.6 clipped to the space's 0.3
    assert not study.get_trials(states=(optuna.trial.TrialState.WAITING,))
    assert ANCHOR not in study.ask().user_attrs  # the next trial is the sampler's


def test_the_anchor_stays_inside_the_space_and_leaves_what_it_fixes(tmp_path: Path) -> None:
    sweep = load_sweep(sweep_with(tmp_path, "{anchor: true}", space={
        "unfreeze_depth": "0.5", "class_weighting": "{choices: [sqrt, balanced]}"}))
    values = anchor_params(sweep.space, sweep.config.finalists.anchor, "val_accuracy")
    # head_lr 1e-5 clipped up to the range's low end; "none" is not allowed here, so the
    # first choice; the fixed depth is not asked for; augmentation 0.6 clipped to 0.3.
    assert values == {"backbone": "MobileNetV2", "head_lr": 1e-3, "finetune_lr": 1e-4,
                      "augmentation_strength": 0.3, "class_weighting": "sqrt"}


def test_the_anchor_weighs_classes_under_a_balanced_objective(tmp_path: Path) -> None:
    sweep = load_sweep(sweep_with(tmp_path, "{anchor: true}", space={
        "class_weighting": "{choices: [none, balanced, sqrt]}"}))
    anchor = sweep.config.finalists.anchor
    assert anchor.class_weighting == "auto"
    assert anchor_params(sweep.space, anchor, "val_balanced_accuracy")[
        "class_weighting"] == "balanced"
    assert anchor_params(sweep.space, anchor, "val_accuracy")["class_weighting"] == "none"
    fixed = anchor.model_copy(update={"class_weighting": "sqrt"})
    assert anchor_params(sweep.space, fixed, "val_balanced_accuracy")[
        "class_weighting"] == "sqrt"


def test_without_an_anchor_nothing_is_enqueued(tmp_path: Path) -> None:
    study, trial = first_trial(sweep_with(tmp_path, None))
    assert ANCHOR not in trial.user_attrs and len(study.trials) == 1


def test_start_from_default_queues_the_default_recipe_as_an_ordinary_first_trial(
        tmp_path: Path) -> None:
    sweep_path = sweep_with(tmp_path, None, sampler="{kind: tpe, start_from_default: true}")
    study, trial = first_trial(sweep_path)
    params = suggest(trial, load_sweep(sweep_path).space)
    assert trial.number == 0 and trial.user_attrs[DEFAULT_START] is True
    assert ANCHOR not in trial.user_attrs  # searched like any other: no finalist of its own
    assert (params.unfreeze_depth, params.head_lr, params.finetune_lr,
            params.augmentation_strength, params.class_weighting) == (
        0.3, 1e-3, 1e-4, 0.3, "none")  # AnchorConfig's values, clipped into the tiny space
    study.tell(trial, 0.5)
    frame = leaderboard_frame(study)
    assert frame.loc[0, "note"].startswith("the default recipe (sampler.start_from_default)")
    assert DEFAULT_START not in study.ask().user_attrs  # then the sampler's own


def test_start_from_default_is_off_by_default_and_yields_to_an_anchor(tmp_path: Path) -> None:
    assert not load_sweep(sweep_with(tmp_path, None)).config.sampler.start_from_default
    study, trial = first_trial(sweep_with(tmp_path, "{anchor: true}",
                                          sampler="{start_from_default: true}"))
    assert ANCHOR in trial.user_attrs and DEFAULT_START not in trial.user_attrs
    assert len(study.trials) == 1  # one recipe queued, not two


def test_a_study_that_already_has_trials_gets_no_default_recipe(tmp_path: Path) -> None:
    sweep = load_sweep(sweep_with(tmp_path, None, sampler="{start_from_default: true}"))
    study = optuna.create_study(direction="maximize")
    study.ask()  # a worker's trial, before another worker sets the study up
    enqueue_first_trial(study, sweep)
    assert not study.get_trials(states=(optuna.trial.TrialState.WAITING,))


def test_workers_that_set_up_one_study_queue_one_anchor(tmp_path: Path) -> None:
    sweep = load_sweep(sweep_with(tmp_path, "{anchor: true}"))
    url = local_url(tmp_path, workers=1)
    plan = SimpleNamespace(sweep=sweep, directory=tmp_path / "results")
    studies = [join_study(plan, url) for _ in range(2)]
    assert [anchor_recipe(t) is not None for t in studies[1].trials] == [True]
    assert "sweep_text" in studies[1].user_attrs


def test_a_new_study_holding_only_its_queued_anchor_is_discarded(tmp_path: Path) -> None:
    sweep = load_sweep(sweep_with(tmp_path, "{anchor: true}"))
    url = local_url(tmp_path, workers=1)
    study = optuna.create_study(study_name="tiny", storage=url)
    enqueue_first_trial(study, sweep)
    assert (tmp_path / STORAGE_FILE).is_file() and len(study.trials) == 1
    discard_new_study(study, url)  # as ``run`` does when the images then fail to load
    assert not (tmp_path / STORAGE_FILE).exists()


# ----------------------------------------------------------------------- the finalists' choice
def finished(study: optuna.Study, value: float, state: str = "COMPLETE",
             anchor: dict | None = None) -> None:
    params = {"backbone": "MobileNetV2", "unfreeze_depth": 0.3, "head_lr": 1e-3,
              "finetune_lr": 1e-4, "augmentation_strength": 0.1, "class_weighting": "none"}
    state_ = getattr(optuna.trial.TrialState, state)
    study.add_trial(optuna.trial.create_trial(
        state=state_, value=value if state == "COMPLETE" else None,
        intermediate_values={0: value - 0.1, 1: value},
        user_attrs={"params": params, "result": {"best_step": 1},
                    **({ANCHOR: anchor} if anchor else {})}))


def choose(tmp_path: Path, finalists: str, study: optuna.Study,
           reevaluate: bool = True) -> tuple[list, str]:
    sweep = load_sweep(sweep_with(tmp_path, finalists))
    stage = FinalStage(Console(record=True, width=200))
    plan = SimpleNamespace(sweep=sweep, directory=tmp_path / "results")
    inputs = StageInputs(sweep.config, None, 40, False, plan.directory,
                         checkpoint_folder(sweep.config, plan.directory),
                         lambda number: trial_settings(plan, number))
    return stage.choose_finalists(inputs, study, reevaluate), stage.console.export_text()


RECIPE = {"head_epochs": 1, "finetune_epochs": 25}


def test_the_anchor_joins_the_top_k_with_its_own_schedule(tmp_path: Path) -> None:
    study = optuna.create_study(direction="maximize")
    finished(study, 0.9, anchor=RECIPE)  # the best trial: the top k are the others
    for value in (0.5, 0.7, 0.6):
        finished(study, value)
    finalists, _ = choose(tmp_path, "{k: 2, anchor: true}", study)
    assert [(f.number, f.anchor, f.epochs) for f in finalists] == [
        (2, False, 2), (3, False, 2), (0, True, 26)]
    settings = finalists[-1].settings
    assert (settings.head_epochs, settings.finetune_epochs, settings.head_init,
            settings.augment_head) == (1, 25, "probe", False)
    assert finalists[0].settings.finetune_epochs == 2  # the search's, from the sweep file


def test_a_pruned_anchor_is_still_a_finalist_and_a_failed_one_is_named(tmp_path: Path) -> None:
    study = optuna.create_study(direction="maximize")
    finished(study, 0.4, state="PRUNED", anchor=RECIPE)
    finished(study, 0.7)
    finalists, _ = choose(tmp_path, "{k: 1, anchor: true}", study)
    assert [(f.number, f.anchor, f.value) for f in finalists] == [(1, False, 0.7),
                                                                  (0, True, 0.4)]
    failed = optuna.create_study(direction="maximize")
    finished(failed, 0.4, state="FAIL", anchor=RECIPE)
    finished(failed, 0.7)
    finalists, said = choose(tmp_path, "{k: 1, anchor: true}", failed)
    assert [f.number for f in finalists] == [1] and "no finished trial ran the anchor" in said


def test_without_cross_validation_the_anchor_competes_as_trained(tmp_path: Path) -> None:
    study = optuna.create_study(direction="maximize")
    finished(study, 0.9, anchor=RECIPE)
    finished(study, 0.7)
    finalists, said = choose(tmp_path, "{k: 1, anchor: true}", study, reevaluate=False)
    assert [(f.number, f.anchor, f.epochs) for f in finalists] == [(0, False, 2)]
    assert "trial 0 competes as the search trained it" in " ".join(said.split())
