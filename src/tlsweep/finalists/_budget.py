"""What the finalists' stage will cost, from what the search measured: so that
``budget.timeout`` can be the wall time of the whole run, the search stops while the time
left still holds the stage (``sweep.Deadline``). No TensorFlow.

The stage trains each finalist's recipe on every fold and, under ``finalists.deliver: refit``
unless the probe is delivered, refits one recipe on train+val; an epoch's cost is the search's
own, measured per phase (the head's epochs on cached features cost far less than
fine-tuning's) and scaled by the images each training passes over. Its probes, one per
backbone, are costed from the probe each trial's head starts from, which the search fitted and
timed. Its start-up and each model's build are rough constants.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

STAGE_START_S = 30.0  # the stage's process: TensorFlow's import, decoding, the probes' features
# How the stage's delivered model is made without training beyond its folds.
NO_REFIT = ("best_fold", "ensemble")
MODEL_OVERHEAD_S = 5.0  # building, tracing and saving one fold's (or the refit's) model


def cross_validates(config: Any, train_and_val: int) -> bool:
    """Whether the stage cross-validates its finalists (``finalists.reevaluate``)."""
    finalists = config.finalists
    if finalists.reevaluate != "auto":
        return finalists.reevaluate == "on"
    return train_and_val < finalists.small_data_images


@dataclass(frozen=True)
class EpochCosts:
    """Median seconds of one epoch per phase in the search's trials, on ``images`` training
    images; ``probe_s``: the longest a trial took to fit the probe its head starts from (one
    class weighting, C by cross-validation on the training images: ``training.probe_fits``), 0 when
    no trial fitted one."""

    head_s: float
    finetune_s: float
    images: int
    probe_s: float = 0.0

    @classmethod
    def measured(cls, curves: Iterable[list[dict[str, Any]]], images: int,
                 probes: Iterable[float] = ()) -> EpochCosts | None:
        """From the trials' curves (their epoch records) and their probes' seconds; None before
        any fine-tune epoch."""
        by_phase: dict[str, list[float]] = {"head": [], "finetune": []}
        for curve in curves:
            for record in curve:
                if record.get("duration_s") is not None and record.get("phase") in by_phase:
                    by_phase[record["phase"]].append(float(record["duration_s"]))
        if not by_phase["finetune"]:
            return None
        head = statistics.median(by_phase["head"]) if by_phase["head"] else 0.0
        return cls(head, statistics.median(by_phase["finetune"]), images,
                   max(probes, default=0.0))

    def probes_s(self, train_and_val: int, folds: int | None) -> float:
        """The stage's probes: the baseline on train, both weightings searched; with ``folds``,
        the search on train+val over the finalists' folds, its out-of-fold predictions and its
        refit (``_baselines.Baselines``). A fit's cost grows with the images it sees."""
        from tlsweep.training import probe_fits

        per_fit = self.probe_s / probe_fits()
        on_train = probe_fits(weightings=2)
        if folds is None:
            return per_fit * on_train
        return per_fit * (on_train + (probe_fits(folds, weightings=2) + folds) * train_and_val
                          / self.images)

    def recipe_s(self, head_epochs: int, finetune_epochs: int, images: int) -> float:
        per_image = (head_epochs * self.head_s + finetune_epochs * self.finetune_s) / self.images
        return MODEL_OVERHEAD_S + per_image * images


def stage_seconds(config: Any, costs: EpochCosts, train_and_val: int, searched: int,
                  cores: int, backbones: int = 1) -> float:
    """The stage's expected wall time with ``searched`` searched finalists (at most
    ``finalists.k``), each trained for the sweep's whole schedule (an upper bound: a finalist
    trains to its best epoch), a refit under ``finalists.deliver: refit``, and a probe per
    backbone searched."""
    from tlsweep.finalists._folds import fold_workers

    finalists, training = config.finalists, config.training
    if not cross_validates(config, train_and_val):
        return STAGE_START_S + backbones * costs.probes_s(train_and_val, None)
    fold_images = train_and_val * (finalists.folds - 1) // finalists.folds
    schedules = [(training.head_epochs, training.finetune_epochs)] * min(searched, finalists.k)
    if finalists.anchor is not None:
        schedules.append((finalists.anchor.head_epochs, finalists.anchor.finetune_epochs))
    start = STAGE_START_S + backbones * costs.probes_s(train_and_val, finalists.folds)
    if not schedules:
        return start
    fold_work = finalists.folds * sum(costs.recipe_s(h, f, fold_images) for h, f in schedules)
    workers, _ = fold_workers(finalists.fold_workers, cores, finalists.folds * len(schedules),
                              gpu=False)
    refit = 0.0 if finalists.deliver in NO_REFIT else \
        max(costs.recipe_s(h, f, train_and_val) for h, f in schedules)
    return start + fold_work / workers + refit
