"""A trial's epochs: what each records, how validation is scored after it, the best epoch kept,
its checkpoint written, and the reporter told (which may stop the trial). TensorFlow only
through the model it is handed, and Keras inside ``_callback_class``."""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

from tlsweep.system import Record
from tlsweep.training._checkpoint import CheckpointState, TrialCheckpoints
from tlsweep.training._classifier import predict


@dataclass
class EpochRecord(Record):
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
    timings: dict[str, Any] = field(default_factory=dict)
    best_weights: list[np.ndarray] | None = field(default=None, repr=False)  # in-process only

    def best_model(self) -> Any:
        """The model at its best epoch, the one ``value`` describes (not the last epoch's)."""
        if self.best_weights is not None:
            for variable, value in zip(self.model.weights, self.best_weights, strict=True):
                variable.assign(value)
        return self.model


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


@runtime_checkable
class AnswersLater(Protocol):
    """A reporter whose ``epoch_finished`` returns before the answer (continue, or stop at that
    epoch): the next epoch trains meanwhile, and the trial collects the answer between batches
    (``poll``), and before it finishes an epoch or ends (``settle``), raising ``StopTrial`` for
    the epoch reported. A stopped trial ends with the curve it would have had waiting."""

    def poll(self) -> None: ...

    def settle(self) -> None: ...


# ----------------------------------------------------------------------------- metrics
def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    return np.bincount(y_true * n_classes + y_pred, minlength=n_classes**2).reshape(
        n_classes, n_classes)


def balanced_accuracy(confusion: np.ndarray) -> float:
    support = confusion.sum(axis=1)
    present = support > 0
    return float(np.mean(np.diag(confusion)[present] / support[present]))


# ----------------------------------------------------------------------------- epochs
@dataclass
class Timings(Record):
    """Where a trial's time went, in seconds, for the overhead benchmark."""

    reused_model: bool = False
    build_s: float = 0.0  # building the model, or resetting a warm one
    compile_s: float = 0.0
    features_s: float = 0.0  # frozen features: computed, or read from the cache
    probe_s: float = 0.0  # fitting the probe the head starts from (or finding it fitted)
    validation_s: float = 0.0
    checkpoint_s: float = 0.0
    report_s: float = 0.0  # the orchestrator storing the epoch and answering
    # Per epoch: phase, wall seconds, traced (the model's first epoch), and the worker's CPU
    # seconds in it (all its threads): whether training itself keeps the cores busy.
    epochs: list[tuple[str, float, bool, float]] = field(default_factory=list)



