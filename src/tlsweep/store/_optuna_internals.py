"""The Optuna internals tlsweep relies on, each reached here only, with why the public API does
not suffice. An Optuna upgrade that moves one breaks this module, not the sweep's logic."""

from __future__ import annotations

from typing import Any

import optuna
from optuna.storages import BaseStorage


def storage(study: optuna.Study) -> BaseStorage:
    """A study's storage object. Public Optuna takes a storage (or URL) and hides the object it
    built: we need that object to hold the budget lock on it, to record a heartbeat at ask time
    (before the first epoch, which Optuna's own heartbeat thread would wait for), to change a
    dead trial's state and to delete a study just created."""
    return study._storage


def trial_id(trial: optuna.Trial | optuna.trial.FrozenTrial) -> int:
    """The storage's key for a trial: ``number`` counts within a study, and a storage's
    per-trial methods take the id."""
    return trial._trial_id


def current(study: optuna.Study, trial: optuna.Trial | optuna.trial.FrozenTrial
            ) -> optuna.trial.FrozenTrial:
    """One trial as stored now: ``study.trials`` would copy (or at best list) every trial."""
    return storage(study).get_trial(trial_id(trial))


def record_heartbeat(study: optuna.Study, trial: optuna.Trial) -> None:
    """Beat now, where the storage keeps heartbeats (RDB with heartbeat_interval): Optuna's
    heartbeat thread runs only inside ``study.optimize``, which the orchestrator does not use."""
    found = storage(study)
    if hasattr(found, "record_heartbeat"):
        found.record_heartbeat(trial_id(trial))


def stale_trial_ids(study: optuna.Study) -> list[int]:
    """Trials whose heartbeat is older than the grace period, by Optuna's own query; none on
    storages without heartbeats. ``optuna.storages.fail_stale_trials`` would fail them as
    well, but with no reason recorded, outside our budget lock, and re-queued only through the
    storage's ``failed_trial_callback``: so the query alone is used."""
    found: Any = storage(study)
    backend = getattr(found, "_backend", found)  # the cache wrapper around an RDB storage
    if getattr(backend, "heartbeat_interval", None) is None:
        return []
    return list(backend._get_stale_trial_ids(study._study_id))
