"""Worker subprocesses seen from the orchestrator: start, feed, watch, replace.

Trials run in a spawned worker process, so a Python exception, a segfault, a SIGKILL or an
out-of-memory death inside a trial costs that trial only. Keras leaks memory across models
(RESULTS.md, "Memory"), so a worker is also replaced once its resident memory passes a limit.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import signal
import time
from collections.abc import Callable
from typing import Any

from tlsweep.system import see_log
from tlsweep.training import TrialTask, WorkerSpec, protocol, worker_main

SIGNAL_REASONS = {
    signal.SIGKILL: "killed by SIGKILL (out of memory, or killed from outside)",
    signal.SIGSEGV: "crashed with a segmentation fault (SIGSEGV)",
    signal.SIGABRT: "aborted (SIGABRT), often a failed memory allocation",
    signal.SIGBUS: "crashed with a bus error (SIGBUS)",
    signal.SIGTERM: "terminated (SIGTERM)",
}


def death_reason(exitcode: int | None) -> str:
    if exitcode is None:
        return "worker stopped answering"
    if exitcode < 0:
        sig = signal.Signals(-exitcode)
        return "worker " + SIGNAL_REASONS.get(sig, f"killed by {sig.name}")
    return f"worker exited with code {exitcode}"


class WorkerDied(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# handle(message) is called for each epoch message and for the trial's end, and returns the
# reply: an EpochAnswer for a finished epoch, KeepModel for TrialDone, None otherwise.
MessageHandler = Callable[[protocol.EpochStarted | protocol.EpochFinished | protocol.TrialDone],
                          protocol.EpochAnswer | protocol.KeepModel | None]


class Worker:
    """One worker process and its pipe."""

    def __init__(self, spec: WorkerSpec, start_timeout: float = 600.0) -> None:
        began = time.perf_counter()
        self.log = spec.log
        context = multiprocessing.get_context("spawn")
        self.conn, child = context.Pipe()
        self.process = context.Process(target=worker_main, args=(child, spec), daemon=True,
                                       name="tlsweep-worker")
        self.process.start()
        child.close()
        # What the last trial still owes: ModelSaved and its WorkerIdle, or the latter only.
        self.ending: tuple[type, ...] = ()
        ready = self._receive(start_timeout, idle=None)
        if not isinstance(ready, protocol.WorkerReady):
            raise self.died(f"worker sent {type(ready).__name__} instead of starting")
        self.pid: int = ready.pid
        self.devices: dict[str, Any] = ready.devices
        # Spawn to ready: process start, imports and data; reported with its first trial.
        self.startup: dict[str, float] | None = {
            **ready.startup, "total_s": time.perf_counter() - began}

    @property
    def alive(self) -> bool:
        return self.process.is_alive()

    def _receive(self, timeout: float | None, idle: Callable[[], None] | None) -> Any:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            try:
                if self.conn.poll(1.0):
                    return self.conn.recv()
            except (EOFError, OSError):
                pass
            else:
                if self.process.is_alive():
                    if deadline is not None and time.monotonic() > deadline:
                        self.kill()
                        raise self.died("worker did not start in time")
                    if idle is not None:
                        idle()
                    continue
            self.process.join(5)
            raise self.died(death_reason(self.process.exitcode))

    def died(self, reason: str) -> WorkerDied:
        # Its last words (a traceback, TensorFlow's own message before an abort) went to the
        # study's log with the rest of its output, not to the terminal: say where.
        return WorkerDied(reason + see_log(self.log))

    def run(self, task: TrialTask, handle: MessageHandler,
            idle: Callable[[], None] | None = None,
            started: Callable[[], None] | None = None) -> protocol.Outcome:
        """Run one trial; raises WorkerDied if the process dies before it ends. ``started``
        runs once the task is sent, while the worker begins."""
        self.conn.send(protocol.RunTrial(task))
        if started is not None:
            started()
        while True:
            message = self._receive(None, idle)
            if isinstance(message, protocol.TrialDone):
                self.conn.send(handle(message) or protocol.KeepModel(False))
                # The worker saves the model (if kept) while the orchestrator records the
                # trial and samples the next one; ``after_trial`` waits for it.
                self.ending = (protocol.ModelSaved, protocol.WorkerIdle)
                return protocol.Outcome(protocol.Ending.DONE, summary=message.summary,
                               peak_rss_mb=message.peak_rss_mb, rss_mb=message.rss_mb)
            if isinstance(message, protocol.TrialStopped):
                self.ending = (protocol.WorkerIdle,)
                return protocol.Outcome(message.ending, step=message.step, summary=message.summary,
                                        rss_mb=message.rss_mb)
            if isinstance(message, protocol.TrialFailed):
                self.ending = (protocol.WorkerIdle,)
                return protocol.Outcome(protocol.Ending.FAILED, error=message.error,
                                        traceback=message.traceback)
            reply = handle(message)
            if reply is not None:
                self.conn.send(reply)

    def after_trial(self) -> bool:
        """Wait for the end of the last trial: its model on disk (or not wanted), then the
        worker's state. False once the worker has retired itself, or died meanwhile."""
        ending, self.ending = self.ending, ()
        try:
            if protocol.ModelSaved in ending:
                self._receive(None, None)
            message = self._receive(30.0, None)
        except WorkerDied:
            return False
        return isinstance(message, protocol.WorkerIdle)

    def stop(self) -> None:
        with contextlib.suppress(BrokenPipeError, OSError):
            self.conn.send(protocol.StopWorker())
        self.process.join(10)
        if self.process.is_alive():
            self.kill()

    def kill(self) -> None:
        if self.process.is_alive():
            self.process.kill()
            self.process.join(5)


class WorkerSlot:
    """Keeps one live worker: starts it lazily and replaces it when it dies or retires."""

    def __init__(self, spec: WorkerSpec) -> None:
        self.spec = spec
        self.worker: Worker | None = None
        self.last_pid: int | None = None

    @property
    def worker_pid(self) -> int | None:
        return self.worker.pid if self.worker is not None else self.last_pid

    def get(self) -> Worker:
        """The live worker, once its last trial has ended; a new one if it is gone."""
        if self.worker is not None and self.worker.ending and not self.worker.after_trial():
            self.worker.stop()
            self.worker = None
        if self.worker is None or not self.worker.alive:
            self.worker = Worker(self.spec)
            self.last_pid = self.worker.pid
        return self.worker

    def run(self, task: TrialTask, handle: MessageHandler,
            idle: Callable[[], None] | None = None,
            started: Callable[[], None] | None = None) -> protocol.Outcome:
        worker = self.get()
        try:
            return worker.run(task, handle, idle, started)
        except WorkerDied as died:
            self.worker = None
            return protocol.Outcome(protocol.Ending.FAILED, error=died.reason)

    def close(self) -> None:
        if self.worker is not None:
            if self.worker.ending:
                self.worker.after_trial()  # a model being saved is finished first
            self.worker.stop()
            self.worker = None

    def kill(self) -> None:
        if self.worker is not None:
            self.worker.kill()
