"""No trial is pruned before the rule allows (pruner.min_finetune_epochs). No TensorFlow: the
orchestrator's side of a trial, fed epochs as a worker reports them."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from tlsweep.sweep._runner import Interrupts, TrialSession
from tlsweep.training.protocol import EpochAnswer, EpochFinished


class AlwaysPrune(optuna.pruners.BasePruner):
    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        return True


class Quiet:
    def trial_started(self, *args: object) -> None: ...
    def epoch_started(self, *args: object) -> None: ...
    def epoch_finished(self, *args: object) -> None: ...
    def trial_finished(self, *args: object) -> None: ...


def record(step: int, head_epochs: int) -> dict[str, object]:
    phase = "head" if step < head_epochs else "finetune"
    return {"phase": phase, "epoch": step if phase == "head" else step - head_epochs,
            "step": step, "loss": 1.0, "accuracy": 0.5, "val_loss": 1.0, "val_accuracy": 0.5,
            "val_balanced_accuracy": 0.5, "lr": 1e-3, "duration_s": 0.1}


@pytest.mark.parametrize("first_prunable,expected", [(0, 0), (4, 4), (6, 6)])
def test_the_pruner_is_not_asked_before_the_first_prunable_step(
        tmp_path: Path, first_prunable: int, expected: int) -> None:
    study = optuna.create_study(direction="maximize", pruner=AlwaysPrune())
    trial = study.ask()
    session = TrialSession(study, trial, Quiet(), Interrupts(), tmp_path / "trial")
    session.first_prunable = first_prunable
    answers = []
    for step in range(8):  # as a worker does: it stops at the first PRUNE
        answers.append(session.handle(EpochFinished(record(step, head_epochs=4))))
        if answers[-1] is EpochAnswer.PRUNE:
            break
    assert answers == [EpochAnswer.CONTINUE] * expected + [EpochAnswer.PRUNE]
    assert trial.user_attrs["pruned_at"] == expected


def test_min_finetune_epochs_sets_the_first_prunable_step(tmp_path: Path) -> None:
    from tests.conftest import tiny_space, tiny_sweep, write_class_images, write_yaml
    from tlsweep.config import load_sweep
    from tlsweep.sweep import check
    from tlsweep.sweep._runner import first_prunable_step

    data = write_class_images(tmp_path / "data", {"a": 4, "b": 4})
    space = write_yaml(tmp_path / "space.yaml", tiny_space(
        None, backbone="{choices: {MobileNetV2: {weights: none}}}"))
    for wait, expected in ((0, 0), (1, 3), (2, 4)):
        sweep = write_yaml(tmp_path / "sweep.yaml", tiny_sweep(
            data, space, data=f"{{dir: {data}, val_split: 0.5, image_size: 32}}",
            training="{head_epochs: 3, finetune_epochs: 4}",
            pruner=f"{{kind: median, min_finetune_epochs: {wait}}}"))
        assert first_prunable_step(check(load_sweep(sweep), tmp_path)) == expected


def test_patience_wraps_the_pruner_in_optunas_patient_pruner() -> None:
    """A trial whose own best is recent is kept, however poor beside the others."""
    from tlsweep.config import PrunerConfig
    from tlsweep.sweep._study import make_pruner

    pruner = make_pruner(PrunerConfig(kind="median", patience=2, n_startup_trials=0,
                                      n_warmup_steps=0), 6)
    assert isinstance(pruner, optuna.pruners.PatientPruner)
    study = optuna.create_study(direction="maximize", pruner=pruner)
    for _ in range(3):  # good trials: 0.9 at every step
        trial = study.ask()
        for step in range(6):
            trial.report(0.9, step)
        study.tell(trial, 0.9)
    poor = study.ask()
    decisions = []
    for step, value in enumerate([0.1, 0.4, 0.3, 0.3, 0.3, 0.3]):
        poor.report(value, step)
        decisions.append(poor.should_prune())
    # Optuna asks the median pruner only once the last patience + 1 = 3 steps all fall below
    # the trial's best before them (0.4 at step 1): from step 4 on.
    assert decisions == [False] * 4 + [True, True]
    plain = make_pruner(PrunerConfig(kind="median", n_startup_trials=0, n_warmup_steps=0), 6)
    assert not isinstance(plain, optuna.pruners.PatientPruner)
