"""Resident memory at each trial's end, for the orchestrator and its trial worker: recorded in
the trial, so that a leak shows process by process over a long sweep (the soak test reads it,
and so can a user: `optuna trials` shows the attribute)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import optuna

from tlsweep.system import Record, rss_mb

MEMORY = "memory"


@dataclass(frozen=True)
class MemorySample(Record):
    orchestrator_pid: int
    orchestrator_mb: float
    worker_pid: int
    worker_mb: float


def record_memory(trial: optuna.Trial, worker_pid: int, worker_mb: float | None) -> None:
    """Before the trial is told: a finished trial's attributes are read-only."""
    if worker_mb is None:  # the worker died, or failed before it could say
        return
    sample = MemorySample(os.getpid(), round(rss_mb(), 1), worker_pid, round(worker_mb, 1))
    trial.set_user_attr(MEMORY, sample.as_dict())


def recorded_memory(user_attrs: dict[str, Any]) -> MemorySample | None:
    stored = user_attrs.get(MEMORY)
    return None if stored is None else MemorySample(**stored)
