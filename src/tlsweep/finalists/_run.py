"""The finalists' stage's process (see ``_stage``): TensorFlow lives here.

Each fold is sent to the orchestrator as it lands, which records it in the study; a stage that
starts again (after a kill, a crash or Ctrl-C) is handed the folds recorded so far and trains
only the others. Everything it measures is kept as confusion matrices (``_records``).
"""

from __future__ import annotations

import contextlib
import shutil
import time
import traceback
from collections.abc import Iterator
from dataclasses import replace
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import numpy as np

from tlsweep.finalists._baselines import Baselines, _confusion
from tlsweep.finalists._crossval import FoldWork, refit_in_folds
from tlsweep.finalists._folds import FoldWorkers, RecipeTrainer, fold_workers, predict_images
from tlsweep.finalists._protocol import (
    FinalDone,
    FinalFailed,
    Finalist,
    FinalTask,
    HelperDone,
    Progress,
)
from tlsweep.finalists._records import (
    BaselineResult,
    DeliveredModel,
    FinalistResult,
    FinalReport,
    SplitSizes,
)
from tlsweep.system import format_seconds

FINAL_DIR = "final"  # in the study's results folder: the delivered model and fold models
DELIVERED = "model.keras"  # the delivered model, in FINAL_DIR


CV_METHOD = ("{folds}-fold stratified cross-validation over train+val ({n} images; copies kept "
             "in one fold), each searched trial's recipe trained to its best epoch{anchor}; "
             "pooled out-of-fold predictions")
ANCHOR_METHOD = (", the anchor recipe (trial {number}) for its whole schedule of {epochs} epochs, "
                 "the head started as the probe")


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


