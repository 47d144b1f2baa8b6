"""Create and run a study: sampler, pruner and storage from the sweep file.

Everything that can be checked is checked before the storage is touched (``prepare``), so bad input
never leaves a half-made study behind.
"""

from __future__ import annotations

import contextlib
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import optuna
from optuna.trial import TrialState

from tlsweep import __version__
from tlsweep.backbones import Backbone, resolve
from tlsweep.config import PrunerConfig, SamplerConfig, Sweep, changed_keys, load_sweep
from tlsweep.data import Dataset, Skipped, check_layout, load_dataset
from tlsweep.errors import ConfigError, StudyExists
from tlsweep.paths import STORAGE_FILE, sqlite_url, study_dir
from tlsweep.space import TrialParams

if TYPE_CHECKING:
    from tlsweep.trial import EpochRecord

# We record heartbeats ourselves (the worker runs the trial, not Study.optimize), and the retry
# and stale-trial helpers we rely on are stable in practice despite their "experimental" tag.
warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used")
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
Retry = optuna.storages.RetryHeartbeatStaleTrialCallback


class Listener(Protocol):
    """What a live view learns about the sweep as it runs."""

    def trial_started(self, number: int, params: TrialParams) -> None: ...
    def epoch_started(self, phase: str, step: int, total_steps: int) -> None: ...
    def epoch_finished(self, record: EpochRecord) -> None: ...
    def trial_finished(self, trial: optuna.trial.FrozenTrial, study: optuna.Study) -> None: ...


@dataclass
class Plan:
    """A checked sweep: backbones resolved, data folders checked, then the data decoded."""

    sweep: Sweep
    backbones: dict[str, Backbone]
    directory: Path
    data: Dataset | None = None

    @property
    def dataset(self) -> Dataset:
        if self.data is None:
            self.load_data()
        assert self.data is not None
        return self.data

    def load_data(self) -> Dataset:
        """Decode (or read from the cache) the images: the slow part of preparing."""
        config = self.sweep.config
        self.data = load_dataset(config.data, config.seed, self.sweep.path)
        return self.data

    @property
    def skipped(self) -> list[Skipped]:
        return self.dataset.skipped


def check(sweep: Sweep, root: Path | None = None) -> Plan:
    """Every check that needs no decoding: backbones, weights, sizes and the data folders."""
    config = sweep.config
    where = f"{config.search_space}: backbone.choices"
    backbones = {
        name: resolve(name, choice, config.data.image_size, f"{where}.{name}")
        for name, choice in sweep.space.backbone_choices().items()
    }
    check_layout(config.data, sweep.path)
    return Plan(sweep, backbones, study_dir(config.study, root))


def prepare(sweep: Sweep, root: Path | None = None) -> Plan:
    plan = check(sweep, root)
    plan.load_data()
    return plan


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


def attach_search(study: optuna.Study, sweep: Sweep) -> None:
    """Sampler and pruner from the sweep file (Optuna does not store them). On resume the
    sampler's seed moves on by the trials already run, so a seeded sampler does not propose
    the first trials' parameters again."""
    config = sweep.config
    max_steps = config.training.head_epochs + config.training.finetune_epochs
    study.sampler = make_sampler(config.sampler, config.seed + len(study.trials))
    study.pruner = make_pruner(config.pruner, max_steps)


def discard_new_study(study: optuna.Study, directory: Path) -> None:
    """Undo a study created moments ago whose data then failed to load: nothing is left."""
    if study.trials:
        return
    optuna.delete_study(study_name=study.study_name, storage=study._storage)
    if not optuna.get_all_study_names(study._storage):
        (directory / STORAGE_FILE).unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        directory.rmdir()


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
    study = optuna.create_study(study_name=config.study, storage=open_storage(storage),
                                direction="maximize")
    attach_search(study, plan.sweep)
    attrs = {"sweep_path": str(plan.sweep.path), "sweep_text": plan.sweep.text,
             "space_text": plan.sweep.space_text, "sweep_sha256": plan.sweep.sha256,
             "budget_trials": config.budget.trials, "objective": config.objective,
             "tlsweep_version": __version__}
    for key, value in attrs.items():
        study.set_user_attr(key, value)
    return study


