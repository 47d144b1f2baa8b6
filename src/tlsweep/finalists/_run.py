"""The finalists' stage's process (see ``sweep._finalize``): TensorFlow lives here.

Everything it measures is stored as confusion matrices, so that intervals are computed where the
numbers are shown, with one method each (``measures``).
"""

from __future__ import annotations

import contextlib
import shutil
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import numpy as np

from tlsweep.config import TrialParams
from tlsweep.system import format_seconds
from tlsweep.training._choice import score
from tlsweep.training._final_probe import ProbeStage, _confusion
from tlsweep.training._folds import FoldWorkers, RecipeTrainer, fold_workers, predict_images
from tlsweep.training._worker import WorkerSpec
from tlsweep.training.protocol import FinalDone, FinalFailed, FoldDone, FoldJob, Progress

FINAL_DIR = "final"  # in the study's results folder: the delivered model and fold models
DELIVERED = "model.keras"  # the delivered model, in FINAL_DIR


@dataclass(frozen=True)
class Finalist:
    number: int
    params: TrialParams
    value: float
    epochs: int  # the recipe trains global steps 0..epochs-1: up to its best epoch
    settings: Any  # trial.TrialSettings
    kept_model: Path | None  # the trial's own best-epoch model, when kept
    anchor: bool = False  # the anchor recipe (``finalists.anchor``), trained for its schedule


@dataclass(frozen=True)
class FinalTask:
    spec: WorkerSpec
    finalists: list[Finalist]
    reevaluate: bool
    folds: int
    deliver: str
    out_dir: Path


CV_METHOD = ("{folds}-fold stratified cross-validation over train+val ({n} images; copies kept "
             "in one fold), each searched trial's recipe trained to its best epoch{anchor}; "
             "pooled out-of-fold predictions")
ANCHOR_METHOD = (", the anchor recipe (trial {number}) for its whole schedule of {epochs} epochs, "
                 "the head started as the probe")


def fold_model_path(out_dir: Path, trial: int, index: int) -> Path:
    """Where the stage saves finalist ``trial``'s model of fold ``index`` (0-based)."""
    return out_dir / f"trial-{trial}-fold-{index + 1}.keras"


def fold_ensemble(paths: list[Path]) -> Any:
    """One model that averages the class probabilities of the fold models at ``paths`` (each
    saw (folds-1)/folds of train+val, together all of it): bagging, as AutoGluon delivers its
    k-fold models, with no training beyond the cross-validation's."""
    import keras

    members = []
    for index, path in enumerate(paths):
        member = keras.models.load_model(path, compile=False)
        # Each member needs its own name inside the ensemble (they were all saved under one).
        members.append(keras.Model(member.input, member.output, name=f"fold_{index + 1}"))
    inputs = keras.Input(shape=members[0].input.shape[1:], name="image")
    outputs = keras.layers.Average(name="mean_probability", dtype="float32")(
        [member(inputs) for member in members])
    return keras.Model(inputs, outputs, name="fold_ensemble")


class _FoldClock:
    """How far the folds are, and when they will end at the pace so far (workers included:
    the pace is folds landed per second of the stage, however many train at once)."""

    def __init__(self, total: int) -> None:
        self.total, self.done, self.began = total, 0, time.monotonic()

    def landed(self) -> str:
        self.done += 1
        elapsed = time.monotonic() - self.began
        left = elapsed / self.done * (self.total - self.done)
        return (f"{self.done} of {self.total} folds in {format_seconds(elapsed)}"
                + (f", about {format_seconds(left)} left" if self.done < self.total else ""))