class EpochTracker:
    """Evaluates on validation data after each epoch, keeps the curve and the best epoch.

    The model trained may share its layers with the whole classifier (a warm worker's phase
    model, or the head alone on cached features): checkpoints and the result always hold the
    whole classifier's weights, with the training model's optimiser."""

    def __init__(self, x_val: np.ndarray, y_val: np.ndarray, n_classes: int,
                 objective: str, reporter: Reporter, total_steps: int,
                 checkpoints: TrialCheckpoints | None = None, classifier: Any = None) -> None:
        self.x_val, self.y_val, self.n_classes = x_val, y_val, n_classes
        self.objective, self.reporter = objective, reporter
        self.total_steps, self.checkpoints = total_steps, checkpoints
        self.curve: list[EpochRecord] = []
        self.best: tuple[EpochRecord, np.ndarray] | None = None
        self.best_weights: list[np.ndarray] | None = None
        self.model: Any = classifier
        self.timings = Timings()
        self.answers = reporter if isinstance(reporter, AnswersLater) else None

    def settle(self) -> None:
        """Wait for the answer to the last epoch reported; raises if it stops the trial."""
        if self.answers is not None:
            began = time.perf_counter()
            self.answers.settle()
            self.timings.report_s += time.perf_counter() - began

    def resume_from(self, state: CheckpointState) -> None:
        self.curve = [EpochRecord(**record) for record in state.curve]
        best = next(r for r in self.curve if r.step == state.best_step)
        self.best = (best, np.asarray(state.best_confusion))
        if self.checkpoints is not None:
            self.best_weights = self.checkpoints.best_weights()

    def callback(self, phase: str, first_step: int, traced: bool = True,
                 val_inputs: np.ndarray | None = None) -> Any:
        """``traced``: whether the train function exists already (else the first epoch traces
        it); ``val_inputs``: what the training model takes for validation, when not images."""
        inputs = self.x_val if val_inputs is None else val_inputs
        return _callback_class()(self, phase, first_step, inputs, first=not traced)

    def finish_epoch(self, model: Any, inputs: np.ndarray, phase: str, epoch: int, step: int,
                     logs: dict, duration: float) -> None:
        self.settle()  # a trial stopped at the epoch before never records this one
        began = time.perf_counter()
        probs = predict(model, inputs)
        self.timings.validation_s += time.perf_counter() - began
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
        if self.model is None:
            self.model = model
        if self.best is None or self.score(record) > self.score(self.best[0]):
            self.best = (record, confusion)
            self.best_weights = [np.array(variable) for variable in self.model.weights]
        if self.checkpoints is not None:
            # Saved before the epoch is reported: whatever the orchestrator has recorded, the
            # checkpoint holds at least as much, so a resume never loses an epoch.
            began = time.perf_counter()
            best, best_confusion = self.best
            self.checkpoints.save(self.model, CheckpointState(
                phase=phase, epoch=epoch, step=step, curve=[r.as_dict() for r in self.curve],
                best_step=best.step, best_confusion=best_confusion.tolist()),
                optimizer=model.optimizer)
            self.timings.checkpoint_s += time.perf_counter() - began
        began = time.perf_counter()
        self.reporter.epoch_finished(record)
        self.timings.report_s += time.perf_counter() - began

    def score(self, record: EpochRecord) -> float:
        return float(getattr(record, self.objective))

    def result(self) -> TrialResult:
        assert self.best is not None, "no epoch finished"
        best, confusion = self.best
        return TrialResult(
            value=self.score(best), best_step=best.step, best_phase=best.phase,
            val_accuracy=best.val_accuracy, val_balanced_accuracy=best.val_balanced_accuracy,
            train_accuracy=best.accuracy, epochs_run=len(self.curve),
            confusion=confusion.tolist(), curve=self.curve, model=self.model,
            timings=self.timings.as_dict(), best_weights=self.best_weights)


@functools.cache
def _callback_class() -> type:
    """The Keras callback an EpochTracker gives ``fit``; made on first use, since Keras is
    imported only where a trial runs."""
    import keras

    class EpochCallback(keras.callbacks.Callback):
        def __init__(self, tracker: EpochTracker, phase: str, first_step: int,
                     inputs: np.ndarray, first: bool) -> None:
            super().__init__()
            self.tracker, self.phase, self.first_step = tracker, phase, first_step
            self.inputs, self.first = inputs, first

        def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
            self.started, self.cpu_started = time.perf_counter(), time.process_time()
            self.tracker.reporter.epoch_started(self.phase, epoch, self.tracker.total_steps)

        def on_train_batch_begin(self, batch: int, logs: dict | None = None) -> None:
            # A batch's beginning, not its end: Keras runs end hooks on a thread and would
            # make every step wait for its logs.
            if self.tracker.answers is not None:
                self.tracker.answers.poll()

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            duration = time.perf_counter() - self.started
            cpu_s = time.process_time() - self.cpu_started
            self.tracker.timings.epochs.append((self.phase, duration, self.first, cpu_s))
            self.first = False
            self.tracker.finish_epoch(self.model, self.inputs, self.phase,
                                      epoch - self.first_step, epoch,
                                      logs if logs is not None else {}, duration)

    return EpochCallback
