"""Driving a sweep: the study, worker processes and their supervision, the study lease, progress
lines, the Optuna engine's runner, and what the finalists' stage (``tlsweep.finalists``) is
given."""

from tlsweep.sweep._deadline import SPLIT, Deadline, RunSplit, recorded_split
from tlsweep.sweep._lease import Lease
from tlsweep.sweep._memory import MEMORY, MemorySample, recorded_memory
from tlsweep.sweep._progress import LiveView
from tlsweep.sweep._runner import SweepRunner, checkpoint_root, stage_inputs
from tlsweep.sweep._study import (
    INTERRUPTED,
    Listener,
    Plan,
    attach_search,
    check,
    check_unchanged,
    create_study,
    discard_new_study,
    join_study,
    recover_stale,
    refuse_existing,
    trial_settings,
)

__all__ = [
    "INTERRUPTED",
    "MEMORY",
    "SPLIT",
    "Deadline",
    "Lease",
    "Listener",
    "LiveView",
    "MemorySample",
    "Plan",
    "RunSplit",
    "SweepRunner",
    "attach_search",
    "check",
    "check_unchanged",
    "checkpoint_root",
    "create_study",
    "discard_new_study",
    "join_study",
    "recorded_memory",
    "recorded_split",
    "recover_stale",
    "refuse_existing",
    "stage_inputs",
    "trial_settings",
]
