"""The messages of the finalists' stage, one type each, read by name. Nothing here imports
TensorFlow: both ends use this module.

The stage's process (``_run``) to the orchestrator (``_stage``):

    stage:         Progress ... FoldLanded ... (each recorded in the study at once)
    stage:         FinalDone or FinalFailed

A fold worker's pipe (``_folds``):

    stage:         FoldJob   -> worker: FoldDone or FoldFailed  ... repeated
    stage:         StopWorker (the trial worker's message)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tlsweep.finalists._records import FinalReport, FoldResult


@dataclass(frozen=True)
class Finalist:
    """A recipe the stage cross-validates: a trial's parameters, trained to its best epoch (or,
    for the anchor, for its own whole schedule)."""

    number: int
    params: Any  # config.TrialParams
    value: float
    epochs: int  # the recipe trains global steps 0..epochs-1: up to its best epoch
    settings: Any  # training.TrialSettings
    kept_model: Path | None  # the trial's own best-epoch model, when kept
    anchor: bool = False  # the anchor recipe (``finalists.anchor``), trained for its schedule


@dataclass(frozen=True)
class FinalTask:
    spec: Any  # training.WorkerSpec
    finalists: list[Finalist]
    reevaluate: bool
    folds: int
    deliver: str
    out_dir: Path
    done: dict[tuple[int, int], FoldResult]  # folds recorded by an earlier, unfinished stage
    # When the run's budget.timeout ends, in the stage's time.monotonic() (one clock for both
    # processes on one machine); None without a timeout.
    deadline: float | None = None


@dataclass(frozen=True)
class Progress:
    text: str


@dataclass(frozen=True)
class FoldLanded:
    """A fold finished: the orchestrator records it in the study before anything else."""

    fold: FoldResult


@dataclass(frozen=True)
class FinalDone:
    report: FinalReport


@dataclass(frozen=True)
class FinalFailed:
    error: str
    traceback: str = ""


@dataclass(frozen=True)
class FoldJob:
    """One finalist's recipe to train on one fold of train+val (``_folds``), by index into
    train+val's order (train, then validation)."""

    finalist: Finalist
    index: int  # the fold's, 0-based
    train: np.ndarray
    held: np.ndarray
    path: Path  # where its model is saved
    key: str  # the recipe's and the fold's images' fingerprint (``FoldResult.key``)


@dataclass(frozen=True)
class FoldFailed:
    error: str
    traceback: str