class FinalRun(ProbeStage):
    def __init__(self, conn: Connection, task: FinalTask, dataset: Any,
                 workers: FoldWorkers | None = None) -> None:
        from tlsweep.training._warm import ModelPool

        self.conn, self.task, self.data, self.workers = conn, task, dataset, workers
        self.config = task.spec.sweep.config
        self.objective = self.config.objective
        self.pool = ModelPool(keep=True)
        self.trainer = RecipeTrainer(task.spec, dataset, self.pool)
        self.refit_probes = {}
        # Each finalist's report, trial by trial: the stage's answer, and where the fold scores
        # that choose a best fold are read from.
        self.by_trial: dict[int, dict[str, Any]] = {}
        task.out_dir.mkdir(parents=True, exist_ok=True)

    def say(self, text: str) -> None:
        self.conn.send(Progress(text))

    def test_confusion(self, model: Any, backbone: str) -> list[list[int]] | None:
        from tlsweep.training.backbones import preprocessor

        if not self.data.has_test:
            return None
        preprocess = preprocessor(self.task.spec.backbones[backbone])
        return _confusion(self.data.y_test, predict_images(model, self.data.x_test, preprocess),
                          self.data.n_classes)

    # ------------------------------------------------------------------ recipes
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
        splitter = StratifiedGroupKFold(splits, shuffle=True, random_state=self.config.seed)
        return list(splitter.split(labels, labels, groups))

    def cross_validate(self, finalists: list[Finalist]) -> list[dict[str, Any]]:
        """Every finalist on every fold, in this process or over fold workers (``_folds``);
        pooled out-of-fold predictions, in train+val's order (for pairing)."""
        y = np.concatenate([self.data.y_train, self.data.y_val])  # train_and_val's order
        folds = self.folds(y)
        jobs = [FoldJob(f, index, train, held, self.fold_path(f, index))
                for f in finalists for index, (train, held) in enumerate(folds)]
        predicted = {f.number: np.zeros(len(y), np.int64) for f in finalists}
        confusion: dict[tuple[int, int], list[list[int]]] = {}  # (trial, fold): as each lands
        clock = _FoldClock(len(jobs))
        for done in self.fold_results(jobs, len(folds)):
            held = folds[done.index][1]
            predicted[done.trial][held] = done.predicted
            landed = _confusion(y[held], np.asarray(done.predicted), self.data.n_classes)
            confusion[done.trial, done.index] = landed
            self.say(f"trial {done.trial}: fold {done.index + 1}/{len(folds)} scored "
                     f"{score(landed, self.objective):.3f} ({self.objective}); "
                     f"{clock.landed()}")
        results = []
        for finalist in finalists:
            confusions = [confusion[finalist.number, index] for index in range(len(folds))]
            results.append({"trial": finalist.number,
                            "cv_confusion": np.sum(confusions, axis=0).tolist(),
                            "cv_predicted": predicted[finalist.number].tolist(),
                            "fold_scores": [score(c, self.objective) for c in confusions]})
        return results

    def fold_results(self, jobs: list[FoldJob], folds: int) -> Iterator[FoldDone]:
        """Each job's result, trained here or by the fold workers; each said as it starts."""

        def started(job: FoldJob) -> None:
            if job.index == 0:  # one line a finalist; each fold says its score as it lands
                f = job.finalist
                label = f" (anchor, {f.epochs} epochs)" if f.anchor else ""
                self.say(f"trial {f.number}{label}: {folds} folds")

        if self.workers is None:
            for job in jobs:
                started(job)
                yield self.trainer.run(job)
        else:
            yield from self.workers.run(jobs, started)

    def choose(self, finalists: list[Finalist], baselines: list[dict[str, Any]]) -> tuple[
            Finalist, str | None, str]:
        """(the finalist chosen on the folds, the probe's backbone when the probe displaces
        it, why); each choice said with its paired gap (``_choice``)."""
        from tlsweep.training._choice import choose_finalist, probe_challenge

        labels = np.concatenate([self.data.y_train, self.data.y_val])  # train_and_val's order
        config = self.config.finalists
        anchor = next((f.number for f in finalists if f.anchor), None)
        choice = choose_finalist(self.by_trial, anchor, labels, self.objective,
                                 config.margin_se, self.config.seed)
        self.say(choice.reason)
        chosen = next(f for f in finalists if f.number == choice.chosen)
        probe = probe_challenge(baselines, self.by_trial[chosen.number], labels,
                                self.objective, config.margin_se, self.config.seed) \
            if config.probe_competes else None
        if probe is None:
            return chosen, None, choice.reason
        self.say(probe.reason)
        return chosen, probe.chosen, f"{choice.reason}; {probe.reason}"  # chosen None: kept

    def fold_path(self, finalist: Finalist, index: int) -> Path:
        return fold_model_path(self.task.out_dir, finalist.number, index)

    def fold_paths(self, finalist: Finalist) -> list[Path]:
        """This run's fold models of ``finalist`` (not a glob: a stage run before with more folds
        may have left more)."""
        scores = self.by_trial[finalist.number]["fold_scores"]
        return [self.fold_path(finalist, i) for i in range(len(scores))]

    # ------------------------------------------------------------------ the answer
    def deliver(self, chosen: Finalist) -> tuple[str, Path | None]:
        """(how the delivered model was made, where it is)."""
        target = self.task.out_dir / DELIVERED
        if not self.task.reevaluate:
            if chosen.kept_model is None:
                return "none", None
            shutil.copyfile(chosen.kept_model, target)
            return "kept", target
        if self.task.deliver == "best_fold":
            scores = self.by_trial[chosen.number]["fold_scores"]
            best = self.fold_path(chosen, int(np.argmax(scores)))
            shutil.copyfile(best, target)
            return "best_fold", target
        if self.task.deliver == "ensemble":
            self.say(f"trial {chosen.number}: the {len(self.fold_paths(chosen))} fold models "
                     "averaged")
            fold_ensemble(self.fold_paths(chosen)).save(target)
            return "ensemble", target
        self.say(f"trial {chosen.number}: refit on train+val")
        x, y = self.trainer.train_and_val
        self.trainer.train(chosen, x, y, self.data.x_val, self.data.y_val).save(target)
        return "refit", target

    def headline(self, cv_confusion: list[list[int]] | None,
                 test: list[list[int]] | None) -> dict[str, Any] | None:
        """A model's one estimate (``measures.pooled_headline``): its recipe's pooled
        out-of-fold predictions on train+val, when cross-validated, with the model's own on the
        test split. The delivered model's is the headline; the probe's, on the same images,
        what it is compared with."""
        from tlsweep.measures import pooled_headline

        parts = []
        if self.task.reevaluate and cv_confusion is not None:
            n = len(self.data.y_train) + len(self.data.y_val)
            parts.append((cv_confusion, f"its recipe's {self.task.folds}-fold out-of-fold "
                                        f"predictions on {n} train+val images"))
        if test is not None:
            parts.append((test, f"the model on {len(self.data.y_test)} test images"))
        found = pooled_headline(parts, self.objective)
        return found.as_dict() if found else None

    def run(self) -> dict[str, Any]:
        import keras

        finalists = self.task.finalists
        baselines = self.baselines()
        by_trial = self.by_trial
        by_trial.update({f.number: {"trial": f.number, "value": f.value, "epochs": f.epochs,
                                    "anchor": f.anchor} for f in finalists})
        method = None
        if self.task.reevaluate:
            n = len(self.data.y_train) + len(self.data.y_val)
            anchor = "".join(ANCHOR_METHOD.format(number=f.number, epochs=f.epochs)
                             for f in finalists if f.anchor)
            method = CV_METHOD.format(folds=self.task.folds, n=n, anchor=anchor)
            for result in self.cross_validate(finalists):
                by_trial[result["trial"]].update(result)
            chosen, probe, reason = self.choose(finalists, baselines)
        else:
            chosen, probe, reason = finalists[0], None, None
        for finalist in finalists:
            if finalist.kept_model is not None and self.data.has_test:
                self.say(f"trial {finalist.number}: kept model on the test set")
                model = keras.models.load_model(finalist.kept_model, compile=False)
                by_trial[finalist.number]["test_confusion"] = self.test_confusion(
                    model, finalist.params.backbone)
        kind, path = (self.deliver_probe(probe, self.task.out_dir / DELIVERED) if probe
                      else self.deliver(chosen))
        number = None if probe else chosen.number
        backbone = probe or chosen.params.backbone
        # Absolute: a path relative to the folder the run started in named nothing from any
        # other folder (issue 38). Readers look in the study's own FINAL_DIR first, so a results
        # folder moved elsewhere still finds its model.
        delivered: dict[str, Any] = {"trial": number, "backbone": backbone, "kind": kind,
                                     "path": str(path.resolve()) if path else None}
        if kind == "kept":  # a copy of the model scored above
            delivered["test_confusion"] = by_trial[chosen.number].get("test_confusion")
        elif path is not None and self.data.has_test:
            self.say("delivered model on the test set")
            delivered["test_confusion"] = self.test_confusion(
                keras.models.load_model(path, compile=False), backbone)
        source = next(b for b in baselines if b["backbone"] == probe) if probe \
            else by_trial.get(chosen.number, {})
        delivered["headline"] = self.headline(source.get("cv_confusion"),
                                              delivered.get("test_confusion"))
        for baseline in baselines:
            baseline["headline"] = self.headline(baseline.get("cv_confusion"),
                                                 baseline.get("test_confusion"))
        kept = self.fold_paths(chosen) if self.task.reevaluate and not probe else []
        # Only the chosen's stay, to be inspected; also any other finalist's, or an earlier
        # run's ("trial-N-best-fold.keras" before fold models were all kept).
        for stale in self.task.out_dir.glob("trial-*-*fold*.keras"):
            if stale not in kept:
                stale.unlink()
        return {"objective": self.objective, "reevaluated": self.task.reevaluate,
                "method": method, "baseline": baselines,
                "finalists": list(by_trial.values()), "chosen": number,
                "choice": reason,
                "delivered": delivered,
                "n": {"train": len(self.data.y_train), "val": len(self.data.y_val),
                      "test": len(self.data.y_test) if self.data.has_test else 0}}


