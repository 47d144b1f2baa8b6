"""The finalists' stage, seen from the orchestrator: after the search, choose honestly.

The search's best ``value`` is the maximum of many noisy validation scores, so it is biased upward
(the winner's curse). Once the search ends this stage, in its own subprocess (``_run``):

1. fits the linear-probe baseline per backbone on frozen features (``_baselines``);
2. on small data, re-evaluates the top ``k`` trials by k-fold cross-validation over train+val,
   each trial's recipe (its parameters, trained to its best epoch) on every fold, with the
   anchor recipe's trial beside them (``finalists.anchor``, trained for its own schedule), and
   compares them on the pooled out-of-fold predictions, which no trial was selected on: the
   anchor stands unless a searched finalist leads it clearly (``_choice``);
3. delivers the chosen recipe: refit on train+val, the best fold's model, or the average of its
   fold models (or, without re-evaluation, the top trial's kept model); or the probe itself,
   refit on train+val, unless on the same folds the chosen finalist leads it clearly
   (``finalists.probe_competes``, on by default);
4. scores the finalists, the delivered model and the baseline on the test set, which nothing
   before this step has seen.

Each fold is recorded in the study as it lands, and the report when the stage ends
(``_recorded``): a stage that starts again trains only the folds not yet recorded. No
TensorFlow here.
"""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from rich.console import Console

from tlsweep.config import AnchorConfig, TrialParams
from tlsweep.finalists._budget import cross_validates
from tlsweep.finalists._protocol import (
    FinalDone,
    FinalFailed,
    Finalist,
    FinalTask,
    FoldLanded,
    Progress,
)
from tlsweep.finalists._recorded import record_fold, record_report, recorded_folds
from tlsweep.finalists._records import FinalReport
from tlsweep.finalists._run import FINAL_DIR
from tlsweep.system import format_seconds, see_log
from tlsweep.training import FINAL_MODEL, WorkerSpec


@dataclass(frozen=True)
class StageInputs:
    """What the stage needs of a sweep; the driver builds it (``sweep.stage_inputs``)."""

    config: Any  # config.SweepConfig
    spec: WorkerSpec
    train_and_val: int  # images the folds split
    has_test: bool
    directory: Path  # the study's results folder
    checkpoints: Path  # where trials keep their models (``store.checkpoint_folder``)
    settings_of: Callable[[int], Any]  # a trial's number -> its training.TrialSettings
    deadline: float | None = None  # time.monotonic() when budget.timeout ends; None: no timeout


def as_anchor(finalist: Finalist, recipe: dict[str, Any]) -> Finalist:
    """The anchor recipe as it was enqueued (``store.anchor_recipe``), not as the search ran it:
    its own schedule, trained to the end (no epoch chosen on validation images), the head
    started as the probe and phase 1 without augmentation."""
    anchor = AnchorConfig(**recipe)
    settings = replace(finalist.settings, head_epochs=anchor.head_epochs,
                       finetune_epochs=anchor.finetune_epochs, head_init="probe",
                       augment_head=False)
    return replace(finalist, epochs=anchor.total_epochs, settings=settings, anchor=True)


def anchor_trial(study: Any) -> Any | None:
    """The finished trial that ran the anchor recipe (a retry, if the first attempt failed);
    pruned counts: the stage trains the recipe afresh."""
    from optuna.trial import TrialState

    from tlsweep.store import anchor_recipe

    return next((t for t in study.get_trials(deepcopy=False, states=(
        TrialState.COMPLETE, TrialState.PRUNED)) if anchor_recipe(t)), None)


def describe(finalists: list[Finalist], folds: int | None) -> str:
    """What the stage does with its finalists, for its header; ``folds`` None: no
    re-evaluation."""
    if folds is None:
        return f"the top {len(finalists)} as trained"
    searched = sum(not f.anchor for f in finalists)
    names = [f"the top {searched}"] if searched else []
    names += ["the anchor recipe"] if searched < len(finalists) else []
    return f"{folds}-fold cross-validation of {' and '.join(names)}"


def where_the_stage_went(report: FinalReport) -> str:
    """The stage's time by phase; what its process does not measure is its start-up (TensorFlow,
    the images) and the messages between the processes."""
    phases = {name.replace("_", " "): seconds for name, seconds in report.phase_seconds.items()}
    startup = report.seconds - sum(phases.values())
    parts = [f"{name} {format_seconds(seconds)}" for name, seconds in phases.items()]
    return (f"the finalists' stage took {format_seconds(report.seconds)}: "
            + ", ".join([f"start-up {format_seconds(max(startup, 0.0))}", *parts]))


