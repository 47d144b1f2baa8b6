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
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import numpy as np

from tlsweep.backbones import Backbone, build, preprocessor
from tlsweep.checkpoint import CheckpointState, TrialCheckpoints
from tlsweep.data import Dataset, class_weights, eval_inputs, train_pipeline
from tlsweep.space import TrialParams

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


@dataclass
class EpochRecord:
    phase: str
    epoch: int  # within its phase
    step: int  # global, across both phases
    loss: float
    accuracy: float
    val_loss: float
    val_accuracy: float
    val_balanced_accuracy: float
    lr: float
    duration_s: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class TrialResult:
    value: float
    best_step: int
    best_phase: str
    val_accuracy: float
    val_balanced_accuracy: float
    train_accuracy: float
    epochs_run: int
    confusion: list[list[int]]  # at the best epoch; rows: true class, columns: predicted
    curve: list[EpochRecord] = field(default_factory=list)
    model: Any = field(default=None, repr=False)  # the trained Keras model, in-process only


class StopTrial(Exception):
    """Raised by a reporter to end a trial early: ``pruned`` or ``interrupted``."""

    def __init__(self, reason: str, step: int) -> None:
        super().__init__(f"{reason} at step {step}")
        self.reason, self.step = reason, step
        self.result: TrialResult | None = None  # what the trial reached before it stopped


class Reporter(Protocol):
    def epoch_started(self, phase: str, step: int, total_steps: int) -> None: ...

    def epoch_finished(self, record: EpochRecord) -> None:
        """Called after every epoch; may raise to stop the trial (pruning)."""


# ----------------------------------------------------------------------------- metrics
def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    return np.bincount(y_true * n_classes + y_pred, minlength=n_classes**2).reshape(
        n_classes, n_classes)


def balanced_accuracy(confusion: np.ndarray) -> float:
    support = confusion.sum(axis=1)
    present = support > 0
    return float(np.mean(np.diag(confusion)[present] / support[present]))


# ----------------------------------------------------------------------------- model
def build_classifier(backbone: Backbone, image_size: int, n_classes: int,
                     dropout: float) -> tuple[Any, Any]:
    """(classifier, backbone model). A pretrained backbone always runs in inference mode, so
    BatchNorm keeps its statistics even when its neighbours are unfrozen."""
    import keras

    base = build(backbone, image_size)
    inputs = keras.Input((image_size, image_size, 3))
    features = base(inputs, training=False) if backbone.pretrained else base(inputs)
    if len(features.shape) == 4:
        features = keras.layers.GlobalAveragePooling2D(name="pool")(features)
    features = keras.layers.Dropout(dropout, name="head_dropout")(features)
    outputs = keras.layers.Dense(n_classes, activation="softmax", dtype="float32",
                                 name="head")(features)
    return keras.Model(inputs, outputs, name=f"tlsweep_{backbone.name}"), base


def backbone_layers(base: Any) -> list[Any]:
    import keras

    return [layer for layer in base.layers if not isinstance(layer, keras.layers.InputLayer)]


def freeze_for_head(base: Any, pretrained: bool) -> None:
    base.trainable = not pretrained


def unfreeze_top(base: Any, depth: float, pretrained: bool) -> int:
    """Unfreeze the top ``depth`` fraction of backbone layers; BatchNorm stays frozen when
    pretrained. Returns how many layers were unfrozen."""
    import keras

    if not pretrained:
        base.trainable = True
        return len(backbone_layers(base))
    layers = backbone_layers(base)
    n_top = round(depth * len(layers))
    base.trainable = n_top > 0
    for index, layer in enumerate(layers):
        in_top = index >= len(layers) - n_top
        layer.trainable = in_top and not isinstance(layer, keras.layers.BatchNormalization)
    return n_top


def compile_for(model: Any, learning_rate: float) -> None:
    import keras

    model.compile(optimizer=keras.optimizers.Adam(learning_rate),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"],
                  jit_compile=False)  # measured 2-3x slower on CPU


