"""The sweep loop: ask Optuna for a trial, run it in a worker, tell Optuna how it ended.

The orchestrator owns the storage and never imports TensorFlow. Each epoch the worker reports
arrives here, is stored (curve, intermediate value, heartbeat) and answered: continue, prune, or
interrupt. The first Ctrl-C lets the current epoch finish and checkpoint, then re-queues the trial
for ``resume``; a second one exits at once (the study can still be resumed).
"""

from __future__ import annotations

import os
import signal
import socket
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from tlsweep.config import suggest
from tlsweep.errors import SweepAborted, SystematicFailure
from tlsweep.finalists import StageInputs
from tlsweep.store import (
    budget_lock,
    checkpoint_folder,
    current,
    epochs_spent,
    lineage_root,
    planned_count,
    record_heartbeat,
    storage,
)
from tlsweep.sweep._deadline import Deadline
from tlsweep.sweep._memory import record_memory
from tlsweep.sweep._study import INTERRUPTED, Listener, Plan, recover_stale, requeue, trial_settings
from tlsweep.sweep._tracking import TrialTracking
from tlsweep.sweep._worker_slot import WorkerSlot
from tlsweep.system import log_path
from tlsweep.training import FINAL_MODEL, TrialCheckpoints, TrialTask, WorkerSpec
from tlsweep.training.protocol import (
    Ending,
    EpochAnswer,
    EpochFinished,
    EpochStarted,
    KeepModel,
    Outcome,
    TrialDone,
)


@dataclass
class Interrupts:
    """SIGINT: the first asks for a clean stop after the epoch, the second exits at once."""

    count: int = 0
    on_hard_exit: list = field(default_factory=list)

    def __call__(self, signum: int, frame: Any) -> None:
        self.count += 1
        if self.count == 1:
            print("\nInterrupted: finishing the current epoch and saving a checkpoint "
                  "(Ctrl-C again to exit at once).", flush=True)
            return
        for action in self.on_hard_exit:
            action()
        os._exit(INTERRUPTED)

    @property
    def requested(self) -> bool:
        return self.count > 0


def first_prunable_step(plan: Plan) -> int:
    """The first global step at which the pruner is asked (``pruner.min_finetune_epochs``)."""
    config = plan.sweep.config
    wait = config.pruner.min_finetune_epochs
    return config.training.head_epochs + wait - 1 if wait else 0