class FinalRun:
    def __init__(self, conn: Connection, task: FinalTask, dataset: Any,
                 workers: FoldWorkers | None = None) -> None:
        from tlsweep.training import ModelPool

        self.conn, self.task, self.data, self.workers = conn, task, dataset, workers
        self.config = task.spec.sweep.config
        self.objective = self.config.objective
        self.pool = ModelPool(keep=True)
        self.trainer = RecipeTrainer(task.spec, dataset, self.pool)
        self.cv = FoldWork(conn, task, dataset, self.trainer, workers, self.say)
        self.probes = Baselines(task, dataset, self.pool, self.say, self.cv.folds)
        # Each finalist's result, by trial: the stage's answer, and where the fold scores that
        # choose a best fold are read from.
        self.by_trial: dict[int, FinalistResult] = {}
        # Where the stage's time goes, for the report: probes, folds, choice and delivery.
        self.phase_seconds: dict[str, float] = {}
        task.out_dir.mkdir(parents=True, exist_ok=True)
        task.folds_saved_in.mkdir(parents=True, exist_ok=True)

    def say(self, text: str) -> None:
        self.conn.send(Progress(text))

    def test_confusion(self, model: Any, backbone: str) -> list[list[int]] | None:
        from tlsweep.training.backbones import preprocessor

        if not self.data.has_test:
            return None
        preprocess = preprocessor(self.task.spec.backbones[backbone])
        return _confusion(self.data.y_test, predict_images(model, self.data.x_test, preprocess),
                          self.data.n_classes)

    def help(self) -> int:
        """A helper's whole stage: the folds it can claim, trained; how many."""
        with self.phase("folds"):
            self.cv.train_folds(self.cv.fold_plan(self.task.finalists))
        return self.cv.trained

    def choose(self, finalists: list[Finalist], baselines: list[BaselineResult]) -> tuple[
            Finalist, str | None, str]:
        """(the finalist chosen on the folds, the probe's backbone when the probe displaces
        it, why); each choice said with its paired gap (``_choice``)."""
        from tlsweep.finalists._choice import choose_finalist, probe_challenge

        labels = np.concatenate([self.data.y_train, self.data.y_val])  # train_and_val's order
        config = self.config.finalists
        anchor = next((f.number for f in finalists if f.anchor), None)
        rows = {n: r for n, r in self.by_trial.items() if r.cv_predicted is not None}
        choice = choose_finalist(rows, anchor, labels, self.objective, config.margin_se,
                                 self.config.seed)
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
        return self.cv.fold_path(finalist, index)

    def fold_paths(self, finalist: Finalist) -> list[Path]:
        """This run's fold models of ``finalist`` (not a glob: a stage run before with more folds
        may have left more)."""
        scores = self.by_trial[finalist.number].fold_scores
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
            scores = self.by_trial[chosen.number].fold_scores
            best = self.fold_path(chosen, int(np.argmax(scores)))
            shutil.copyfile(best, target)
            return "best_fold", target
        past = self.refit_past_budget(chosen) if self.task.deliver == "refit" else None
        if past is not None:
            self.say(f"trial {chosen.number}: not refit on train+val: at its folds' pace the "
                     f"refit would end the run about {format_seconds(past)} past "
                     f"budget.timeout, so its fold models are averaged instead")
        if self.task.deliver == "ensemble" or past is not None:
            self.say(f"trial {chosen.number}: the {len(self.fold_paths(chosen))} fold models "
                     "averaged")
            fold_ensemble(self.fold_paths(chosen)).save(target)
            return "ensemble", target
        self.say(f"trial {chosen.number}: refit on train+val")
        x, y = self.trainer.train_and_val
        self.trainer.train(chosen, x, y, self.data.x_val, self.data.y_val).save(target)
        return "refit", target

    def refit_past_budget(self, chosen: Finalist) -> float | None:
        """Seconds past budget.timeout at which a refit of ``chosen`` would end, taking its
        folds' mean time scaled to all of train+val; None when it fits or nothing says. Folds
        trained side by side each took longer than one alone: this errs towards the average."""
        seconds = self.cv.fold_seconds(chosen.number)
        if self.task.deadline is None or not seconds:
            return None
        refit = float(np.mean(seconds)) * refit_in_folds(len(self.fold_paths(chosen)))
        past = time.monotonic() + refit - self.task.deadline
        return past if past > 0 else None

    def headline(self, cv_confusion: list[list[int]] | None,
                 test: list[list[int]] | None) -> Any:
        """A model's one estimate (``measures.pooled_headline``): the model on the test split;
        without one, its recipe's out-of-fold predictions on train+val. The delivered model's
        is the headline; the probe's, on the same images, what it is compared with. The suite
        chose the test split over out-of-fold predictions and over both pooled (``measures.
        _headline``)."""
        from tlsweep.measures import pooled_headline

        if test is not None:
            return pooled_headline([(test, f"the model on {len(self.data.y_test)} test "
                                           "images")], self.objective)
        if self.task.reevaluate and cv_confusion is not None:
            n = len(self.data.y_train) + len(self.data.y_val)
            return pooled_headline([(cv_confusion, f"its recipe's {self.task.folds}-fold "
                                                   f"out-of-fold predictions on {n} train+val "
                                                   "images")], self.objective)
        return None

    def method(self) -> str | None:
        if not self.task.reevaluate:
            return None
        n = len(self.data.y_train) + len(self.data.y_val)
        anchor = "".join(ANCHOR_METHOD.format(number=f.number, epochs=f.epochs)
                         for f in self.task.finalists if f.anchor)
        return CV_METHOD.format(folds=self.task.folds, n=n, anchor=anchor)

    def test_kept_models(self) -> None:
        import keras

        for finalist in self.task.finalists:
            if finalist.kept_model is not None and self.data.has_test:
                self.say(f"trial {finalist.number}: kept model on the test set")
                model = keras.models.load_model(finalist.kept_model, compile=False)
                self.by_trial[finalist.number] = replace(
                    self.by_trial[finalist.number],
                    test_confusion=self.test_confusion(model, finalist.params.backbone))

    def delivered(self, chosen: Finalist, probe: str | None,
                  baselines: list[BaselineResult]) -> DeliveredModel:
        import keras

        began = time.monotonic()
        kind, path = (self.probes.deliver_probe(probe, self.task.out_dir / DELIVERED) if probe
                      else self.deliver(chosen))
        seconds = time.monotonic() - began
        backbone = probe or chosen.params.backbone
        test = None
        if kind == "kept":  # a copy of the model scored above
            test = self.by_trial[chosen.number].test_confusion
        elif path is not None and self.data.has_test:
            self.say("delivered model on the test set")
            test = self.test_confusion(keras.models.load_model(path, compile=False), backbone)
        source = next(b for b in baselines if b.backbone == probe) if probe \
            else self.by_trial[chosen.number]
        # Absolute: a path relative to the folder the run started in named nothing from any
        # other folder (issue 38). Readers look in the study's own FINAL_DIR first, so a
        # results folder moved elsewhere still finds its model.
        return DeliveredModel(None if probe else chosen.number, backbone, kind,
                              str(path.resolve()) if path else None, test,
                              self.headline(source.cv_confusion, test), seconds)

    def run(self) -> FinalReport:
        finalists = self.task.finalists
        with self.phase("probes"):
            baselines = self.probes.fit()
        self.by_trial = {f.number: FinalistResult(f.number, f.value, f.epochs, f.anchor)
                         for f in finalists}
        if self.task.reevaluate:
            with self.phase("folds"):
                self.by_trial.update(self.cv.cross_validate(finalists))
            chosen, probe, reason = self.choose(finalists, baselines)
        else:
            chosen, probe, reason = finalists[0], None, None
        with self.phase("kept_models_test"):
            self.test_kept_models()
        with self.phase("delivery"):
            delivered = self.delivered(chosen, probe, baselines)
        baselines = [replace(b, headline=self.headline(b.cv_confusion, b.test_confusion))
                     for b in baselines]
        kept = self.fold_paths(chosen) if self.task.reevaluate and not probe else []
        # Only the chosen's stay, to be inspected; also any other finalist's, or an earlier
        # run's ("trial-N-best-fold.keras" before fold models were all kept).
        for stale in self.task.folds_saved_in.glob("trial-*-*fold*.keras"):
            if stale not in kept:
                stale.unlink()
        return FinalReport(
            self.objective, self.task.reevaluate, self.method(), baselines,
            list(self.by_trial.values()), None if probe else chosen.number, reason, delivered,
            SplitSizes(len(self.data.y_train), len(self.data.y_val),
                       len(self.data.y_test) if self.data.has_test else 0),
            phase_seconds=self.phase_seconds, cut=self.cv.cut_finalists)

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        began = time.monotonic()
        yield
        self.phase_seconds[name] = round(time.monotonic() - began, 1)


def start_fold_workers(task: FinalTask) -> FoldWorkers | None:
    """The fold workers ``finalists.fold_workers`` asks for on this machine, started; None when
    the stage's process trains the folds itself."""
    from tlsweep.system import usable_cores
    from tlsweep.training import gpu_capabilities

    jobs = len(task.finalists) * task.folds - len(task.done) if task.reevaluate else 0
    workers, threads = fold_workers(task.spec.sweep.config.finalists.fold_workers,
                                    usable_cores(), max(jobs, 0), bool(gpu_capabilities()))
    return FoldWorkers(task.spec, workers, threads) if workers > 1 else None


def final_main(conn: Connection, task: FinalTask) -> None:
    from tlsweep.training import enter_subprocess, setup_tensorflow

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
            stage = FinalRun(conn, task, dataset, workers)
            done = HelperDone(stage.help()) if task.role == "helper" else FinalDone(stage.run())
        # Sent once the workers are joined: the orchestrator ends this process on this message.
        conn.send(done)
    except Exception as exc:  # reported, never raised: the sweep itself is finished
        traceback.print_exc()  # into the study's log, which the orchestrator's message names
        conn.send(FinalFailed(f"{type(exc).__name__}: {exc}", traceback.format_exc()))
