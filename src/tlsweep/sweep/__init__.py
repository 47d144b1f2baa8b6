"""Driving a sweep: the study, worker processes and their supervision, the study lease, progress
lines, the Optuna engine's runner and the finalists' stage."""

from tlsweep.sweep._finalize import FinalStage
from tlsweep.sweep._lease import Lease
from tlsweep.sweep._progress import LiveView
from tlsweep.sweep._runner import SweepRunner, checkpoint_root
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
    "FinalStage",
    "Lease",
    "Listener",
    "LiveView",
    "Plan",
    "SweepRunner",
    "attach_search",
    "check",
    "check_unchanged",
    "checkpoint_root",
    "create_study",
    "discard_new_study",
    "join_study",
    "recover_stale",
    "refuse_existing",
    "trial_settings",
]
