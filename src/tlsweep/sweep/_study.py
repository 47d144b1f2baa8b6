"""Create, join and resume studies: sampler, pruner and storage from the sweep file, the budget,
and the recovery of trials whose process died.

Everything that can be checked is checked before the storage is touched (``check``), so bad input
never leaves a half-made study behind.
"""

from __future__ import annotations

import os
import socket
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import optuna
from optuna.trial import TrialState

from tlsweep._version import __version__
from tlsweep.config import (
    AnchorConfig,
    PrunerConfig,
    SamplerConfig,
    Sweep,
    TrialParams,
    anchor_params,
    changed_keys,
)
from tlsweep.datasets import Dataset, Skipped, check_layout, load_dataset
from tlsweep.errors import ConfigError, StudyExists
from tlsweep.store import (
    ANCHOR,
    DEFAULT_START,
    StorageURL,
    anchor_recipe,
    budget_lock,
    mask,
    open_storage,
    stale_trial_ids,
    storage,
    study_dir,
    study_exists,
    trial_id,
)
from tlsweep.system import environment, process_alive, writable_folder
from tlsweep.training.backbones import Backbone, resolve

if TYPE_CHECKING:
    from tlsweep.training import EpochRecord

# We record heartbeats ourselves (the worker runs the trial, not Study.optimize), and the retry
# and stale-trial helpers we rely on are stable in practice despite their "experimental" tag.
warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used")
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
Retry = optuna.storages.RetryHeartbeatStaleTrialCallback
INTERRUPTED = 130  # the exit status of a run stopped by Ctrl-C, as a shell reports SIGINT


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


def check_environment() -> None:
    """The environment variables a run reads later, in a worker, checked here first."""
    threads = os.environ.get(environment.THREADS, "0")
    if not threads.isdigit():
        raise ConfigError(f"{environment.THREADS}: {threads!r} is not a number of CPU threads; "
                          f"set a whole number such as 2, or unset it.")
    from tlsweep.training import FAILPOINT

    failpoint = os.environ.get(environment.FAILPOINT, "")
    if failpoint and not FAILPOINT.fullmatch(failpoint):
        raise ConfigError(f"{environment.FAILPOINT}: {failpoint!r} is not a failpoint; write e.g. "
                          f"trial=3,step=4:sigkill (actions: raise, sigkill, segfault, oom), "
                          f"or unset it.")


def check(sweep: Sweep, root: Path | None = None) -> Plan:
    """Every check that needs no decoding: backbones, weights, sizes, the data folders and the
    folders the run will write in."""
    from tlsweep.datasets import cache_root

    config = sweep.config
    check_environment()
    writable_folder(root or study_dir(config.study).parent, "--results-dir (or TLSWEEP_RESULTS)")
    writable_folder(cache_root(), f"{environment.CACHE} (decoded images and features)")
    if config.execution.checkpoint_dir is not None:
        writable_folder(config.execution.checkpoint_dir, f"{sweep.path}: execution.checkpoint_dir")
    where = f"{config.search_space}: backbone.choices"
    backbones = {
        name: resolve(name, choice, config.data.image_size, f"{where}.{name}")
        for name, choice in sweep.space.backbone_choices().items()
    }
    check_layout(config.data, sweep.path)
    from tlsweep.training import check_weights

    check_weights(backbones, config.data.image_size, where)
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
    pruner = _base_pruner(config, max_steps)
    if config.patience is None or config.kind == "none":
        return pruner
    return optuna.pruners.PatientPruner(pruner, patience=config.patience)


def _base_pruner(config: PrunerConfig, max_steps: int) -> optuna.pruners.BasePruner:
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
    max_steps = config.training.total_epochs
    study.sampler = make_sampler(config.sampler, config.seed + len(study.trials))
    study.pruner = make_pruner(config.pruner, max_steps)


def discard_new_study(study: optuna.Study, url: str) -> None:
    """Undo a study created moments ago whose data then failed to load: nothing is left. Only
    queued trials (the anchor) mean nothing has run yet."""
    if any(t.state != TrialState.WAITING for t in study.get_trials(deepcopy=False)):
        return
    optuna.delete_study(study_name=study.study_name, storage=storage(study))
    where = StorageURL.parse(url)
    if where.kind == "sqlite" and where.path and not optuna.get_all_study_names(storage(study)):
        where.path.unlink(missing_ok=True)


def refuse_existing(sweep: Sweep, url: str) -> None:
    """``run`` never reloads a study silently: an existing one is continued with ``resume``."""
    name = sweep.config.study
    if study_exists(name, url):
        raise StudyExists(
            f"{sweep.path}: study: {name!r} already exists in {mask(url)}. Continue it with "
            f"`tlsweep resume {name}`, or change the study name.")


def record_sweep(study: optuna.Study, sweep: Sweep) -> None:
    config = sweep.config
    attrs = {"sweep_path": str(sweep.path), "sweep_text": sweep.text,
             "space_text": sweep.space_text, "sweep_sha256": sweep.sha256,
             "budget_trials": config.budget.trials, "objective": config.objective,
             "tlsweep_version": __version__}
    for key, value in attrs.items():
        study.set_user_attr(key, value)


