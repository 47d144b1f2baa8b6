"""The worker subprocess: imports TensorFlow once and runs trials sent by the orchestrator.

It never touches the study's storage. It reports each epoch over a pipe and waits for the
orchestrator's answer (continue, prune or interrupt), so a worker that dies takes nothing with it:
the orchestrator records the trial as failed with the reason and starts a fresh worker. The
messages are the types of ``protocol.py``.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import resource
import signal
import time
import traceback
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tlsweep.config import Sweep
from tlsweep.system import environment, peak_rss_mb, redirect_to_log, replacing, rss_mb
from tlsweep.training.backbones import Backbone
from tlsweep.training.protocol import (
    STOPPING_ANSWERS,
    Ending,
    EpochAnswer,
    EpochFinished,
    EpochStarted,
    KeepModel,
    ModelSaved,
    RunTrial,
    StopWorker,
    TrialDone,
    TrialFailed,
    TrialStopped,
    WorkerIdle,
    WorkerReady,
    WorkerRetiring,
)

if TYPE_CHECKING:
    from tlsweep.training._trial import TrialTask

# A failpoint for tests and drills: TLSWEEP_FAILPOINT="trial=3,step=4:sigkill" makes the worker
# fail that way after that epoch's checkpoint (trial=* for every trial). Actions: raise, sigkill,
# segfault, oom (needs execution.memory_limit_mb).
FAILPOINT = re.compile(r"trial=(?P<trial>\*|\d+),step=(?P<step>\d+):"
                       r"(?P<action>raise|sigkill|segfault|oom)")


@dataclass(frozen=True)
class WorkerSpec:
    sweep: Sweep
    backbones: dict[str, Backbone]
    memory_limit_mb: int | None
    recycle_memory_mb: int
    log: Path  # the study's log file (``tflog``): where this process's fds 1 and 2 go


def die_with_parent() -> None:
    # Linux: the worker must not outlive an orchestrator killed with SIGKILL.
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def enter_subprocess(log: Path, role: str) -> None:
    """What every TensorFlow subprocess (trial worker, final stage, fold worker) does first:
    its output into the study's log, before TensorFlow is imported; Ctrl-C left to the
    orchestrator; death with its parent."""
    redirect_to_log(log, role)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    die_with_parent()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _limit_memory(extra_mb: int) -> None:
    """Cap the address space at its current size plus ``extra_mb``: past it, allocations fail."""
    with open("/proc/self/statm") as statm:
        current = int(statm.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    limit = current + extra_mb * 2**20
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def _failpoint(number: int, step: int, memory_limited: bool) -> None:
    found = FAILPOINT.fullmatch(os.environ.get(environment.FAILPOINT, ""))  # checked before the run
    if found is None or found["trial"] not in ("*", str(number)) or int(found["step"]) != step:
        return
    action = found["action"]
    if action == "raise":
        raise RuntimeError(f"failpoint: injected exception at trial {number}, step {step}")
    if action == "sigkill":
        os.kill(os.getpid(), signal.SIGKILL)
    if action == "segfault":
        ctypes.string_at(0)
    if action == "oom":
        if not memory_limited:
            raise RuntimeError("failpoint oom needs execution.memory_limit_mb")
        hog = []
        while True:
            hog.append(bytearray(256 * 2**20))


class PipeReporter:
    """Sends each epoch to the orchestrator and obeys its answer (``_epochs.AnswersLater``).

    The worker trains on while the orchestrator stores the epoch and asks the pruner (a
    storage round trip, a sizeable part of a small epoch: RESULTS.md, "From the code"); it
    stops at the next batch when the answer is to stop, and never finishes an epoch before it
    has the last one's."""

    def __init__(self, conn: Connection, number: int, memory_limited: bool) -> None:
        self.conn, self.number, self.memory_limited = conn, number, memory_limited
        self.unanswered: int | None = None  # the step reported and not yet answered

    def epoch_started(self, phase: str, step: int, total_steps: int) -> None:
        self.conn.send(EpochStarted(phase, step, total_steps))

    def epoch_finished(self, record: Any) -> None:
        self.settle()
        _failpoint(self.number, record.step, self.memory_limited)
        self.conn.send(EpochFinished(record.as_dict()))
        self.unanswered = record.step

    def poll(self) -> None:
        if self.unanswered is not None and self.conn.poll():
            self._obey(self.conn.recv())

    def settle(self) -> None:
        if self.unanswered is not None:
            self._obey(self.conn.recv())

    def forget(self) -> None:
        """Read and drop an answer still due (a trial that failed meanwhile), so that the next
        trial does not take it for its own."""
        if self.unanswered is not None:
            self.conn.recv()
            self.unanswered = None

    def _obey(self, answer: EpochAnswer) -> None:
        from tlsweep.training._epochs import StopTrial

        step, self.unanswered = self.unanswered, None
        if answer in STOPPING_ANSWERS:
            raise StopTrial(STOPPING_ANSWERS[answer].value, step)