class TrialSession:
    """One attempt at a trial, seen from the orchestrator: stores what the worker reports."""

    def __init__(self, study: optuna.Study, trial: optuna.Trial, listener: Listener,
                 interrupts: Interrupts, checkpoint_dir: Path) -> None:
        self.study, self.trial, self.listener = study, trial, listener
        self.interrupts = interrupts
        self.objective = study.user_attrs.get("objective", "val_accuracy")
        self.beat = time.monotonic()
        self.beat_every = 5.0
        self.keep_top = 0
        self.first_prunable = 0  # no pruning before this global step
        self.state = TrialCheckpoints(checkpoint_dir).latest()
        # The checkpoint is the authority on what ran: it is written before an epoch is
        # reported, so it holds every epoch the storage holds, and maybe one more.
        self.curve: list[dict[str, Any]] = list(self.state.curve) if self.state else []
        self.unsaved: list[dict[str, Any]] = []  # epochs answered, not yet in the curve attr
        self.reported: set[int] = set()

    def start(self) -> None:
        """Store the curve so far (a resumed trial's, from its checkpoint) and report it."""
        trial = self.trial
        self.reported = set(current(self.study, trial).intermediate_values)
        trial.set_user_attr("curve", self.curve)
        if self.state is not None:
            trial.set_user_attr("resumed_from_step", self.state.step)
            for record in self.curve:
                self._report(record)

    def _report(self, record: dict[str, Any]) -> None:
        if record["step"] not in self.reported:
            self.trial.report(float(record[self.objective]), record["step"])
            self.reported.add(record["step"])

    def among_best(self, value: float) -> bool:
        """Whether a finished trial's model would be one of the ``keep_top`` kept."""
        values = sorted((t.value for t in self.study.get_trials(
            deepcopy=False, states=(TrialState.COMPLETE,))), reverse=True)
        return self.keep_top > 0 and (len(values) < self.keep_top
                                      or value > values[self.keep_top - 1])

    def heartbeat(self) -> None:
        if time.monotonic() - self.beat > self.beat_every:
            record_heartbeat(self.study, self.trial)
            self.beat = time.monotonic()

    def save_curve(self) -> None:
        """Store the epochs answered since the last save, and show them."""
        if not self.unsaved:
            return
        self.trial.set_user_attr("curve", self.curve)
        from tlsweep.training import EpochRecord

        for record in self.unsaved:
            self.listener.epoch_finished(EpochRecord(**record))
        self.unsaved.clear()

    def handle(self, message: EpochStarted | EpochFinished | TrialDone
               ) -> EpochAnswer | KeepModel | None:
        if isinstance(message, EpochStarted):
            # The worker trains on: store the previous epoch's curve meanwhile, off the path
            # between an epoch and its answer (the checkpoint holds it already).
            self.save_curve()
            self.listener.epoch_started(message.phase, message.step, message.total_steps)
            return None
        if isinstance(message, TrialDone):
            self.save_curve()
            return KeepModel(self.among_best(message.summary["value"]))
        return self.answer(message.record)

    def answer(self, record: dict[str, Any]) -> EpochAnswer:
        self.curve.append(record)
        self.unsaved.append(record)
        self._report(record)
        self.heartbeat()
        if self.interrupts.requested:
            return EpochAnswer.INTERRUPT
        if record["step"] >= self.first_prunable and self.trial.should_prune():
            self.trial.set_user_attr("pruned_at", record["step"])
            return EpochAnswer.PRUNE
        return EpochAnswer.CONTINUE


def checkpoint_root(plan: Plan) -> Path:
    return checkpoint_folder(plan.sweep.config, plan.directory)


def worker_spec(plan: Plan) -> WorkerSpec:
    """What a TensorFlow subprocess of this study (trial worker, final stage) is started with;
    every orchestrator of the study, ``--workers N`` included, points it at the same log."""
    execution = plan.sweep.config.execution
    return WorkerSpec(plan.sweep, plan.backbones, execution.memory_limit_mb,
                      execution.recycle_memory_mb, log_path(plan.directory))


def stage_inputs(plan: Plan, deadline: Deadline | None = None, url: str = "") -> StageInputs:
    """What the finalists' stage needs of this sweep (``tlsweep.finalists``); ``deadline``:
    the run's, for the stage to say when it will end past it; ``url``: the study's storage,
    whose lock the stage's processes share."""
    data = plan.dataset
    ends = None if deadline is None or deadline.timeout is None \
        else deadline.started + deadline.timeout
    return StageInputs(plan.sweep.config, worker_spec(plan), len(data.y_train) + len(data.y_val),
                       data.has_test, plan.directory, checkpoint_root(plan),
                       lambda number: trial_settings(plan, number), ends, url)


