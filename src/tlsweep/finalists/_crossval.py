"""The finalists' folds, seen from the stage's process: the folds of train+val (copies kept in
one fold), each (finalist, fold) job claimed before it trains, trained here or by fold
workers (``_folds``), landed (the orchestrator records each at once), and, for the lead, the
folds other processes claimed, awaited (``_recorded``). TensorFlow only through the trainer.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import numpy as np

from tlsweep.finalists._baselines import _confusion
from tlsweep.finalists._choice import score
from tlsweep.finalists._protocol import (
    AwaitFolds,
    ClaimFold,
    Finalist,
    FinalTask,
    FoldClaimed,
    FoldJob,
    FoldLanded,
    FoldsAwaited,
)
from tlsweep.finalists._records import FinalistResult, FoldResult
from tlsweep.system import format_seconds


def fold_model_path(out_dir: Path, trial: int, index: int) -> Path:
    """Where the stage saves finalist ``trial``'s model of fold ``index`` (0-based)."""
    return out_dir / f"trial-{trial}-fold-{index + 1}.keras"


def fold_key(finalist: Finalist, held: np.ndarray, seed: int) -> str:
    """What a fold's result depends on: the recipe (parameters, epochs, settings), the images
    it holds out and the study's seed. A recorded fold is reused only under the same key."""
    recipe = repr((finalist.params, finalist.epochs, finalist.settings, finalist.anchor, seed))
    digest = hashlib.sha256(recipe.encode())
    digest.update(np.ascontiguousarray(held, np.int64).tobytes())
    return digest.hexdigest()[:16]


def refit_in_folds(folds: int) -> float:
    """A refit on all of train+val in one fold's time: ``folds / (folds - 1)`` of its images."""
    return folds / max(folds - 1, 1)


class _FoldClock:
    """How far the folds are, and when they will end at the pace so far (workers included:
    the pace is folds landed per second of the stage, however many train at once); and, once,
    a plain warning when that end falls past the run's budget (``deadline``: its
    ``time.monotonic()``, None without a timeout)."""

    def __init__(self, total: int, deadline: float | None, refit: bool = True) -> None:
        self.total, self.done, self.began = total, 0, time.monotonic()
        self.deadline, self.warned, self.refit = deadline, False, refit

    def after_folds(self, folds: int) -> float:
        """What follows the folds, in folds' time: a refit (``refit_in_folds``), or nothing
        when the fold models are delivered."""
        return refit_in_folds(folds) if self.refit else 0.0

    def landed(self) -> str:
        self.done += 1
        now = time.monotonic()
        elapsed = now - self.began
        left = elapsed / self.done * (self.total - self.done)
        line = (f"{self.done} of {self.total} folds in {format_seconds(elapsed)}"
                + (f", about {format_seconds(left)} left" if self.done < self.total else ""))
        past = None if self.deadline is None else \
            now + left + elapsed / self.done * self.after_folds(self.total) - self.deadline
        if past is not None and past > 0 and not self.warned:
            self.warned = True
            line += (f". At this pace the run ends about {format_seconds(past)} past "
                     f"budget.timeout: the folds train slower than the search's epochs "
                     f"promised (a busy machine, or finalists that train longer than the "
                     f"search's average)")
        return line

    def past_deadline(self, jobs: int, folds: int) -> float | None:
        """Seconds past the deadline at which ``jobs`` more folds, then what follows them
        (``after_folds``), would end at the pace so far; None when they fit, or when there is
        no deadline or no pace yet."""
        if self.deadline is None or self.done == 0:
            return None
        now = time.monotonic()
        per_fold = (now - self.began) / self.done
        past = now + per_fold * (jobs + self.after_folds(folds)) - self.deadline
        return past if past > 0 else None


@dataclass
class _FoldPlan:
    """The stage's folds: the finalists in the order they train, the (train, held) index pairs
    over ``labels`` (train+val), each finalist's jobs, the folds landed so far and the clock."""

    order: list[Finalist]
    folds: list[tuple[np.ndarray, np.ndarray]]
    labels: np.ndarray
    jobs: dict[int, list[FoldJob]]
    landed: dict[tuple[int, int], FoldResult]
    clock: _FoldClock


