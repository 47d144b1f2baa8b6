"""Create and run a study: sampler, pruner and storage from the sweep file.

Everything that can be checked is checked before the storage is touched (``prepare``), so bad input
never leaves a half-made study behind.
"""

from __future__ import annotations

import os
import socket
import time
import traceback
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import optuna

from tlsweep import __version__
from tlsweep.backbones import Backbone, resolve
from tlsweep.config import PrunerConfig, SamplerConfig, Sweep
from tlsweep.data import Dataset, Skipped, load_dataset
from tlsweep.errors import StudyExists
from tlsweep.results import write_results
from tlsweep.space import TrialParams, suggest
from tlsweep.trial import EpochRecord, TrialResult, TrialSettings

STORAGE_FILE = "study.db"


def results_root() -> Path:
    return Path(os.environ.get("TLSWEEP_RESULTS", "results"))


def study_dir(study: str, root: Path | None = None) -> Path:
    return (root or results_root()) / study


def sqlite_url(directory: Path) -> str:
    return f"sqlite:///{(directory / STORAGE_FILE).resolve()}"


class Listener(Protocol):
    """What a live view learns about the sweep as it runs."""

    def trial_started(self, number: int, params: TrialParams) -> None: ...
    def epoch_started(self, phase: str, step: int, total_steps: int) -> None: ...
    def epoch_finished(self, record: EpochRecord) -> None: ...
    def trial_finished(self, trial: optuna.trial.FrozenTrial, study: optuna.Study) -> None: ...


@dataclass
class Plan:
    """A sweep checked end to end: backbones resolved and the data decoded."""

    sweep: Sweep
    backbones: dict[str, Backbone]
    dataset: Dataset
    directory: Path

    @property
    def skipped(self) -> list[Skipped]:
        return self.dataset.skipped


def prepare(sweep: Sweep, root: Path | None = None) -> Plan:
    config = sweep.config
    where = f"{config.search_space}: backbone.choices"
    backbones = {
        name: resolve(name, choice, config.data.image_size, f"{where}.{name}")
        for name, choice in sweep.space.backbone_choices().items()
    }
    dataset = load_dataset(config.data, config.seed, sweep.path)
    return Plan(sweep, backbones, dataset, study_dir(config.study, root))


# ----------------------------------------------------------------------------- Optuna pieces
def make_sampler(config: SamplerConfig, seed: int) -> optuna.samplers.BaseSampler:
    if config.kind == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=config.n_startup_trials)


def make_pruner(config: PrunerConfig, max_steps: int) -> optuna.pruners.BasePruner:
    if config.kind == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=config.n_startup_trials,
                                           n_warmup_steps=config.n_warmup_steps)
    if config.kind == "successive_halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=config.min_resource,
                                                      reduction_factor=config.reduction_factor)
    if config.kind == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=config.min_resource,
                                              max_resource=max_steps,
                                              reduction_factor=config.reduction_factor)
    return optuna.pruners.NopPruner()


def study_exists(name: str, storage: str) -> bool:
    try:
        return name in optuna.get_all_study_names(storage)
    except Exception:
        return False


def refuse_existing(sweep: Sweep, directory: Path) -> None:
    """``run`` never reloads a study silently: an existing one is continued with ``resume``."""
    name = sweep.config.study
    if (directory / STORAGE_FILE).exists() and study_exists(name, sqlite_url(directory)):
        raise StudyExists(
            f"{sweep.path}: study: {name!r} already exists in {directory}. Continue it with "
            f"`tlsweep resume {name}`, or change the study name.")


