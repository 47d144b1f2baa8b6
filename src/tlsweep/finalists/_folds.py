"""The finalists' folds: each (finalist, fold) trained and predicted, in the stage's process or
spread over fold workers.

One TensorFlow process does not keep two CPU cores busy on these models: its step scales little
past one intra-op thread (benchmarks/RESULTS.md, "CPU use inside the training epochs"). The
folds are independent, so on CPU the stage starts one worker per core, each with one thread, and
hands each the next fold as it finishes one (``finalists.fold_workers``). A worker decodes the
dataset itself, as a trial worker does, and its models come from its own warm pool; the stage's
process keeps the baseline and the delivery. Every fold trains from its finalist's seed, so which
worker trains it does not change its model (``_warm``).

The conversation over a fold worker's pipe:

    stage:         FoldJob   -> worker: FoldResult or FoldFailed  ... repeated
    stage:         StopWorker
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from multiprocessing.connection import Connection, wait
from typing import Any

import numpy as np

from tlsweep.finalists._protocol import FoldFailed, FoldJob
from tlsweep.finalists._records import FoldResult
from tlsweep.system import environment
from tlsweep.training import StopWorker, WorkerSpec


class _Silent:
    """A reporter that lets a recipe train every epoch: nothing prunes a finalist."""

    def epoch_started(self, phase: str, step: int, total_steps: int) -> None:
        pass

    def epoch_finished(self, record: Any) -> None:
        pass


def predict_images(model: Any, images: np.ndarray, preprocess: Any,
                   chunk: int = 256) -> np.ndarray:
    """Class indices for uint8 images, preprocessed a slice at a time (a float copy of a large
    test set at once would not fit)."""
    from tlsweep.training import eval_inputs, predict

    return np.concatenate([predict(model, eval_inputs(images[i:i + chunk], preprocess))
                           .argmax(axis=1) for i in range(0, len(images), chunk)])


def fold_workers(setting: int | str, cores: int, jobs: int, gpu: bool) -> tuple[int, int]:
    """(fold workers, intra-op threads each; 0: TensorFlow's default). ``auto``: one worker per
    core on CPU, none (the stage's own process) on a GPU, which one process keeps busy; never
    more workers than folds to train. One worker is the stage's own process."""
    wanted = (1 if gpu else cores) if setting == "auto" else int(setting)
    workers = max(1, min(wanted, jobs))
    return (1, 0) if workers == 1 else (workers, max(1, cores // workers))


@dataclass
class RecipeTrainer:
    """Trains finalists' recipes on given images, and their folds on train+val's, reusing one
    warm pool and one copy of each fold's arrays (a warm pool finds its compiled models and
    batches by array identity)."""

    spec: WorkerSpec
    data: Any  # datasets.Dataset
    pool: Any  # _warm.ModelPool
    parts: dict[int, tuple[np.ndarray, ...]] = field(default_factory=dict)

    def train(self, finalist: Any, x_train: np.ndarray, y_train: np.ndarray,
              x_val: np.ndarray, y_val: np.ndarray) -> Any:
        """The finalist's recipe on other data: its parameters and seed, trained to its best
        epoch with nothing pruned. Returns the model at that epoch."""
        from tlsweep.datasets import Dataset
        from tlsweep.training import TwoPhaseTrial

        dataset = Dataset(x_train, y_train, x_val, y_val, self.data.class_names, [])
        trial = TwoPhaseTrial(finalist.params, self.spec.backbones[finalist.params.backbone],
                              dataset, finalist.settings, _Silent(), pool=self.pool)
        trial.fit(0, finalist.epochs)
        return trial.model

    @cached_property
    def train_and_val(self) -> tuple[np.ndarray, np.ndarray]:
        """Train and validation images together: what the folds split and the refit trains on
        (one copy, not one per fold)."""
        return (np.concatenate([self.data.x_train, self.data.x_val]),
                np.concatenate([self.data.y_train, self.data.y_val]))

    def run(self, job: FoldJob) -> FoldResult:
        """Trains ``job``'s fold, saves its model, and predicts its held-out images."""
        from datetime import UTC, datetime

        from tlsweep.training.backbones import preprocessor

        began, started_at = time.monotonic(), datetime.now(UTC).isoformat(timespec="seconds")
        if job.index not in self.parts:
            x, y = self.train_and_val
            self.parts[job.index] = (x[job.train], y[job.train], x[job.held], y[job.held])
        x_train, y_train, x_held, y_held = self.parts[job.index]
        model = self.train(job.finalist, x_train, y_train, x_held, y_held)
        model.save(job.path)
        backbone = self.spec.backbones[job.finalist.params.backbone]
        predicted = predict_images(model, x_held, preprocessor(backbone))
        return FoldResult(job.finalist.number, job.index, job.key, predicted.tolist(),
                          time.monotonic() - began, f"{socket.gethostname()}:{os.getpid()}",
                          started_at)


def fold_worker_main(conn: Connection, spec: WorkerSpec, threads: int) -> None:
    from tlsweep.training import ModelPool, enter_subprocess, setup_tensorflow

    enter_subprocess(spec.log, "fold worker")
    os.environ[environment.THREADS] = str(threads)
    from tlsweep.datasets import load_dataset

    config = spec.sweep.config
    dataset = load_dataset(config.data, config.seed, spec.sweep.path)
    setup_tensorflow(config)
    trainer = RecipeTrainer(spec, dataset, ModelPool(keep=True))
    try:
        while True:
            message: FoldJob | StopWorker = conn.recv()
            if isinstance(message, StopWorker):
                return
            try:
                conn.send(trainer.run(message))
            except Exception as exc:
                traceback.print_exc()  # into the study's log
                conn.send(FoldFailed(f"{type(exc).__name__}: {exc}", traceback.format_exc()))
    except (EOFError, BrokenPipeError):
        return  # the stage is gone


class FoldWorkers:
    """The stage's fold workers (``workers`` processes, ``threads`` each): started on entry, so
    that their start-up overlaps the baseline's fitting, and stopped on exit."""

    def __init__(self, spec: WorkerSpec, workers: int, threads: int) -> None:
        self.spec, self.workers, self.threads = spec, workers, threads
        self.processes: list[Any] = []
        self.conns: list[Connection] = []

    def __enter__(self) -> FoldWorkers:
        import multiprocessing

        context = multiprocessing.get_context("spawn")
        for index in range(self.workers):
            conn, child = context.Pipe()
            process = context.Process(target=fold_worker_main,
                                      args=(child, self.spec, self.threads), daemon=True,
                                      name=f"tlsweep-fold-{index + 1}")
            process.start()
            child.close()
            self.processes.append(process)
            self.conns.append(conn)
        return self

    def __exit__(self, *exc: object) -> None:
        for conn in self.conns:
            with contextlib.suppress(OSError):  # a worker already gone
                conn.send(StopWorker())
        for process in self.processes:
            process.join(30)  # joined: its CPU time counts in this process's children's
            if process.is_alive():
                process.kill()
                process.join(5)

    def run(self, jobs: list[FoldJob], started: Any, claim: Any) -> Iterator[FoldResult]:
        """Each job's result, in the order they finish, for the jobs ``claim(job)`` grants as
        a worker comes free; ``started(job)`` as each is handed out. A worker that fails a job
        or dies raises: the stage cannot answer without it."""
        pending, busy = list(jobs), {}
        idle = list(self.conns)
        while pending or busy:
            while pending and idle:
                job = pending.pop(0)
                if not claim(job):
                    continue
                conn = idle.pop()
                started(job)
                conn.send(job)
                busy[conn] = job
            for conn in wait(list(busy)):
                message = self._receive(conn, busy.pop(conn))
                idle.append(conn)
                yield message

    def _receive(self, conn: Connection, job: FoldJob) -> FoldResult:
        where = f"trial {job.finalist.number}'s fold {job.index + 1}"
        try:
            message = conn.recv()
        except EOFError:
            process = self.processes[self.conns.index(conn)]
            process.join(5)
            raise RuntimeError(f"a fold worker ended (exit code {process.exitcode}) while "
                               f"training {where}") from None
        if isinstance(message, FoldFailed):
            raise RuntimeError(f"{where}: {message.error}")
        return message

