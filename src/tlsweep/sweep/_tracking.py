"""Finished trials logged to an experiment tracker (the sweep file's ``tracking``), from the
orchestrator: MLflow's client, never TensorFlow.

``SweepRunner.finish`` hands each complete or pruned trial to ``TrialTracking``, which logs it
on a thread of its own: MLflow retries a server that does not answer for about four minutes
(on purpose: tracking servers rate-limit), and the sweep must not wait for it. A tracker is a
guest: when it fails (a server down, a bad URI, MLflow missing on the machine that resumes a
study), one yellow line says so and that tracker is off for the rest of the process. The study
records every trial whatever the tracking does. Runs still queued when the process ends are
given ``CLOSE_S`` seconds to be logged.

Why not optuna-integration's ``MLflowCallback``, which takes the same ``(study, frozen_trial)``:
it is deprecated since optuna-integration 4.9 (removal planned for 6.0), and it logs a trial's
final value only, while a run here also carries the per-epoch curve that the study stores.
"""

from __future__ import annotations

import atexit
import contextlib
import copy
import logging
import queue
import threading
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

import optuna
from optuna.trial import FrozenTrial, TrialState
from rich.markup import escape

from tlsweep.store import scrub

if TYPE_CHECKING:
    from tlsweep.config import Sweep

# What MLflow takes in one log_batch call.
MAX_METRICS, MAX_PARAMS = 1000, 100
# The curve's bookkeeping fields: steps, not measurements.
NOT_METRICS = {"phase", "epoch", "step"}
TRACKED = (TrialState.COMPLETE, TrialState.PRUNED)
# How long the process's end waits for runs still to be logged.
CLOSE_S = 60.0


class Tracker(Protocol):
    name: str  # as the warning names it
    key: str  # its key in the sweep file

    def __call__(self, study: StudyFacts, trial: FrozenTrial) -> None: ...


def _ms(moment: datetime | None) -> int | None:
    return None if moment is None else int(moment.timestamp() * 1000)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """MLflow's INFO lines (database tables created, experiment created) and its libraries'
    deprecation warnings stay off the user's terminal; its errors still raise."""
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