class FoldWork:
    """The stage process's folds: ``trainer`` (``_folds.RecipeTrainer``) trains a job here,
    ``workers`` (``_folds.FoldWorkers``, or None) over fold workers; ``say`` sends a progress
    line; every message to the orchestrator goes over ``conn``."""

    def __init__(self, conn: Connection, task: FinalTask, data: Any, trainer: Any,
                 workers: Any, say: Callable[[str], None]) -> None:
        self.conn, self.task, self.data = conn, task, data
        self.trainer, self.workers, self.say = trainer, workers, say
        config = task.spec.sweep.config
        self.objective, self.seed = config.objective, config.seed
        self.cut_finalists: list[int] = []  # left out by the budget (``cut``)
        self.trained = 0  # folds trained by this process
        # (trial, fold): the plan's folds landed, this run's and an earlier run's
        self.landed: dict[tuple[int, int], FoldResult] = {}

    def fold_path(self, finalist: Finalist, index: int) -> Path:
        return fold_model_path(self.task.folds_saved_in, finalist.number, index)

    def folds(self, labels: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        from sklearn.model_selection import StratifiedGroupKFold

        groups = np.arange(len(labels))
        report = self.data.duplicates
        if report is not None:  # copies of one picture stay in one fold
            # By path alone: under data.duplicates 'move', a member found in val or test now
            # trains, so its split in the report is not its split here.
            offsets = {"train": 0, "val": len(self.data.y_train)}
            positions = {path: offsets[split] + i for split in offsets
                         for i, path in enumerate(self.data.paths.get(split, []))}
            for group in report.groups:
                members = [positions[m.path] for m in group.members if m.path in positions]
                groups[members] = min(members, default=0)
        # A tiny set may hold fewer groups than folds: sklearn refuses that outright.
        splits = max(2, min(self.task.folds, len(np.unique(groups))))
        splitter = StratifiedGroupKFold(splits, shuffle=True, random_state=self.seed)
        return list(splitter.split(labels, labels, groups))

    def cross_validate(self, finalists: list[Finalist]) -> dict[int, FinalistResult]:
        """The lead's: every fold of the finalists the budget leaves in (``train_folds``),
        those trained by other processes awaited (``await_others``); pooled out-of-fold
        predictions, in train+val's order (for pairing)."""
        plan = self.fold_plan(finalists)
        done_with = self.train_folds(plan)
        self.await_others(plan, done_with)
        return {f.number: self._pooled(f, plan.folds, plan.landed, plan.labels)
                for f in done_with}

    def fold_plan(self, finalists: list[Finalist]) -> _FoldPlan:
        """Every (finalist, fold) job, the anchor's first (it stands unless beaten), then the
        searched finalists by rank; and the folds an earlier run of this stage recorded."""
        y = np.concatenate([self.data.y_train, self.data.y_val])  # train_and_val's order
        folds = self.folds(y)
        order = sorted(finalists, key=lambda f: not f.anchor)  # stable: ranks kept
        jobs = {f.number: [FoldJob(f, index, train, held, self.fold_path(f, index),
                                   fold_key(f, held, self.seed))
                           for index, (train, held) in enumerate(folds)] for f in order}
        landed = {(j.finalist.number, j.index): self.task.done[j.finalist.number, j.index]
                  for group in jobs.values() for j in group if self._recorded(j)}
        total = sum(len(group) for group in jobs.values())
        if landed:
            self.say(f"{len(landed)} of {total} folds recorded by an earlier run: "
                     f"{total - len(landed)} to train")
        self.landed = landed
        return _FoldPlan(order, folds, y, jobs, landed,
                         _FoldClock(total - len(landed), self.task.deadline,
                                    refit=self.task.deliver == "refit"))

    def train_folds(self, plan: _FoldPlan) -> list[Finalist]:
        """Finalist by finalist, the folds this process can claim (``_recorded``), in this
        process or over fold workers (``_folds``); the finalists not cut. A finalist whose folds
        would end the run past budget.timeout at the pace so far is not started, nor any after
        it (``cut``): the choice is made among those cross-validated."""
        done_with: list[Finalist] = []
        for position, finalist in enumerate(plan.order):
            todo = [j for j in plan.jobs[finalist.number]
                    if (j.finalist.number, j.index) not in plan.landed]
            past = plan.clock.past_deadline(len(todo), len(plan.folds)) \
                if position and todo else None
            if past is not None:
                self.cut(plan.order[position:], plan.clock, past)
                break
            for done in self.fold_results(todo, len(plan.folds), self.claim):
                self.land(plan, done)
            done_with.append(finalist)
        return done_with

    def await_others(self, plan: _FoldPlan, finalists: list[Finalist]) -> None:
        """The folds of ``finalists`` that other processes claimed: waited for, each said as it
        lands; one whose claim lapses (its process died) is trained here."""
        wanted = {(j.finalist.number, j.index): j for f in finalists
                  for j in plan.jobs[f.number] if (j.finalist.number, j.index) not in plan.landed}
        if wanted:
            self.say(f"{len(wanted)} folds are being trained by other workers: waiting for them")
        while wanted:
            self.conn.send(AwaitFolds([(t, i, j.key) for (t, i), j in wanted.items()]))
            answer: FoldsAwaited = self.conn.recv()
            for fold in answer.landed:
                job = wanted.get((fold.trial, fold.index))
                if job is not None and fold.key == job.key:
                    del wanted[fold.trial, fold.index]
                    self.land(plan, fold, here=False)
            mine = [wanted.pop(key) for key in answer.mine if key in wanted]
            for done in self.fold_results(mine, len(plan.folds), lambda job: True):
                self.land(plan, done)

    def claim(self, job: FoldJob) -> bool:
        """Whether this process trains ``job``: the orchestrator claims it in the study."""
        self.conn.send(ClaimFold(job.finalist.number, job.index, job.key))
        answer: FoldClaimed = self.conn.recv()
        return answer.granted

    def land(self, plan: _FoldPlan, done: FoldResult, here: bool = True) -> None:
        """A fold's result: recorded in the study first (when trained here), then said."""
        if here:
            self.conn.send(FoldLanded(done))
            self.trained += 1
        plan.landed[done.trial, done.index] = done
        held = plan.folds[done.index][1]
        confusion = _confusion(plan.labels[held], np.asarray(done.predicted),
                               self.data.n_classes)
        where = "" if here else f", by {done.claimed_by or done.worker}"
        # A helper sees only its own folds land: its pace says nothing of the stage's end.
        progress = plan.clock.landed() if self.task.role == "lead" \
            else f"{self.trained} trained here"
        self.say(f"trial {done.trial}: fold {done.index + 1}/{len(plan.folds)} scored "
                 f"{score(confusion, self.objective):.3f} ({self.objective}){where}; "
                 f"{progress}")

    def cut(self, left: list[Finalist], clock: _FoldClock, past: float) -> None:
        """Says, plainly, which finalists the budget leaves out, and why."""
        names = " and ".join(f"trial {f.number}" for f in left)
        self.cut_finalists = [f.number for f in left]
        then = " and the refit" if clock.refit else ""
        self.say(f"{names} not cross-validated: at the pace so far ({clock.done} folds), "
                 f"{'their' if len(left) > 1 else 'its'} folds{then} would end the run "
                 f"about {format_seconds(past)} past budget.timeout; the choice is made among "
                 f"the finalists cross-validated (and the probe)")

    def fold_seconds(self, trial: int) -> list[float]:
        """The training times of ``trial``'s folds, this run's and those an earlier run
        recorded."""
        return [done.seconds for (number, _), done in self.landed.items() if number == trial]

    def _recorded(self, job: FoldJob) -> bool:
        """Whether an earlier run recorded this fold, for this recipe and these images, and its
        model is still on disk (the delivery may need it)."""
        found = self.task.done.get((job.finalist.number, job.index))
        return found is not None and found.key == job.key and job.path.is_file()

    def _pooled(self, finalist: Finalist, folds: list[tuple[np.ndarray, np.ndarray]],
                landed: dict[tuple[int, int], FoldResult], y: np.ndarray) -> FinalistResult:
        predicted = np.zeros(len(y), np.int64)
        confusions = []
        for index, (_, held) in enumerate(folds):
            fold = np.asarray(landed[finalist.number, index].predicted)
            predicted[held] = fold
            confusions.append(_confusion(y[held], fold, self.data.n_classes))
        return FinalistResult(finalist.number, finalist.value, finalist.epochs, finalist.anchor,
                              np.sum(confusions, axis=0).tolist(), predicted.tolist(),
                              [score(c, self.objective) for c in confusions])

    def fold_results(self, jobs: list[FoldJob], folds: int,
                     claim: Callable[[FoldJob], bool]) -> Iterator[FoldResult]:
        """Each job's result that ``claim`` grants this process, trained here or by the fold
        workers, claimed as it is about to start (so that other processes share the rest);
        each said as it starts."""
        announced: set[int] = set()

        def started(job: FoldJob) -> None:
            f = job.finalist
            if f.number not in announced:  # one line a finalist; each fold says its score
                announced.add(f.number)
                label = f" (anchor, {f.epochs} epochs)" if f.anchor else ""
                self.say(f"trial {f.number}{label}: {folds} folds")

        if self.workers is None:
            for job in jobs:
                if claim(job):
                    started(job)
                    yield self.trainer.run(job)
        else:
            yield from self.workers.run(jobs, started, claim)