# ----------------------------------------------------------------------------- storage
HEARTBEAT_INTERVAL_S, GRACE_PERIOD_S = 30, 120


def open_storage(url: str) -> optuna.storages.RDBStorage:
    """RDB storage with Optuna's heartbeat: a trial whose process stops beating is failed and
    re-queued with the same parameters (and its intermediate values, so pruning goes on)."""
    return optuna.storages.RDBStorage(
        url, heartbeat_interval=HEARTBEAT_INTERVAL_S, grace_period=GRACE_PERIOD_S,
        heartbeat_stale_trial_callback=Retry(max_retry=None, inherit_intermediate_values=True))


def load_study(directory: Path, name: str) -> optuna.Study:
    if not (directory / STORAGE_FILE).is_file() or not study_exists(name, sqlite_url(directory)):
        raise ConfigError(f"{directory}: no study named {name!r} here. Start it with "
                          f"`tlsweep run SWEEP.yaml`, or check --results-dir.")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.load_study(study_name=name, storage=open_storage(sqlite_url(directory)))


def retried_numbers(study: optuna.Study) -> set[int]:
    """Trials that have been re-queued: their retry stands in for them."""
    return {n for t in study.get_trials(deepcopy=False)
            for n in t.system_attrs.get("retry_history", [])}


def lineage_root(trial: optuna.trial.FrozenTrial) -> int:
    """The number of the planned trial that this attempt continues (its own if first)."""
    history = trial.system_attrs.get("retry_history", [])
    return history[0] if history else trial.number


def finished_count(study: optuna.Study) -> int:
    """Planned trials in a final state; a failed trial that was re-queued counts once, through
    its retry."""
    final = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
    retried = retried_numbers(study)
    return sum(1 for t in study.get_trials(deepcopy=False, states=final)
               if t.number not in retried)


def requeue(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
    Retry(max_retry=None, inherit_intermediate_values=True)(study, trial)


def recover_stale(study: optuna.Study, owner_alive: bool) -> list[int]:
    """Fail trials left RUNNING by a dead process and re-queue them with the same parameters.

    With no live owner (the lease is stale) every RUNNING trial is stale; otherwise only those
    whose heartbeat has stopped (Optuna's own check) are."""
    optuna.storages.fail_stale_trials(study)
    if owner_alive:
        return []
    recovered = []
    storage = study._storage
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        storage.set_trial_user_attr(trial._trial_id, "error",
                                    "its process died; re-queued to resume from its checkpoint")
        if storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL):
            requeue(study, storage.get_trial(trial._trial_id))
            recovered.append(trial.number)
    return recovered


def check_unchanged(study: optuna.Study, sweep: Sweep, force: bool) -> None:
    """Refuse to resume with a sweep or search-space file that differs from the recorded one."""
    recorded = study.user_attrs
    differences = [f"{sweep.path.name}: {k}" for k in
                   changed_keys(recorded.get("sweep_text", ""), sweep.text)]
    differences += [f"{sweep.config.search_space.name}: {k}" for k in
                    changed_keys(recorded.get("space_text", ""), sweep.space_text)]
    if differences and not force:
        raise ConfigError(
            f"{sweep.path}: the sweep changed since study {study.study_name!r} was created; "
            f"changed keys: {', '.join(differences)}. Restore the files, start a new study, or "
            f"pass --force to resume with the new settings.")
    if differences:
        study.set_user_attr("sweep_text", sweep.text)
        study.set_user_attr("space_text", sweep.space_text)
        study.set_user_attr("sweep_sha256", sweep.sha256)


def recorded_sweep(study: optuna.Study) -> Sweep:
    """The sweep from its file if it is still there, else as recorded in the study."""
    attrs = study.user_attrs
    path = Path(attrs["sweep_path"])
    if path.is_file():
        return load_sweep(path)
    return load_sweep(path, attrs["sweep_text"], attrs["space_text"])