# ----------------------------------------------------------------------------- epochs
class EpochTracker:
    """Evaluates on validation data after each epoch, keeps the curve and the best epoch."""

    def __init__(self, x_val: np.ndarray, y_val: np.ndarray, n_classes: int, batch_size: int,
                 objective: str, reporter: Reporter, total_steps: int,
                 checkpoints: TrialCheckpoints | None = None) -> None:
        self.x_val, self.y_val, self.n_classes = x_val, y_val, n_classes
        self.batch_size, self.objective, self.reporter = batch_size, objective, reporter
        self.total_steps, self.checkpoints = total_steps, checkpoints
        self.curve: list[EpochRecord] = []
        self.best: tuple[EpochRecord, np.ndarray] | None = None
        self.model: Any = None

    def resume_from(self, state: CheckpointState) -> None:
        self.curve = [EpochRecord(**record) for record in state.curve]
        best = next(r for r in self.curve if r.step == state.best_step)
        self.best = (best, np.asarray(state.best_confusion))

    def callback(self, phase: str, first_step: int) -> Any:
        import keras

        tracker = self

        class _Callback(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
                self.started = time.perf_counter()
                tracker.reporter.epoch_started(phase, epoch, tracker.total_steps)

            def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
                tracker.finish_epoch(self.model, phase, epoch - first_step, epoch,
                                     logs if logs is not None else {},
                                     time.perf_counter() - self.started)

        return _Callback()

    def finish_epoch(self, model: Any, phase: str, epoch: int, step: int, logs: dict,
                     duration: float) -> None:
        probs = model.predict(self.x_val, batch_size=self.batch_size, verbose=0)
        predicted = probs.argmax(axis=1)
        confusion = confusion_matrix(self.y_val, predicted, self.n_classes)
        picked = probs[np.arange(len(self.y_val)), self.y_val]
        record = EpochRecord(
            phase=phase, epoch=epoch, step=step,
            loss=float(logs.get("loss", np.nan)), accuracy=float(logs.get("accuracy", np.nan)),
            val_loss=float(-np.mean(np.log(np.clip(picked, 1e-7, 1.0)))),
            val_accuracy=float(np.mean(predicted == self.y_val)),
            val_balanced_accuracy=balanced_accuracy(confusion),
            lr=float(np.asarray(model.optimizer.learning_rate)), duration_s=duration)
        # Later callbacks (keras-tuner's) read validation metrics from the epoch's logs.
        logs.update(val_loss=record.val_loss, val_accuracy=record.val_accuracy,
                    val_balanced_accuracy=record.val_balanced_accuracy)
        self.curve.append(record)
        self.model = model
        if self.best is None or self.score(record) > self.score(self.best[0]):
            self.best = (record, confusion)
        if self.checkpoints is not None:
            # Saved before the epoch is reported: whatever the orchestrator has recorded, the
            # checkpoint holds at least as much, so a resume never loses an epoch.
            best, best_confusion = self.best
            self.checkpoints.save(model, CheckpointState(
                phase=phase, epoch=epoch, step=step, curve=[r.as_dict() for r in self.curve],
                best_step=best.step, best_confusion=best_confusion.tolist()))
        self.reporter.epoch_finished(record)

    def score(self, record: EpochRecord) -> float:
        return float(getattr(record, self.objective))

    def result(self) -> TrialResult:
        assert self.best is not None, "no epoch finished"
        best, confusion = self.best
        return TrialResult(
            value=self.score(best), best_step=best.step, best_phase=best.phase,
            val_accuracy=best.val_accuracy, val_balanced_accuracy=best.val_balanced_accuracy,
            train_accuracy=best.accuracy, epochs_run=len(self.curve),
            confusion=confusion.tolist(), curve=self.curve, model=self.model)


# ----------------------------------------------------------------------------- the trial
class TwoPhaseTrial:
    """One trial's model, data and curve. ``fit(start, stop)`` trains global steps
    start..stop-1, in whichever phases they fall: the head for steps below h, fine-tuning from h.
    Both engines drive it: Optuna's runner all steps at once (resuming from a checkpoint),
    keras-tuner's Hyperband in rounds, continuing a model whose weights it restored."""

    def __init__(self, params: TrialParams, backbone: Backbone, dataset: Dataset,
                 settings: TrialSettings, reporter: Reporter,
                 checkpoints: TrialCheckpoints | None = None, seed_offset: int = 0) -> None:
        import keras

        self.params, self.backbone, self.settings = params, backbone, settings
        keras.backend.clear_session()
        keras.utils.set_random_seed(settings.seed + seed_offset)
        preprocess = preprocessor(backbone)
        self.train = train_pipeline(dataset.x_train, dataset.y_train, settings.batch_size,
                                    params.augmentation_strength, preprocess,
                                    settings.seed + seed_offset)
        self.weights = class_weights(dataset.y_train, dataset.n_classes, params.class_weighting)
        self.model, self.base = build_classifier(backbone, settings.image_size,
                                                 dataset.n_classes, settings.dropout)
        self.total_steps = settings.head_epochs + settings.finetune_epochs
        self.tracker = EpochTracker(eval_inputs(dataset.x_val, preprocess), dataset.y_val,
                                    dataset.n_classes, settings.batch_size, settings.objective,
                                    reporter, self.total_steps, checkpoints)
        self.checkpoints = checkpoints

    @property
    def has_finetune_phase(self) -> bool:
        """Whether phase 2 trains anything new (a depth that unfreezes no layer skips it)."""
        layers = backbone_layers(self.base)
        return self.settings.finetune_epochs > 0 and (
            not self.backbone.pretrained or round(self.params.unfreeze_depth * len(layers)) > 0)

    def fit(self, start: int, stop: int, callbacks: tuple[Any, ...] = (),
            restore: CheckpointState | None = None) -> TrialResult:
        """Train steps start..stop-1; ``restore`` reloads that checkpoint (weights, and the
        optimiser when it was saved in the same phase) before training on."""
        h = self.settings.head_epochs
        stop = min(stop, self.total_steps if self.has_finetune_phase else h)
        try:
            if start < min(stop, h):
                freeze_for_head(self.base, self.backbone.pretrained)
                compile_for(self.model, self.params.head_lr)
                if restore is not None:
                    self.checkpoints.restore(self.model, with_optimizer=True)  # type: ignore
                self._fit_phase(HEAD, start, min(stop, h), 0, callbacks)
            if stop > h:
                unfreeze_top(self.base, self.params.unfreeze_depth, self.backbone.pretrained)
                compile_for(self.model, self.params.finetune_lr)
                if restore is not None and start >= h:
                    self.checkpoints.restore(  # type: ignore[union-attr]
                        self.model, with_optimizer=restore.phase == FINETUNE)
                # initial_epoch keeps the global step running on: never a restart at 0.
                self._fit_phase(FINETUNE, max(start, h), stop, h, callbacks)
        except StopTrial as stopped:
            stopped.result = self.tracker.result()
            raise
        return self.tracker.result()

    def _fit_phase(self, phase: str, start: int, stop: int, first_step: int,
                   callbacks: tuple[Any, ...]) -> None:
        self.model.fit(self.train, epochs=stop, initial_epoch=start, class_weight=self.weights,
                       verbose=0, shuffle=False,
                       callbacks=[self.tracker.callback(phase, first_step), *callbacks])


def run_trial(params: TrialParams, backbone: Backbone, dataset: Dataset,
              settings: TrialSettings, reporter: Reporter,
              checkpoints: TrialCheckpoints | None = None) -> TrialResult:
    """Run both phases; with ``checkpoints`` holding a saved epoch, continue after it."""
    resume = checkpoints.latest() if checkpoints is not None else None
    start = resume.step + 1 if resume else 0
    trial = TwoPhaseTrial(params, backbone, dataset, settings, reporter, checkpoints,
                          seed_offset=start)
    if resume is not None:
        trial.tracker.resume_from(resume)
    return trial.fit(start, trial.total_steps, restore=resume)
