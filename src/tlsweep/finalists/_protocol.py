"""The messages of the finalists' stage, one type each, read by name. Nothing here imports
TensorFlow: both ends use this module.

The stage's process (``_run``) and the orchestrator (``_stage``), which alone holds the
study's storage:

    stage:         ClaimFold        -> orchestrator: FoldClaimed (before each fold)
    stage:         Progress ... FoldLanded ... (each recorded in the study at once)
    stage:         AwaitFolds       -> orchestrator: FoldsAwaited (the lead: folds trained
                                       elsewhere, or lapsed claims it takes over) ... repeated
    stage:         FinalDone (the lead), HelperDone (a helper) or FinalFailed

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
    # "lead": trains the folds it can claim, waits for the others, chooses and delivers (run,
    # resume); "helper": trains the folds it can claim, then ends (tlsweep worker).
    role: str = "lead"
    # Where fold models are saved: the shared checkpoint folder when the study has one (every
    # machine's folds where the lead can read them), else ``out_dir``.
    fold_dir: Path | None = None

    @property
    def folds_saved_in(self) -> Path:
        return self.fold_dir or self.out_dir


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
class HelperDone:
    """A helper's end: the folds it trained (each already landed)."""

    trained: int


@dataclass(frozen=True)
class ClaimFold:
    """May this process train the fold? (``_recorded.claim_fold``)"""

    trial: int
    index: int
    key: str


@dataclass(frozen=True)
class FoldClaimed:
    granted: bool


@dataclass(frozen=True)
class AwaitFolds:
    """The lead's folds that landed elsewhere or are still claimed there: (trial, index, key)
    each."""

    wanted: list[tuple[int, int, str]]


@dataclass(frozen=True)
class FoldsAwaited:
    """Answer to ``AwaitFolds``: folds recorded since, and those whose claims lapsed, which the
    lead now holds and trains itself (``mine``, as (trial, index))."""

    landed: list[FoldResult]
    mine: list[tuple[int, int]]


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