class MLflowTracker:
    """Each trial one MLflow run, named ``trial N``: parameters, ``value`` (the trial's value,
    as the leaderboard shows it; pruned trials have none), the curve's metrics at each epoch's
    step, and tags naming the study, the trial and its state."""

    name, key = "MLflow", "tracking.mlflow"

    def __init__(self, tracking_uri: str | None, experiment: str | None) -> None:
        self.tracking_uri, self.experiment = tracking_uri, experiment
        self.client: Any = None  # mlflow.MlflowClient, made at the first trial
        self.experiment_id = ""

    def connect(self, study: StudyFacts) -> None:
        from mlflow import MlflowClient
        from mlflow.exceptions import MlflowException

        client = MlflowClient(tracking_uri=self.tracking_uri)
        name = self.experiment or study.study_name
        found = client.get_experiment_by_name(name)
        if found is None:
            try:
                self.experiment_id = client.create_experiment(name)
            except MlflowException:
                # Another orchestrator of the study (--workers, tlsweep worker) created it
                # meanwhile: use theirs.
                found = client.get_experiment_by_name(name)
                if found is None:
                    raise
        if found is not None:
            self.experiment_id = found.experiment_id
        self.client = client

    def __call__(self, study: StudyFacts, trial: FrozenTrial) -> None:
        from mlflow.entities import Metric, Param

        with _quiet():
            if self.client is None:
                self.connect(study)
            run = self.client.create_run(self.experiment_id, start_time=_ms(trial.datetime_start),
                                         tags=tags(study, trial), run_name=f"trial {trial.number}")
            run_id = run.info.run_id
            params = [Param(key, str(value)) for key, value in run_params(trial).items()]
            metrics = [Metric(key, value, stamp, step)
                       for key, value, stamp, step in run_metrics(trial)]
            # One call in the usual case; more only past MLflow's limits per call.
            batches = max(-(-len(metrics) // MAX_METRICS), -(-len(params) // MAX_PARAMS), 1)
            for i in range(batches):
                self.client.log_batch(run_id, metrics=metrics[i * MAX_METRICS:][:MAX_METRICS],
                                      params=params[i * MAX_PARAMS:][:MAX_PARAMS])
            self.client.set_terminated(run_id, status="FINISHED",
                                       end_time=_ms(trial.datetime_complete))


def run_params(trial: FrozenTrial) -> dict[str, Any]:
    """The trial's settings: every hyperparameter, fixed ones included (the ``params``
    attribute), else what the sampler suggested."""
    recorded = trial.user_attrs.get("params")
    return dict(recorded) if isinstance(recorded, dict) else dict(trial.params)


def run_metrics(trial: FrozenTrial) -> list[tuple[str, float, int, int]]:
    """(key, value, timestamp in ms, step): each epoch's measurements at its step, stamped when
    it ended, then the trial's value and what it cost."""
    clock = _ms(trial.datetime_start) or 0
    found: list[tuple[str, float, int, int]] = []
    curve = trial.user_attrs.get("curve") or []
    for record in curve:
        clock += int(float(record.get("duration_s") or 0) * 1000)
        step = int(record.get("step", 0))
        found += [(key, float(value), clock, step) for key, value in record.items()
                  if key not in NOT_METRICS and isinstance(value, int | float)]
    last = (max(int(r.get("step", 0)) for r in curve) if curve else 0)
    end = _ms(trial.datetime_complete) or clock
    if trial.state is TrialState.COMPLETE and trial.value is not None:
        found.append(("value", float(trial.value), end, last))
    if trial.user_attrs.get("duration_s") is not None:
        found.append(("trial_duration_s", float(trial.user_attrs["duration_s"]), end, last))
    found.append(("epochs_run", float(len(curve)), end, last))
    return found


def tags(study: StudyFacts, trial: FrozenTrial) -> dict[str, str]:
    found = {"tlsweep.study": study.study_name, "tlsweep.trial": str(trial.number),
             "state": trial.state.name,
             "objective": str(study.user_attrs.get("objective", "val_accuracy"))}
    extra = {"pruned_at": trial.user_attrs.get("pruned_at"),
             "worker": trial.user_attrs.get("worker"),
             "tlsweep.sweep_sha256": study.user_attrs.get("sweep_sha256"),
             "tlsweep.version": study.user_attrs.get("tlsweep_version")}
    found.update({key: str(value) for key, value in extra.items() if value is not None})
    return found


def _warn_on_stderr(line: str) -> None:
    from rich.console import Console

    # stderr: the live view redraws stdout; rich's Live prints this line above it.
    Console(stderr=True).print(line, markup=True, highlight=False)


@dataclass(frozen=True)
class StudyFacts:
    """What a tracker reads of the study, read on the sweep's thread: the storage is not
    shared with the tracking thread."""

    study_name: str
    user_attrs: dict[str, Any]


class TrialTracking:
    """The trackers the sweep file's ``tracking`` names, each given every finished trial on
    the tracking thread; none without that section, and then a call costs nothing."""

    def __init__(self, tracking: Any, where: str,
                 warn: Callable[[str], None] | None = None) -> None:
        """``tracking``: the sweep file's ``TrackingConfig``, or None; ``where``: the sweep
        file, for the warning; ``warn``: where the one line about a failed tracker goes, rich
        markup (stderr by default)."""
        self.trackers: list[Tracker] = []
        mlflow = getattr(tracking, "mlflow", None)
        if mlflow is not None:
            self.trackers.append(MLflowTracker(mlflow.tracking_uri, mlflow.experiment))
        self.secrets = [uri for uri in [getattr(mlflow, "tracking_uri", None)] if uri]
        self.where = where
        self.warn = warn or _warn_on_stderr
        self.pending: queue.Queue[tuple[StudyFacts, FrozenTrial] | None] = queue.Queue()
        self.thread: threading.Thread | None = None
        self.facts: StudyFacts | None = None

    @classmethod
    def of(cls, sweep: Sweep) -> TrialTracking:
        return cls(sweep.config.tracking, str(sweep.path))

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        if not self.trackers or trial.state not in TRACKED:
            return
        if self.facts is None:  # what trackers read of it is set when the study is made
            self.facts = StudyFacts(study.study_name, dict(study.user_attrs))
        self.pending.put((self.facts, copy.deepcopy(trial)))
        if self.thread is None:
            self.thread = threading.Thread(target=self._drain, name="tlsweep-tracking",
                                           daemon=True)
            self.thread.start()
            atexit.register(self.close)

    def _drain(self) -> None:
        while (item := self.pending.get()) is not None:
            facts, trial = item
            for tracker in list(self.trackers):
                try:
                    tracker(facts, trial)
                except Exception as exc:  # a guest: whatever it raises, the sweep goes on
                    self.trackers.remove(tracker)
                    self.warn(self.failed(tracker, trial, exc))

    def close(self, timeout: float | None = None) -> None:
        """Log the runs still queued, waiting at most ``timeout`` seconds (``CLOSE_S``); at
        the process's end, or where a caller must read the runs back."""
        if self.thread is None:
            return
        self.pending.put(None)
        self.thread.join(CLOSE_S if timeout is None else timeout)
        if self.thread.is_alive():
            left = self.pending.qsize()  # the run in hand, and those queued behind the end
            self.warn(f"[yellow]tracking[/] about {left} finished trial(s) not logged: the "
                      f"tracker did not answer in time. The study records every trial.")
        self.thread = None
        atexit.unregister(self.close)

    def failed(self, tracker: Tracker, trial: FrozenTrial, exc: Exception) -> str:
        cause = scrub(f"{type(exc).__name__}: {str(exc).strip()}", *self.secrets)
        first = cause.splitlines()[0]
        shown = first if len(first) <= 300 else first[:300] + "…"
        return (f"[yellow]tracking[/] {escape(tracker.name)} failed on trial {trial.number} "
                f"({escape(shown)}): no more trials are logged to it by this process; the "
                f"study still records every one. Check {escape(self.where)}: {tracker.key}.")