@dataclass
class FinalStage:
    """Runs the final stage for one study and records it; prints progress lines."""

    console: Console

    def choose_finalists(self, inputs: StageInputs, study: Any,
                         reevaluate: bool) -> list[Finalist]:
        """The top ``k`` complete trials, each trained to its best epoch; and, when the stage
        re-evaluates and the sweep has an anchor, the anchor recipe's trial besides them,
        trained for its own schedule (its search run had the search's, shorter)."""
        from optuna.trial import TrialState

        from tlsweep.store import anchor_recipe

        anchor = self.anchor_to_validate(inputs, study, reevaluate)
        complete = sorted(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)),
                          key=lambda t: t.value, reverse=True)
        searched = [t for t in complete if anchor is None or t.number != anchor.number]
        finalists = [self._finalist(inputs, t) for t in searched[:inputs.config.finalists.k]]
        found = self._finalist(inputs, anchor) if anchor is not None else None
        if found is not None:
            finalists.append(as_anchor(found, anchor_recipe(anchor)))
        return [f for f in finalists if f is not None]

    def anchor_to_validate(self, inputs: StageInputs, study: Any,
                           reevaluate: bool) -> Any | None:
        """The anchor's trial, when the stage is to cross-validate it; says why when not."""
        config = inputs.config.finalists
        if config.anchor is None:
            return None
        trial = anchor_trial(study)
        if trial is None:
            self.console.print("[yellow]anchor:[/] no finished trial ran the anchor recipe (it "
                               "failed, or the study began without finalists.anchor): it is "
                               "not a finalist")
        elif not reevaluate:
            self.console.print(f"[yellow]anchor:[/] no cross-validation ({inputs.train_and_val} "
                               f"train+val "
                               f"images, not below finalists.small_data_images), so trial "
                               f"{trial.number} competes as the search trained it")
            return None
        return trial

    def _finalist(self, inputs: StageInputs, trial: Any) -> Finalist | None:
        from tlsweep.store import anchor_recipe, best_value, lineage_root

        result = trial.user_attrs.get("result") or {}
        params = trial.user_attrs.get("params")
        if params is None or ("best_step" not in result and anchor_recipe(trial) is None):
            return None
        kept = inputs.checkpoints / str(lineage_root(trial)) / FINAL_MODEL
        value = best_value(trial)
        return Finalist(trial.number, TrialParams(**params),
                        float("nan") if value is None else float(value),
                        int(result.get("best_step", 0)) + 1, inputs.settings_of(trial.number),
                        kept if kept.is_file() else None)

    def should_reevaluate(self, inputs: StageInputs) -> bool:
        return cross_validates(inputs.config, inputs.train_and_val)

    def run(self, inputs: StageInputs, study: Any) -> FinalReport | None:
        """The stage's report (also recorded in the study), or None when it could not run."""
        reevaluate = self.should_reevaluate(inputs)
        finalists = self.choose_finalists(inputs, study, reevaluate)
        if not finalists:
            return None
        config = inputs.config
        what = describe(finalists, config.finalists.folds if reevaluate else None)
        self.console.print(f"[bold]finalists[/]: linear-probe baseline, {what}"
                           + (", then the test set" if inputs.has_test else ""))
        task = FinalTask(inputs.spec, finalists, reevaluate, config.finalists.folds,
                         config.finalists.deliver, inputs.directory / FINAL_DIR,
                         recorded_folds(study.user_attrs), inputs.deadline)
        began = time.perf_counter()
        outcome = self._execute(task, study)
        if isinstance(outcome, FinalFailed):
            # Its traceback, or its last words before a crash, are in the study's log.
            self.console.print(f"[yellow]finalists not evaluated:[/] {outcome.error}"
                               f"{see_log(task.spec.log)}")
            return None
        report = outcome.report.timed(time.perf_counter() - began)
        record_report(study, report)
        self.console.print(f"  [dim]{where_the_stage_went(report)}[/]")
        return report

    def _execute(self, task: FinalTask, study: Any) -> FinalDone | FinalFailed:
        from tlsweep.finalists._run import final_main

        context = multiprocessing.get_context("spawn")
        conn, child = context.Pipe()
        # Not daemonic: it starts fold workers of its own. It dies with this process all the
        # same (``die_with_parent``), and is killed below if it outlives the stage.
        process = context.Process(target=final_main, args=(child, task), daemon=False,
                                  name="tlsweep-final")
        process.start()
        child.close()
        try:
            while True:
                try:
                    message = conn.recv()
                except KeyboardInterrupt:
                    return FinalFailed("interrupted (Ctrl-C). The search's results and every "
                                       "finished fold are saved; `tlsweep resume STUDY` trains "
                                       "the folds left and ends the stage")
                except EOFError:
                    process.join(5)
                    return FinalFailed(f"its process ended (exit code {process.exitcode})")
                if isinstance(message, Progress):
                    self.console.print(f"  [dim]{message.text}[/]")
                    continue
                if isinstance(message, FoldLanded):
                    record_fold(study, message.fold)
                    continue
                return message
        finally:
            if process.is_alive():
                process.kill()
            process.join(5)