def start_fold_workers(task: FinalTask) -> FoldWorkers | None:
    """The fold workers ``finalists.fold_workers`` asks for on this machine, started; None when
    the stage's process trains the folds itself."""
    from tlsweep.system import usable_cores
    from tlsweep.training._worker import _gpu_capabilities

    jobs = len(task.finalists) * task.folds if task.reevaluate else 0
    workers, threads = fold_workers(task.spec.sweep.config.finalists.fold_workers,
                                    usable_cores(), jobs, bool(_gpu_capabilities()))
    return FoldWorkers(task.spec, workers, threads) if workers > 1 else None


def final_main(conn: Connection, task: FinalTask) -> None:
    from tlsweep.training._worker import enter_subprocess, setup_tensorflow

    enter_subprocess(task.spec.log, "final stage")
    try:
        from tlsweep.datasets import load_dataset

        config = task.spec.sweep.config
        dataset = load_dataset(config.data, config.seed, task.spec.sweep.path)
        setup_tensorflow(config)
        workers = start_fold_workers(task)
        with workers or contextlib.nullcontext():
            if workers is not None:
                conn.send(Progress(f"folds trained by {workers.workers} workers, "
                                   f"{workers.threads} CPU thread(s) each"))
            report = FinalRun(conn, task, dataset, workers).run()
        # Sent once the workers are joined: the orchestrator ends this process on this message.
        conn.send(FinalDone(report))
    except Exception as exc:  # reported, never raised: the sweep itself is finished
        traceback.print_exc()  # into the study's log, which the orchestrator's message names
        conn.send(FinalFailed(f"{type(exc).__name__}: {exc}", traceback.format_exc()))
