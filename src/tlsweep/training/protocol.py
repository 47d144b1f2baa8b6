"""The messages between the orchestrator and a trial worker, one type each, read by name (the
finalists' stage has its own: ``finalists._protocol``).

A trial's conversation over the worker's pipe:

    worker:        WorkerReady                                      (once, at start-up)
    orchestrator:  RunTrial
    worker:        EpochStarted, EpochFinished  ... each answered by an EpochAnswer
    worker:        TrialDone -> orchestrator: KeepModel -> worker: ModelSaved
                or TrialStopped / TrialFailed
    worker:        WorkerIdle, or WorkerRetiring (its memory passed the recycle limit)
    orchestrator:  RunTrial again, or StopWorker

The epoch's answer is read while the next epoch trains (``_worker.PipeReporter``). Nothing here
imports TensorFlow: both ends use this module.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tlsweep.training._trial import TrialTask


# ------------------------------------------------------------------------ worker to orchestrator
@dataclass(frozen=True)
class WorkerReady:
    pid: int
    rss_mb: float
    devices: dict[str, Any]  # CUDA_VISIBLE_DEVICES, intra-op threads, precision policy
    startup: dict[str, float]  # seconds: data_s (decoding), import_s (TensorFlow)


@dataclass(frozen=True)
class EpochStarted:
    phase: str
    step: int
    total_steps: int


@dataclass(frozen=True)
class EpochFinished:
    record: dict[str, Any]  # trial.EpochRecord.as_dict()


@dataclass(frozen=True)
class TrialDone:
    summary: dict[str, Any]  # the trial's result without its curve or model
    peak_rss_mb: float
    rss_mb: float  # resident memory at the trial's end (the soak test follows it)


@dataclass(frozen=True)
class TrialStopped:
    """Ended early on the orchestrator's answer: ``Ending.PRUNED`` or ``Ending.INTERRUPTED``."""

    ending: Ending
    step: int
    summary: dict[str, Any]
    rss_mb: float


@dataclass(frozen=True)
class TrialFailed:
    error: str
    traceback: str


@dataclass(frozen=True)
class ModelSaved:
    """The trial's model is on disk, or was not wanted: the trial's last word."""


@dataclass(frozen=True)
class WorkerIdle:
    rss_mb: float


@dataclass(frozen=True)
class WorkerRetiring:
    rss_mb: float


# ------------------------------------------------------------------------ orchestrator to worker
@dataclass(frozen=True)
class RunTrial:
    task: TrialTask


@dataclass(frozen=True)
class StopWorker:
    pass


@dataclass(frozen=True)
class KeepModel:
    keep: bool  # whether the finished trial is among the best ``keep_top``


class EpochAnswer(Enum):
    CONTINUE = "continue"
    PRUNE = "prune"
    INTERRUPT = "interrupt"


# ----------------------------------------------------------------------------- outcomes
class Ending(Enum):
    """How a trial ended in its worker."""

    DONE = "done"
    PRUNED = "pruned"
    INTERRUPTED = "interrupted"
    FAILED = "failed"


STOPPING_ANSWERS = {EpochAnswer.PRUNE: Ending.PRUNED, EpochAnswer.INTERRUPT: Ending.INTERRUPTED}


@dataclass
class Outcome:
    """A trial's end as the orchestrator records it."""

    ending: Ending
    step: int | None = None
    summary: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    traceback: str | None = None
    peak_rss_mb: float | None = None
    rss_mb: float | None = None  # the worker's, at the trial's end