def _summary(result: Any) -> dict[str, Any]:
    """A trial result without its curve (sent epoch by epoch already) or model."""
    if result is None:
        return {}
    return {k: v for k, v in result.__dict__.items()
            if k not in ("curve", "model", "best_weights")}


def _run_one(conn: Connection, spec: WorkerSpec, dataset: Any, task: TrialTask,
             pool: Any) -> None:
    from tlsweep.training._checkpoint import FINAL_MODEL
    from tlsweep.training._epochs import StopTrial

    reporter = PipeReporter(conn, task.number, spec.memory_limit_mb is not None)
    try:
        result = task.run(spec.backbones, dataset, reporter, pool)
    except StopTrial as stop:
        conn.send(TrialStopped(Ending(stop.reason), stop.step, _summary(stop.result),
                              rss_mb()))
        return
    except MemoryError:
        conn.send(TrialFailed(f"MemoryError: the trial passed the worker's memory limit "
                              f"({spec.memory_limit_mb} MB above start-up)",
                              traceback.format_exc()))
        raise SystemExit(3) from None  # the heap may be in pieces: start a fresh worker
    except Exception as exc:
        reporter.forget()
        conn.send(TrialFailed(f"{type(exc).__name__}: {exc}", traceback.format_exc()))
        return
    conn.send(TrialDone(_summary(result), peak_rss_mb(), rss_mb()))
    answer: KeepModel = conn.recv()
    if answer.keep:
        # Written beside the trial's folder, then moved in: the orchestrator clears that
        # folder meanwhile, and a worker killed mid-write must not leave half a model.
        with replacing(task.checkpoint_dir / FINAL_MODEL, suffix=".keras",
                       staging=task.checkpoint_dir.parent) as partial:
            result.best_model().save(partial)  # the epoch the trial's value describes
    conn.send(ModelSaved())


def precision_policy(setting: str, gpu_capabilities: list[tuple[int, int]]) -> str:
    """``auto``: mixed_float16 where every visible GPU has tensor cores that float32 does not
    use already: compute capability 7.x (Volta, Turing). From 8.0 (Ampere, Hopper) float32
    convolutions and matrix products run on tensor cores as TF32 by default, and mixed_float16
    gained nothing over float32 fine-tuning MobileNetV2 on an H100 (benchmarks/RESULTS.md,
    "Mixed precision and XLA"). float32 on CPU, where float16 is emulated and slower.
    ``on``/``off`` force it."""
    if setting == "on":
        return "mixed_float16"
    if setting == "off" or not gpu_capabilities:
        return "float32"
    gains = all((7, 0) <= capability < (8, 0) for capability in gpu_capabilities)
    return "mixed_float16" if gains else "float32"


def gpu_capabilities() -> list[tuple[int, int]]:
    import tensorflow as tf

    found = []
    for gpu in tf.config.list_physical_devices("GPU"):
        details = tf.config.experimental.get_device_details(gpu)
        found.append(tuple(details.get("compute_capability") or (0, 0)))
    return found


def setup_tensorflow(config: Any) -> tuple[str, int]:
    """Import TensorFlow once, with this process's threads, graph options and precision policy:
    (the policy, the intra-op threads or 0 for TensorFlow's default)."""
    threads = int(os.environ.get(environment.THREADS, "0"))
    if threads:  # this worker's share of the cores, when several share the machine
        os.environ.setdefault("TF_NUM_INTRAOP_THREADS", str(threads))
        os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")
    import keras
    import tensorflow as tf

    if threads:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    if config.execution.reduced_graph_optimization:
        tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": True})
    policy = precision_policy(config.execution.mixed_precision, gpu_capabilities())
    keras.mixed_precision.set_global_policy(policy)
    return policy, threads


def worker_main(conn: Connection, spec: WorkerSpec) -> None:
    enter_subprocess(spec.log, "trial worker")
    began = time.perf_counter()
    from tlsweep.datasets import load_dataset

    config = spec.sweep.config
    dataset = load_dataset(config.data, config.seed, spec.sweep.path)
    data_s = time.perf_counter() - began
    policy, threads = setup_tensorflow(config)  # pay the import once, before the first trial
    from tlsweep.training._warm import ModelPool

    import_s = time.perf_counter() - began - data_s

    if spec.memory_limit_mb is not None:
        _limit_memory(spec.memory_limit_mb)
    devices = {"cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
               "intra_op_threads": threads or None, "precision": policy}
    conn.send(WorkerReady(os.getpid(), rss_mb(), devices,
                          {"data_s": data_s, "import_s": import_s}))
    pool = ModelPool(keep=config.execution.reuse_models)
    try:
        while True:
            message: RunTrial | StopWorker = conn.recv()
            if isinstance(message, StopWorker):
                return
            _run_one(conn, spec, dataset, message.task, pool)
            if rss_mb() > spec.recycle_memory_mb:
                conn.send(WorkerRetiring(rss_mb()))
                return
            conn.send(WorkerIdle(rss_mb()))
    except (EOFError, BrokenPipeError):
        return  # the orchestrator is gone