def enqueue_first_trial(study: optuna.Study, sweep: Sweep) -> None:
    """The anchor recipe as the new study's first trial: a real trial, with a leaderboard row,
    that the finalists' stage then trains for the schedule stored with it. Without an anchor,
    with ``sampler.start_from_default``, the default recipe instead: an ordinary trial that
    the sampler then learns from. Once per study, however many workers set it up."""
    anchor = sweep.config.finalists.anchor
    trials = study.get_trials(deepcopy=False)
    if anchor is not None and not any(anchor_recipe(t) for t in trials):
        study.enqueue_trial(anchor_params(sweep.space, anchor, sweep.config.objective),
                            user_attrs={ANCHOR: anchor.model_dump()})
    elif anchor is None and sweep.config.sampler.start_from_default and not trials:
        study.enqueue_trial(anchor_params(sweep.space, AnchorConfig(),
                                          sweep.config.objective),
                            user_attrs={DEFAULT_START: True})


def set_up_new(study: optuna.Study, sweep: Sweep) -> None:
    """Under the budget lock. The queued first trial first: a study whose sweep is recorded has
    its anchor (or default recipe) queued, so a worker that joins it never asks for a trial
    before that trial exists."""
    enqueue_first_trial(study, sweep)
    record_sweep(study, sweep)
    # Optuna's own tools (optuna-dashboard, `optuna best-trial`) then name the objective
    # instead of "Objective 0".
    study.set_metric_names([sweep.config.objective])


def connect(url: str, sweep: Sweep) -> optuna.storages.BaseStorage:
    execution = sweep.config.execution
    return open_storage(url, execution.heartbeat_interval_s, execution.heartbeat_grace_s)


def create_study(plan: Plan, url: str) -> optuna.Study:
    refuse_existing(plan.sweep, url)
    plan.directory.mkdir(parents=True, exist_ok=True)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = optuna.create_study(study_name=plan.sweep.config.study,
                                    storage=connect(url, plan.sweep), direction="maximize")
    except optuna.exceptions.DuplicatedStudyError:  # another run created it a moment ago
        raise StudyExists(
            f"{plan.sweep.path}: study: {plan.sweep.config.study!r} was just created by another "
            f"run in {mask(url)}. Continue it with `tlsweep resume {plan.sweep.config.study}`, "
            f"or change the study name.") from None
    attach_search(study, plan.sweep)
    with budget_lock(storage(study), study.study_name, url, plan.directory):
        set_up_new(study, plan.sweep)
    return study


def join_study(plan: Plan, url: str) -> optuna.Study:
    """Create the study if this worker is the first, else load it: under the budget lock, so
    exactly one worker records the sweep and every later one is checked against it."""
    plan.directory.mkdir(parents=True, exist_ok=True)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = connect(url, plan.sweep)
    name = plan.sweep.config.study
    with budget_lock(storage, name, url, plan.directory):
        study = optuna.create_study(study_name=name, storage=storage, direction="maximize",
                                    load_if_exists=True)
        # Before the anchor is queued, as ``create_study`` does: the sampler's seed is then the
        # same whichever command created the study.
        attach_search(study, plan.sweep)
        if "sweep_text" in study.user_attrs:
            check_unchanged(study, plan.sweep, force=False)
        else:
            set_up_new(study, plan.sweep)
    return study


def requeue(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
    Retry(max_retry=None, inherit_intermediate_values=True)(study, trial)


def _fail_and_requeue(study: optuna.Study, trial_id: int, reason: str) -> bool:
    """Record why, fail the trial and queue its retry; False if another worker got there first
    (the storage refuses a second state change)."""
    stored = storage(study)
    try:
        stored.set_trial_user_attr(trial_id, "error", reason)
        if not stored.set_trial_state_values(trial_id, state=TrialState.FAIL):
            return False
    except optuna.exceptions.UpdateFinishedTrialError:
        return False
    requeue(study, stored.get_trial(trial_id))
    return True


def _owner_dead(trial: optuna.trial.FrozenTrial) -> bool:
    owner = trial.user_attrs.get("owner")
    if not owner:
        return True  # ask and owner are set under the budget lock: no owner, no process
    if owner.get("host") != socket.gethostname():
        return False  # another machine's: Optuna's heartbeat watches it
    return not process_alive(int(owner["pid"]))


def recover_stale(study: optuna.Study) -> list[int]:
    """Fail trials left RUNNING by a dead process and re-queue them with the same parameters.

    Stale means: its heartbeat stopped (Optuna's check, RDB storages), or its owner ran on this
    machine and its process is gone (our lease, for every storage). Call it under the budget
    lock."""
    recovered = []
    silent = set(stale_trial_ids(study))
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if trial_id(trial) in silent:
            reason = "its worker stopped sending heartbeats; re-queued to resume from its " \
                     "checkpoint"
        elif _owner_dead(trial):
            reason = "its process died; re-queued to resume from its checkpoint"
        else:
            continue
        if _fail_and_requeue(study, trial_id(trial), reason):
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


def trial_settings(plan: Plan, number: int) -> Any:
    from tlsweep.training import TrialSettings  # plain dataclass; trial imports Keras lazily

    config = plan.sweep.config
    return TrialSettings(
        image_size=config.data.image_size, head_epochs=config.training.head_epochs,
        finetune_epochs=config.training.finetune_epochs, batch_size=config.training.batch_size,
        dropout=config.training.dropout, objective=config.objective, seed=config.seed + number,
        cache_features=config.execution.cache_frozen_features,
        jit_compile=config.execution.jit_compile, augment_head=config.training.augment_head,
        head_init=config.training.head_init, probe_seed=config.seed)