def create_study(plan: Plan) -> optuna.Study:
    config = plan.sweep.config
    storage = sqlite_url(plan.directory)
    refuse_existing(plan.sweep, plan.directory)
    plan.directory.mkdir(parents=True, exist_ok=True)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    max_steps = config.training.head_epochs + config.training.finetune_epochs
    study = optuna.create_study(
        study_name=config.study, storage=storage, direction="maximize",
        sampler=make_sampler(config.sampler, config.seed),
        pruner=make_pruner(config.pruner, max_steps))
    attrs = {"sweep_path": str(plan.sweep.path), "sweep_text": plan.sweep.text,
             "space_text": plan.sweep.space_text, "sweep_sha256": plan.sweep.sha256,
             "budget_trials": config.budget.trials, "objective": config.objective,
             "tlsweep_version": __version__, "class_names": plan.dataset.class_names}
    for key, value in attrs.items():
        study.set_user_attr(key, value)
    return study


# ----------------------------------------------------------------------------- objective
class OptunaReporter:
    """Reports each epoch on its global step, keeps the curve in storage, and prunes."""

    def __init__(self, trial: optuna.Trial, listener: Listener) -> None:
        self.trial, self.listener = trial, listener
        self.curve: list[dict[str, Any]] = []

    def epoch_started(self, phase: str, step: int, total_steps: int) -> None:
        self.listener.epoch_started(phase, step, total_steps)

    def epoch_finished(self, record: EpochRecord) -> None:
        self.curve.append(record.as_dict())
        self.trial.set_user_attr("curve", self.curve)
        objective = self.trial.study.user_attrs.get("objective", "val_accuracy")
        self.trial.report(float(getattr(record, objective)), record.step)
        self.listener.epoch_finished(record)
        if self.trial.should_prune():
            self.trial.set_user_attr("pruned_at", record.step)
            raise optuna.TrialPruned(f"pruned at step {record.step}")


def _record_result(trial: optuna.Trial, result: TrialResult) -> None:
    trial.set_user_attr("result", {
        "best_step": result.best_step, "best_phase": result.best_phase,
        "val_accuracy": result.val_accuracy,
        "val_balanced_accuracy": result.val_balanced_accuracy,
        "train_accuracy": result.train_accuracy, "gap": result.gap,
        "epochs_run": result.epochs_run, "confusion": result.confusion})


def make_objective(plan: Plan, listener: Listener):
    from tlsweep.trial import run_trial  # imports Keras lazily, only once trials run

    config = plan.sweep.config
    worker = f"{socket.gethostname()}:{os.getpid()}"

    def objective(trial: optuna.Trial) -> float:
        params = suggest(trial, plan.sweep.space)
        trial.set_user_attr("params", params.as_dict())
        trial.set_user_attr("worker", worker)
        trial.set_user_attr("started_at", datetime.now(UTC).isoformat(timespec="seconds"))
        listener.trial_started(trial.number, params)
        settings = TrialSettings(
            image_size=config.data.image_size, head_epochs=config.training.head_epochs,
            finetune_epochs=config.training.finetune_epochs,
            batch_size=config.training.batch_size, dropout=config.training.dropout,
            objective=config.objective, seed=config.seed + trial.number)
        started = time.perf_counter()
        try:
            result = run_trial(params, plan.backbones[params.backbone], plan.dataset, settings,
                               OptunaReporter(trial, listener))
        except optuna.TrialPruned:
            raise
        except Exception as exc:
            trial.set_user_attr("error", f"{type(exc).__name__}: {exc}"[:2000])
            trial.set_user_attr("traceback", traceback.format_exc()[-4000:])
            raise
        finally:
            trial.set_user_attr("duration_s", time.perf_counter() - started)
        _record_result(trial, result)
        return result.value

    return objective


def run_study(plan: Plan, study: optuna.Study, listener: Listener) -> optuna.Study:
    budget = plan.sweep.config.budget

    def after_trial(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        write_results(study, plan.directory)
        listener.trial_finished(trial, study)

    study.optimize(make_objective(plan, listener), n_trials=budget.trials,
                   timeout=budget.timeout, callbacks=[after_trial], catch=(Exception,),
                   gc_after_trial=True)
    write_results(study, plan.directory)
    return study
