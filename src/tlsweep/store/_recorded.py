"""Reading what a sweep recorded: its study, its planned trials and their lineage, the sweep
file it ran and where its trials keep their models. The inspection and delivery commands read a
study through these, without the machinery that drives one (``tlsweep.sweep``)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from tlsweep.config import Sweep, load_sweep
from tlsweep.errors import ConfigError
from tlsweep.store._secrets import mask
from tlsweep.store._storage import existing_local_url, local_path, open_storage
from tlsweep.system import environment

# The user attribute of the anchor recipe's trial (``finalists.anchor``): the recipe as enqueued.
ANCHOR = "anchor"
DEFAULT_START = "default_start"  # the enqueued default recipe (sampler.start_from_default)


def anchor_recipe(trial: optuna.trial.FrozenTrial) -> dict[str, Any] | None:
    """The anchor recipe that ``trial`` runs, as it was enqueued, or None for a searched trial."""
    recipe = trial.user_attrs.get(ANCHOR)
    return recipe if isinstance(recipe, dict) else None


def best_value(trial: optuna.trial.FrozenTrial) -> float | None:
    """A finished trial's value: a complete trial's own; a pruned trial's best so far, since
    Optuna gives it its *last* reported value."""
    if trial.state == TrialState.COMPLETE:
        return trial.value
    return max(trial.intermediate_values.values(), default=None)


def study_exists(name: str, url: str) -> bool:
    """Whether the storage holds ``name``. A storage that cannot be opened (a closed port, a
    damaged file) is an error naming that cause, never "no such study"."""
    path = local_path(url)
    if path is not None and not path.exists():
        return False
    return name in optuna.get_all_study_names(open_storage(url))


def locate(directory: Path, url: str | None) -> str:
    """The storage of a study: the one given, else the local file in its results folder."""
    found = url or existing_local_url(directory) or os.environ.get(environment.STORAGE)
    if found is None:
        raise ConfigError(f"{directory}: no study storage here (study.db or journal.log). Start "
                          f"the study with `tlsweep run SWEEP.yaml`, or pass --storage URL.")
    return found


def load_study(directory: Path, name: str, url: str | None = None) -> optuna.Study:
    found = locate(directory, url)
    if not study_exists(name, found):
        raise ConfigError(f"{mask(found)}: no study named {name!r} there. Start it with "
                          f"`tlsweep run SWEEP.yaml`, or check --results-dir / --storage.")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.load_study(study_name=name, storage=open_storage(found))


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


def planned_count(study: optuna.Study) -> int:
    """Trials started as new plans: retries (which carry ``failed_trial``) are not new."""
    return sum(1 for t in study.get_trials(deepcopy=False)
               if "failed_trial" not in t.system_attrs)


def epochs_spent(study: optuna.Study) -> int:
    """Training epochs run by all trials; a resumed trial counts only what it ran itself."""
    spent = 0
    for trial in study.get_trials(deepcopy=False):
        inherited = trial.user_attrs.get("resumed_from_step")
        spent += len(trial.user_attrs.get("curve", [])) - (
            inherited + 1 if inherited is not None else 0)
    return spent


def recorded_sweep(study: optuna.Study) -> Sweep:
    """The sweep from its file if it is still there, else as recorded in the study."""
    attrs = study.user_attrs
    path = Path(attrs["sweep_path"])
    if path.is_file():
        return load_sweep(path)
    return load_sweep(path, attrs["sweep_text"], attrs["space_text"])


def checkpoint_folder(config: Any, directory: Path) -> Path:
    """Where a study's trials keep their checkpoints and models: the shared folder, when one
    is set, else the study's results folder (``directory``)."""
    shared = config.execution.checkpoint_dir
    return shared / config.study if shared else directory / "trials"
