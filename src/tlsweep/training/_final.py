"""The finalists' stage's process (see ``sweep._finalize``): TensorFlow lives here.

Everything it measures is stored as confusion matrices, so that intervals are computed where the
numbers are shown, with one method each (``measures``).
"""

from __future__ import annotations

import os
import shutil
import signal
import traceback
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import numpy as np

from tlsweep.config import TrialParams
from tlsweep.system import redirect_to_log
from tlsweep.training._choice import score
from tlsweep.training._final_probe import ProbeStage, _confusion
from tlsweep.training._worker import WorkerSpec
from tlsweep.training.protocol import FinalDone, FinalFailed, Progress

DELIVERED = "model.keras"


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
    from tlsweep.training._batches import eval_inputs
    from tlsweep.training._classifier import predict

    return np.concatenate([predict(model, eval_inputs(images[i:i + chunk], preprocess))
                           .argmax(axis=1) for i in range(0, len(images), chunk)])


class FinalRun(ProbeStage):
    def __init__(self, conn: Connection, task: FinalTask, dataset: Any) -> None:
        from tlsweep.training._warm import ModelPool

        self.conn, self.task, self.data = conn, task, dataset
        self.config = task.spec.sweep.config
        self.objective = self.config.objective
        self.pool = ModelPool(keep=True)
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
    def train_recipe(self, finalist: Finalist, x_train: np.ndarray, y_train: np.ndarray,
                     x_val: np.ndarray, y_val: np.ndarray) -> Any:
        """The finalist's recipe on other data: its parameters and seed, trained to its best
        epoch with nothing pruned. Returns the model at that epoch."""
        from tlsweep.datasets import Dataset
        from tlsweep.training._trial import TwoPhaseTrial

        dataset = Dataset(x_train, y_train, x_val, y_val, self.data.class_names, [])
        trial = TwoPhaseTrial(finalist.params, self.task.spec.backbones[finalist.params.backbone],
                              dataset, finalist.settings, _Silent(), pool=self.pool)
        trial.fit(0, finalist.epochs)
        return trial.model

    def train_and_val(self) -> tuple[np.ndarray, np.ndarray]:
        """Train and validation images together: what the folds split and the refit trains on."""
        return (np.concatenate([self.data.x_train, self.data.x_val]),
                np.concatenate([self.data.y_train, self.data.y_val]))

    def folds(self, labels: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        from sklearn.model_selection import StratifiedGroupKFold

        groups = np.arange(len(labels))
        report = self.data.duplicates
        if report is not None:  # copies of one picture stay in one fold
            offsets = {"train": 0, "val": len(self.data.y_train)}
            positions = {(split, path): offsets[split] + i for split in offsets
                         for i, path in enumerate(self.data.paths.get(split, []))}
            for group in report.groups:
                members = [positions[(m.split, m.path)] for m in group.members
                           if (m.split, m.path) in positions]
                groups[members] = min(members, default=0)
        # A tiny set may hold fewer groups than folds: sklearn refuses that outright.
        splits = max(2, min(self.task.folds, len(np.unique(groups))))
        splitter = StratifiedGroupKFold(splits, shuffle=True, random_state=self.config.seed)
        return list(splitter.split(labels, labels, groups))

    def cross_validate(self, finalists: list[Finalist]) -> list[dict[str, Any]]:
        from tlsweep.training.backbones import preprocessor

        x, y = self.train_and_val()
        folds = self.folds(y)
        # Held once, so every finalist trains on the same arrays: a warm worker's compiled
        # models and batches are found by array identity.
        parts = [(x[train], y[train], x[held], y[held]) for train, held in folds]
        results = []
        for finalist in finalists:
            pooled = np.zeros((self.data.n_classes,) * 2, np.int64)
            out_of_fold = np.zeros(len(y), np.int64)  # in train_and_val's order, for pairing
            scores: list[float] = []
            preprocess = preprocessor(self.task.spec.backbones[finalist.params.backbone])
            for index, ((x_tr, y_tr, x_held, y_held), (_, held)) in enumerate(
                    zip(parts, folds, strict=True)):
                label = f" (anchor, {finalist.epochs} epochs)" if finalist.anchor else ""
                self.say(f"trial {finalist.number}{label}: fold {index + 1}/{len(parts)}")
                model = self.train_recipe(finalist, x_tr, y_tr, x_held, y_held)
                out_of_fold[held] = predict_images(model, x_held, preprocess)
                confusion = _confusion(y_held, out_of_fold[held], self.data.n_classes)
                pooled += np.asarray(confusion)
                scores.append(score(confusion, self.objective))
                model.save(self.fold_path(finalist, index))
            results.append({"trial": finalist.number, "cv_confusion": pooled.tolist(),
                            "cv_predicted": out_of_fold.tolist(), "fold_scores": scores})
        return results

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
        return chosen, probe.chosen, f"{choice.reason}; {probe.reason}"

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
        x, y = self.train_and_val()
        self.train_recipe(chosen, x, y, self.data.x_val, self.data.y_val).save(target)
        return "refit", target

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
        delivered: dict[str, Any] = {"trial": number, "backbone": backbone, "kind": kind,
                                     "path": str(path) if path else None}
        if kind == "kept":  # a copy of the model scored above
            delivered["test_confusion"] = by_trial[chosen.number].get("test_confusion")
        elif path is not None and self.data.has_test:
            self.say("delivered model on the test set")
            delivered["test_confusion"] = self.test_confusion(
                keras.models.load_model(path, compile=False), backbone)
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


def final_main(conn: Connection, task: FinalTask) -> None:
    from tlsweep.training._worker import die_with_parent, setup_tensorflow

    redirect_to_log(task.spec.log, "final stage")  # before TensorFlow is imported
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the orchestrator's to handle
    die_with_parent()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        from tlsweep.datasets import load_dataset

        config = task.spec.sweep.config
        dataset = load_dataset(config.data, config.seed, task.spec.sweep.path)
        setup_tensorflow(config)
        conn.send(FinalDone(FinalRun(conn, task, dataset).run()))
    except Exception as exc:  # reported, never raised: the sweep itself is finished
        traceback.print_exc()  # into the study's log, which the orchestrator's message names
        conn.send(FinalFailed(f"{type(exc).__name__}: {exc}", traceback.format_exc()))