class SweepRunner:
    """One orchestrator: runs trials of a study, one at a time, in its worker subprocess, until
    the study's budget is spent. Several runners (processes, machines) can share a study."""

    POLL_S = 2.0

    def __init__(self, plan: Plan, study: optuna.Study, listener: Listener, url: str,
                 publish: Callable[[optuna.Study], None] = lambda study: None,
                 deadline: Deadline | None = None) -> None:
        """``publish`` runs after every finished trial, once the next one has started, and at
        the end (the launcher rewrites the Parquet files there), keeping this layer free of the
        results layer. ``deadline``: when to stop taking trials (by default budget.timeout
        from now, with nothing after the search)."""
        self.plan, self.study, self.listener, self.url = plan, study, listener, url
        self.publish = publish
        self.deadline = deadline or Deadline(plan, time.monotonic(), stage_follows=False)
        self.execution = plan.sweep.config.execution
        self.budget = int(study.user_attrs.get("budget_trials", plan.sweep.config.budget.trials))
        self.slot = WorkerSlot(worker_spec(plan))
        self.interrupts = Interrupts(on_hard_exit=[self.slot.kill])
        self.failures: list[str] = []
        self.setup_failures: list[tuple[optuna.trial.FrozenTrial, str]] = []
        self.untidy = False  # a trial ended since the last tidy()
        self.trials_dir = checkpoint_root(plan)
        self.owner = {"host": socket.gethostname(), "pid": os.getpid()}
        self.tracking = TrialTracking.of(plan.sweep)  # the sweep file's tracking; often none

    @property
    def keep_count(self) -> int:
        """Final models kept: the finalists are scored on the test set from theirs."""
        return max(self.execution.keep_top, self.plan.sweep.config.finalists.k)

    # ----------------------------------------------------------------------- loop
    def run(self) -> int:
        """Run to the budget; returns 0, or 130 after a clean interrupt."""
        previous = signal.signal(signal.SIGINT, self.interrupts)
        try:
            while not self.interrupts.requested:
                if not self.deadline.allows_a_trial(self.study):
                    break
                self.slot.get()  # start the worker (TensorFlow import) before taking a trial
                trial = self.next_trial()
                if trial is None:
                    break
                self.run_one(trial)
        finally:
            signal.signal(signal.SIGINT, previous)
            self.slot.close()
            self.untidy = True
            self.tidy()
        return INTERRUPTED if self.interrupts.requested else 0

    def next_trial(self) -> optuna.Trial | None:
        """Take a queued retry, or a new trial while the budget allows, under the study's lock,
        so that however many workers share the study it ends with exactly the budget. With the
        budget spent, wait while other workers' trials run: one may die and be re-queued."""
        while not self.interrupts.requested:
            with budget_lock(storage(self.study), self.study.study_name, self.url,
                             self.plan.directory):
                recover_stale(self.study)
                waiting = self.study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
                if waiting or self.budget_left():
                    trial = self.study.ask()
                    trial.set_user_attr("owner", self.owner)
                    record_heartbeat(self.study, trial)
                    return trial
                running = self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
                if not running:
                    return None
            time.sleep(self.POLL_S)
        return None

    def budget_left(self) -> bool:
        epochs = self.plan.sweep.config.budget.epochs
        return planned_count(self.study) < self.budget and (
            epochs is None or epochs_spent(self.study) < epochs)

    def run_one(self, trial: optuna.Trial) -> None:
        params = suggest(trial, self.plan.sweep.space)
        frozen = current(self.study, trial)
        checkpoint_dir = self.trials_dir / str(lineage_root(frozen))
        session = TrialSession(self.study, trial, self.listener, self.interrupts, checkpoint_dir)
        session.keep_top = self.keep_count
        session.first_prunable = first_prunable_step(self.plan)
        session.beat_every = min(5.0, self.execution.heartbeat_interval_s / 2)
        self.listener.trial_started(trial.number, params)
        task = TrialTask(trial.number, params, trial_settings(self.plan, trial.number),
                         checkpoint_dir)
        worker = self.slot.get()
        began, started_unix = time.perf_counter(), time.time()

        def record_start() -> None:
            """Runs once the worker has its task: these storage writes overlap its first
            epoch instead of delaying it."""
            for key, value in {"params": params.as_dict(), "error": None, "pruned_at": None,
                               "worker": f"{socket.gethostname()}:{worker.pid}",
                               "worker_devices": worker.devices,
                               "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
                               "started_unix": started_unix}.items():
                trial.set_user_attr(key, value)
            if worker.startup is not None:  # this trial pays for a fresh worker
                trial.set_user_attr("worker_startup", worker.startup)
                worker.startup = None
            session.start()
            self.tidy()

        outcome = self.slot.run(task, session.handle, session.heartbeat, record_start)
        trial.set_user_attr("duration_s", time.perf_counter() - began)
        record_memory(trial, worker.pid, outcome.rss_mb)
        self.finish(trial, outcome, checkpoint_dir, session)

    # ----------------------------------------------------------------------- endings
    def finish(self, trial: optuna.Trial, outcome: Outcome, checkpoint_dir: Path,
               session: TrialSession) -> None:
        session.save_curve()
        if outcome.ending is Ending.DONE:
            trial.set_user_attr("result", outcome.summary)
            trial.set_user_attr("worker_peak_rss_mb", outcome.peak_rss_mb)
            self.study.tell(trial, outcome.summary["value"])
        elif outcome.ending is Ending.PRUNED:
            trial.set_user_attr("result", outcome.summary)
            self.study.tell(trial, state=TrialState.PRUNED)
        elif outcome.ending is Ending.INTERRUPTED:
            trial.set_user_attr("error", f"interrupted at step {outcome.step}; resumes from its "
                                         f"checkpoint")
            self.study.tell(trial, state=TrialState.FAIL)
            requeue(self.study, current(self.study, trial))
        else:
            trial.set_user_attr("error", outcome.error)
            if outcome.traceback:
                trial.set_user_attr("traceback", outcome.traceback[-4000:])
            self.study.tell(trial, state=TrialState.FAIL)
        frozen = current(self.study, trial)
        if outcome.ending is not Ending.INTERRUPTED:
            TrialCheckpoints(checkpoint_dir).discard()
        self.untidy = True
        self.listener.trial_finished(frozen, self.study)
        self.tracking(self.study, frozen)  # complete and pruned trials; a failure only warns
        self.stop_if_systematic(frozen, outcome, session)
        self.count_failure(outcome)

    def tidy(self) -> None:
        """After a trial: drop the final models no longer among the best, rewrite the Parquet
        files. Done while the next trial runs, or at the end."""
        if self.untidy:
            self.keep_best_models()
            self.publish(self.study)
            self.untidy = False

    def keep_best_models(self) -> None:
        """Keep the final model of the best ``keep_top`` complete trials only."""
        complete = sorted(self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)),
                          key=lambda t: t.value, reverse=True)
        keep = {lineage_root(t) for t in complete[:self.keep_count]}
        if not self.trials_dir.is_dir():
            return
        for folder in self.trials_dir.iterdir():
            model = folder / FINAL_MODEL
            if model.exists() and folder.name.isdigit() and int(folder.name) not in keep:
                model.unlink()

    def stop_if_systematic(self, frozen: optuna.trial.FrozenTrial, outcome: Outcome,
                           session: TrialSession) -> None:
        """Two trials in a row that fail before their first epoch with the same error are not
        two results but one cause: both are queued again (a retry keeps the trial's place in
        the budget) and the sweep stops with that error."""
        if outcome.ending is not Ending.FAILED or session.curve:
            self.setup_failures.clear()
            return
        self.setup_failures.append((frozen, outcome.error or "unknown"))
        if len(self.setup_failures) < 2 or len({e for _, e in self.setup_failures[-2:]}) > 1:
            return
        for failed, _ in self.setup_failures[-2:]:
            requeue(self.study, current(self.study, failed))
        self.tidy()
        raise SystematicFailure(
            f"{self.plan.sweep.path}: trials {self.setup_failures[-2][0].number} and "
            f"{frozen.number} failed before their first epoch with the same error, which would "
            f"fail every trial: {outcome.error}. Nothing of the budget is spent on them: fix "
            f"the cause, then continue with `tlsweep resume {self.study.study_name}`.")

    def count_failure(self, outcome: Outcome) -> None:
        if outcome.ending is not Ending.FAILED:
            self.failures.clear()
            return
        self.failures.append(outcome.error or "unknown")
        limit = self.execution.max_consecutive_failures
        if len(self.failures) >= limit:
            reason, times = Counter(self.failures).most_common(1)[0]
            raise SweepAborted(
                f"{self.plan.sweep.path}: stopped after {limit} failed trials in a row "
                f"(execution.max_consecutive_failures). Most common reason ({times}x): {reason}. "
                f"Fix it, then continue with `tlsweep resume {self.study.study_name}`.")
