"""The keras-tuner engine (``engine: keras-tuner``): the same two-phase trials, on the same data
pipeline and search space, searched by keras-tuner's Hyperband, Bayesian or random tuner.

Every finished keras-tuner trial is recorded in the study's Optuna storage as if Optuna had run
it (parameters, distributions, per-epoch curve, intermediate values), so ``leaderboard``,
``importance``, ``show`` and ``report`` read both engines' studies alike, and the Parquet files
have the same columns.

What keras-tuner cannot do that the Optuna engine does:
- prune a trial inside an epoch budget: Hyperband allots epochs per bracket in advance, so a bad
  trial still runs its round; the Optuna engine stops it at any epoch, phase 2 included;
- resume an interrupted trial: keras-tuner reloads finished trials only, so the trial that was
  running starts over, while the Optuna engine continues from the last epoch's checkpoint;
- isolate trials: keras-tuner trains in its own process, so a segfault or an out-of-memory kill
  ends the sweep (an exception is recorded as a failed trial), and memory grows by what Keras
  leaks per model.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution
from optuna.trial import TrialState

from tlsweep.config import TrialParams, suggest
from tlsweep.engines._base import Search
from tlsweep.errors import ConfigError
from tlsweep.store import epochs_spent
from tlsweep.sweep import INTERRUPTED, Deadline, Listener, Plan, trial_settings
from tlsweep.system import log_path, stderr_to_log

KT_TRIAL_ATTR = "keras_tuner_trial"


class SuggestOnTuner:
    """Optuna's ``suggest_*`` calls answered by keras-tuner's ``HyperParameters``, so
    ``config.suggest`` stays the one place that maps the search space; each Optuna distribution
    is noted for the record."""

    def __init__(self, hp: Any) -> None:
        self.hp = hp
        self.distributions: dict[str, BaseDistribution] = {}

    def suggest_float(self, name: str, low: float, high: float, log: bool = False) -> float:
        self.distributions[name] = FloatDistribution(low, high, log=log)
        return float(self.hp.Float(name, low, high, sampling="log" if log else "linear"))

    def suggest_categorical(self, name: str, choices: list[str]) -> str:
        self.distributions[name] = CategoricalDistribution(choices)
        return str(self.hp.Choice(name, choices))


@dataclass
class Attempt:
    """One keras-tuner trial as it runs: what it tries and what it reached."""

    number: int
    params: TrialParams
    distributions: dict[str, BaseDistribution]
    trial: Any  # trial.TwoPhaseTrial
    evaluated: float | None = None  # the objective of a round that had nothing to train
    started_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(
        timespec="seconds"))
    began: float = field(default_factory=time.perf_counter)


def _hypermodel_class() -> type:
    import keras_tuner as kt

    class TwoPhaseHyperModel(kt.HyperModel):
        """build() sets up a whole two-phase trial and hands keras-tuner its model, whose
        weights Hyperband may then restore; fit() trains the steps keras-tuner asks for."""

        def __init__(self, plan: Plan, listener: Listener, first_number: int) -> None:
            super().__init__(name="tlsweep")
            self.plan, self.listener = plan, listener
            self.searching = False
            self.number = first_number
            self.current: Attempt | None = None

        def declare_hyperparameters(self, hp: Any) -> None:
            suggest(SuggestOnTuner(hp), self.plan.sweep.space)

        def build(self, hp: Any) -> Any:
            from tlsweep.training import TwoPhaseTrial

            suggestions = SuggestOnTuner(hp)
            params = suggest(suggestions, self.plan.sweep.space)
            if not self.searching:  # keras-tuner exploring the space: no model needed
                return None
            self.listener.trial_started(self.number, params)
            trial = TwoPhaseTrial(params, self.plan.backbones[params.backbone],
                                  self.plan.dataset, trial_settings(self.plan, self.number),
                                  self.listener)
            self.current = Attempt(self.number, params, suggestions.distributions, trial)
            self.number += 1
            return trial.model

        def fit(self, hp: Any, model: Any, *args: Any, epochs: int | None = None,
                initial_epoch: int = 0, callbacks: Any = (), **kwargs: Any) -> dict[str, float]:
            assert self.current is not None and self.current.trial.model is model
            trial = self.current.trial
            if initial_epoch >= trial.last_step:
                # A Hyperband round continuing a trial that has no steps left (its depth
                # unfreezes no layer, so it has no phase 2): the restored model is its result.
                self.current.evaluated = trial.evaluate()
                return {self.plan.sweep.config.objective: self.current.evaluated}
            result = trial.fit(initial_epoch, epochs or trial.total_steps, tuple(callbacks))
            return {self.plan.sweep.config.objective: result.value}

    return TwoPhaseHyperModel


class TrialRecorder:
    """Writes each finished keras-tuner trial into the Optuna study."""

    def __init__(self, study: optuna.Study, objective: str,
                 publish: Callable[[optuna.Study], None]) -> None:
        self.study, self.objective, self.publish = study, objective, publish
        self.recorded = {t.user_attrs.get(KT_TRIAL_ATTR) for t in study.get_trials(
            deepcopy=False)}

    def record(self, kt_trial: Any, attempt: Attempt | None) -> optuna.trial.FrozenTrial:
        curve = [r.as_dict() for r in attempt.trial.tracker.curve] if attempt else []
        best = max((r[self.objective] for r in curve),
                   default=attempt.evaluated if attempt else None)
        ok = kt_trial.status == "COMPLETED" and best is not None
        hp = kt_trial.hyperparameters.values
        attrs: dict[str, Any] = {
            KT_TRIAL_ATTR: kt_trial.trial_id, "curve": curve, "error": None, "pruned_at": None,
            "params": attempt.params.as_dict() if attempt else None,
            "continues_trial": hp.get("tuner/trial_id"),
            "started_at": attempt.started_at if attempt else None,
            "duration_s": time.perf_counter() - attempt.began if attempt else None,
            "worker": "keras-tuner (in process)"}
        if not ok:
            message = (kt_trial.message or "no epoch finished").strip().splitlines()
            attrs["error"] = message[-1] if message else "failed"
            attrs["traceback"] = (kt_trial.message or "")[-4000:]
        distributions = attempt.distributions if attempt else {}
        frozen = optuna.trial.create_trial(
            state=TrialState.COMPLETE if ok else TrialState.FAIL,
            value=best if ok else None,
            params={name: hp[name] for name in distributions},
            distributions=distributions, user_attrs=attrs,
            intermediate_values={r["step"]: r[self.objective] for r in curve})
        self.study.add_trial(frozen)
        self.recorded.add(kt_trial.trial_id)
        self.publish(self.study)
        return self.study.get_trials(deepcopy=False)[-1]


def _tuner(plan: Plan, hypermodel: Any, recorder: TrialRecorder, listener: Listener,
           resuming: bool, deadline: Deadline) -> Any:
    import keras_tuner as kt

    config = plan.sweep.config
    tuner_config = config.tuner_or_default
    budget = config.budget
    kinds = {"hyperband": kt.Hyperband, "bayesian": kt.BayesianOptimization,
             "random": kt.RandomSearch}
    base = kinds[tuner_config.kind]

    class RecordingTuner(base):  # type: ignore[misc, valid-type]
        def on_trial_begin(self, trial: Any) -> None:
            super().on_trial_begin(trial)
            hypermodel.current = None  # a trial that fails before build() has no attempt

        def on_trial_end(self, trial: Any) -> None:
            super().on_trial_end(trial)
            if trial.trial_id in recorder.recorded:
                return
            frozen = recorder.record(trial, hypermodel.current)
            listener.trial_finished(frozen, recorder.study)
            spent = epochs_spent(recorder.study)
            if (budget.epochs is not None and spent >= budget.epochs) or \
                    not deadline.allows_a_trial(recorder.study):
                self.oracle.max_trials = len(self.oracle.trials)  # no new trial after this

    objective = kt.Objective(config.objective, direction="max")
    options: dict[str, Any] = {}
    if tuner_config.kind == "hyperband":
        options = {"max_epochs": config.training.total_epochs,
                   "factor": tuner_config.factor,
                   "hyperband_iterations": tuner_config.hyperband_iterations}
    tuner = RecordingTuner(
        hypermodel, objective=objective, seed=config.seed, overwrite=not resuming,
        max_consecutive_failed_trials=config.execution.max_consecutive_failures,
        directory=str(plan.directory), project_name="keras-tuner", **options)
    tuner.oracle.max_trials = budget.trials
    return tuner


def run_keras_tuner(plan: Plan, study: optuna.Study, listener: Listener,
                    publish: Callable[[optuna.Study], None], resuming: bool = False,
                    deadline: Deadline | None = None) -> int:
    """Search with keras-tuner until its budget is spent; 0, or 130 after Ctrl-C."""
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")
    recorder = TrialRecorder(study, plan.sweep.config.objective, publish)
    hypermodel = _hypermodel_class()(plan, listener, first_number=len(study.trials))
    deadline = deadline or Deadline(plan, time.monotonic(), stage_follows=False)
    tuner = _tuner(plan, hypermodel, recorder, listener, resuming, deadline)
    hypermodel.searching = True
    try:
        tuner.search(epochs=plan.sweep.config.training.total_epochs, verbose=0)
    except KeyboardInterrupt:
        return INTERRUPTED
    except RuntimeError as exc:  # keras-tuner gives up after too many failed trials
        from tlsweep.errors import SweepAborted

        raise SweepAborted(f"{plan.sweep.path}: keras-tuner stopped: {str(exc).strip()[:300]}. "
                           f"Fix the cause (see `tlsweep show {study.study_name} TRIAL`), "
                           f"then resume.") from None
    return 0


def require_tuner(sweep_path: Path) -> None:
    """keras-tuner and TensorBoard (the ``tuner`` extra), or a ConfigError naming it. A sweep
    file is refused without them when it is loaded (``config._extras``); a study's recorded one
    is not, so this catches ``resume`` on a machine without the extra, before any trial."""
    try:
        import keras_tuner  # noqa: F401  (imports TensorFlow, which the search imports anyway)
        import tensorboard  # noqa: F401  (keras-tuner's Tuner.run_trial imports it)
    except ImportError as exc:
        if exc.name not in ("keras_tuner", "tensorboard"):
            raise  # a broken install of something they import: its own error says more
        raise ConfigError(f"{sweep_path}: engine: keras-tuner needs keras-tuner and TensorBoard, "
                          f"which are not installed here ({exc.name} is missing): pip install "
                          f"'tlsweep[tuner]' (or use engine: optuna).") from None


class KerasTunerEngine:
    name: ClassVar[str] = "keras-tuner"
    shares_a_study: ClassVar[bool] = False  # keras-tuner searches in one process

    def search(self, search: Search) -> int:
        require_tuner(search.plan.sweep.path)
        # keras-tuner trains in this process: TensorFlow's lines go to the log while it
        # searches; the live view writes to stdout, which stays.
        with stderr_to_log(log_path(search.plan.directory), "keras-tuner search"):
            return run_keras_tuner(search.plan, search.study, search.listener, search.publish,
                                   resuming=search.resuming, deadline=search.deadline)
