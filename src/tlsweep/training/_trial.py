"""One two-phase Keras trial: head training on a frozen backbone, then partial fine-tuning.

The trial knows nothing of Optuna. It calls a ``Reporter`` after every epoch with one global step
that runs across both phases (head epochs 0..h-1, fine-tune epochs h..h+f-1); the reporter may raise
to stop the trial (that is how pruning reaches it).

Weights ``none`` means training from scratch: there are no statistics to keep, so the whole backbone
trains in both phases with BatchNorm in training mode, and ``unfreeze_depth`` has no effect. With
pretrained weights, a depth that unfreezes no layer skips phase 2 (nothing new would train).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tlsweep.config import TrialParams
from tlsweep.datasets import Dataset, class_weights
from tlsweep.training._batches import TrainingBatches
from tlsweep.training._checkpoint import CheckpointState, TrialCheckpoints
from tlsweep.training._classifier import freeze_for_head, predict, unfreeze_top, unfrozen_count
from tlsweep.training._epochs import (
    EpochTracker,
    Reporter,
    StopTrial,
    TrialResult,
    balanced_accuracy,
    confusion_matrix,
)
from tlsweep.training._warm import ModelPool, Structure, frozen_features
from tlsweep.training.backbones import Backbone, preprocessor

HEAD, FINETUNE = "head", "finetune"


@dataclass(frozen=True)
class TrialSettings:
    image_size: int
    head_epochs: int
    finetune_epochs: int
    batch_size: int
    dropout: float
    objective: str
    seed: int
    cache_features: bool = True
    jit_compile: bool = False
    augment_head: bool = True  # false: phase 1 always on cached features (LP-FT)
    head_init: str = "random"  # "probe": the head starts as the fitted linear probe
    probe_seed: int = 0  # the probe's cross-validation folds: the study's, shared by its trials


@dataclass(frozen=True)
class TrialTask:
    """One trial as the orchestrator hands it to a worker. The worker runs it without opening
    it: the parameters go from ``suggest`` (orchestrator) to this module, and nowhere between."""

    number: int
    params: TrialParams
    settings: TrialSettings
    checkpoint_dir: Path

    def run(self, backbones: dict[str, Backbone], dataset: Dataset, reporter: Reporter,
            pool: ModelPool | None = None) -> TrialResult:
        """Both phases, continuing after the last epoch saved in ``checkpoint_dir``."""
        return run_trial(self.params, backbones[self.params.backbone], dataset, self.settings,
                         reporter, TrialCheckpoints(self.checkpoint_dir), pool)


def _unchanged(x: Any) -> Any:
    return x


# ----------------------------------------------------------------------------- the trial
class TwoPhaseTrial:
    """One trial's model, data and curve. ``fit(start, stop)`` trains global steps
    start..stop-1, in whichever phases they fall: the head for steps below h, fine-tuning from h.
    Both engines drive it: Optuna's runner all steps at once (resuming from a checkpoint),
    keras-tuner's Hyperband in rounds, continuing a model whose weights it restored.

    With a ``pool`` (a warm worker's), models of the same structure are reused, reset for this
    trial; with ``cache_features``, phase 1 without augmentation trains the head on cached
    backbone features (see ``_warm``)."""

    def __init__(self, params: TrialParams, backbone: Backbone, dataset: Dataset,
                 settings: TrialSettings, reporter: Reporter,
                 checkpoints: TrialCheckpoints | None = None, seed_offset: int = 0,
                 pool: ModelPool | None = None) -> None:
        self.params, self.backbone, self.settings = params, backbone, settings
        self.dataset, self.checkpoints = dataset, checkpoints
        self.seed = settings.seed + seed_offset
        began = time.perf_counter()
        structure = Structure(backbone, settings.image_size, dataset.n_classes, settings.dropout)
        self.pool = pool or ModelPool(keep=False)
        self.warm, reused = self.pool.get(structure, self.seed)
        self.warm.reset(self.seed)
        self.model, self.base = self.warm.model, self.warm.base
        self.preprocess = preprocessor(backbone)
        self.weights = class_weights(dataset.y_train, dataset.n_classes, params.class_weighting)
        self.total_steps = settings.head_epochs + settings.finetune_epochs
        x_val = self.pool.eval_inputs(dataset.x_val, backbone.preprocessing, self.preprocess)
        self.tracker = EpochTracker(x_val, dataset.y_val,
                                    dataset.n_classes, settings.objective,
                                    reporter, self.total_steps, checkpoints, self.model)
        self.tracker.timings.reused_model = reused
        self.tracker.timings.build_s = time.perf_counter() - began
        # Without augmentation in phase 1 the backbone's pooled output is the same every epoch.
        self.on_features = (settings.cache_features and backbone.pretrained
                            and (params.augmentation_strength == 0 or not settings.augment_head))

    @property
    def has_finetune_phase(self) -> bool:
        """Whether phase 2 trains anything new (a depth that unfreezes no layer skips it)."""
        return self.settings.finetune_epochs > 0 and (
            not self.backbone.pretrained or unfrozen_count(self.base,
                                                           self.params.unfreeze_depth) > 0)

    @property
    def last_step(self) -> int:
        """One past the last step this trial trains."""
        return self.total_steps if self.has_finetune_phase else self.settings.head_epochs

    def evaluate(self) -> float:
        """The objective of the model as it is, on the validation data; no epoch recorded."""
        predicted = predict(self.model, self.tracker.x_val).argmax(axis=1)
        confusion = confusion_matrix(self.dataset.y_val, predicted, self.dataset.n_classes)
        if self.settings.objective == "val_balanced_accuracy":
            return balanced_accuracy(confusion)
        return float(np.mean(predicted == self.dataset.y_val))

    def fit(self, start: int, stop: int, callbacks: tuple[Any, ...] = (),
            restore: CheckpointState | None = None) -> TrialResult:
        """Train steps start..stop-1; ``restore`` reloads that checkpoint (weights, and the
        optimiser when it was saved in the same phase) before training on. Extra
        ``callbacks`` (keras-tuner's) see the whole classifier, so phase 1 then runs through
        the backbone."""
        h = self.settings.head_epochs
        stop = min(stop, self.last_step)
        try:
            if start < min(stop, h):
                self._head_phase(start, min(stop, h), callbacks, restore)
            if stop > h:
                unfrozen = unfreeze_top(self.base, self.params.unfreeze_depth,
                                        self.backbone.pretrained)
                batches = self.image_batches()
                trained, traced = self._compiled(("finetune", unfrozen), self.warm.share_layers,
                                                 batches, self.params.finetune_lr)
                if restore is not None and start >= h:
                    self.checkpoints.restore(  # type: ignore[union-attr]
                        self.model, with_optimizer=restore.phase == FINETUNE, trained=trained)
                self._fit_phase(trained, FINETUNE, max(start, h), stop, h, callbacks, traced,
                                batches)
            self.tracker.settle()
        except StopTrial as stopped:
            stopped.result = self.tracker.result()
            raise
        return self.tracker.result()

    def _head_phase(self, start: int, stop: int, callbacks: tuple[Any, ...],
                    restore: CheckpointState | None) -> None:
        freeze_for_head(self.base, self.backbone.pretrained)
        if start == 0 and restore is None and self.starts_from_probe:
            self._head_from_probe()
        on_features = self.on_features and not callbacks
        val_inputs = None
        if on_features:
            began = time.perf_counter()
            x_train, val_inputs = (frozen_features(self.warm, x, self.preprocess)
                                   for x in (self.dataset.x_train, self.dataset.x_val))
            self.tracker.timings.features_s += time.perf_counter() - began
            # Features need no augmentation (strength is 0) and no preprocessing.
            batches = self.pool.training_batches(x_train, self.dataset.y_train,
                                                 self.settings.batch_size, None, _unchanged)
            trained, traced = self._compiled("features", self.warm.features_head, batches,
                                             self.params.head_lr)
        else:
            batches = self.image_batches()
            trained, traced = self._compiled("head", self.warm.share_layers, batches,
                                             self.params.head_lr)
        if restore is not None:
            self.checkpoints.restore(self.model, with_optimizer=True,  # type: ignore[union-attr]
                                     trained=trained)
        self._fit_phase(trained, HEAD, start, stop, 0, callbacks, traced, batches, val_inputs)

    @property
    def starts_from_probe(self) -> bool:
        return self.settings.head_init == "probe" and self.backbone.pretrained

    def _head_from_probe(self) -> None:
        """The LP of LP-FT: the head starts as the logistic-regression probe on frozen
        features (regularised by cross-validation, with this trial's class weights), the model
        the study's baseline is; phase 1 then trains on from there at ``head_lr``."""
        began = time.perf_counter()
        features = frozen_features(self.warm, self.dataset.x_train, self.preprocess)
        # The probe's fit alone: the finalists' stage costs its probes from it.
        self.tracker.timings.features_s += time.perf_counter() - began
        began = time.perf_counter()
        kernel, bias = self.pool.probe_head(features, self.dataset.y_train, self.dataset.n_classes,
                                            self.weights, self.settings.objective,
                                            self.settings.probe_seed)
        head = self.model.get_layer("head")
        head.kernel.assign(kernel)
        head.bias.assign(bias)
        self.tracker.timings.probe_s += time.perf_counter() - began

    def _compiled(self, key: Any, make: Any, batches: TrainingBatches,
                  learning_rate: float) -> tuple[Any, bool]:
        began = time.perf_counter()
        trained, traced = self.warm.compiled(key, make, batches, learning_rate,
                                             self.settings.jit_compile)
        self.tracker.timings.compile_s += time.perf_counter() - began
        return trained, traced

    def image_batches(self) -> TrainingBatches:
        """The training images' batches (the worker's, shared by its trials)."""
        return self.pool.training_batches(self.dataset.x_train, self.dataset.y_train,
                                          self.settings.batch_size,
                                          self.backbone.preprocessing, self.preprocess)

    def _fit_phase(self, trained: Any, phase: str, start: int, stop: int, first_step: int,
                   callbacks: tuple[Any, ...], traced: bool, batches: TrainingBatches,
                   val_inputs: np.ndarray | None = None) -> None:
        # Keyed by the trial's own seed, not the resumed one: a resumed trial sees the
        # batches it would have seen. Epoch keys are global steps, across both phases.
        strength = self.params.augmentation_strength
        batches.start(strength, self.settings.seed, start, self.weights)
        # initial_epoch keeps the global step running on: a second fit never restarts at 0.
        trained.fit(batches.steps(), epochs=stop, initial_epoch=start,
                    steps_per_epoch=batches.steps_per_epoch, verbose=0, shuffle=False,
                    callbacks=[self.tracker.callback(phase, first_step, traced, val_inputs),
                               *callbacks])


def run_trial(params: TrialParams, backbone: Backbone, dataset: Dataset,
              settings: TrialSettings, reporter: Reporter,
              checkpoints: TrialCheckpoints | None = None,
              pool: ModelPool | None = None) -> TrialResult:
    """Run both phases; with ``checkpoints`` holding a saved epoch, continue after it."""
    resume = checkpoints.latest() if checkpoints is not None else None
    start = resume.step + 1 if resume else 0
    trial = TwoPhaseTrial(params, backbone, dataset, settings, reporter, checkpoints,
                          seed_offset=start, pool=pool)
    if resume is not None:
        trial.tracker.resume_from(resume)
    return trial.fit(start, trial.total_steps, restore=resume)
