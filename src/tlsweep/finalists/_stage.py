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
(``_recorded``): a stage that starts again trains only the folds not yet recorded. Folds are
work items in the study, claimed before they train: ``run`` and ``resume`` lead the stage, and
each ``tlsweep worker`` on the study helps with the folds once the search is over (``help``),
on its own machine, then ends; the lead waits for the folds claimed elsewhere, then chooses,
refits and scores. No TensorFlow here.
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
    AwaitFolds,
    ClaimFold,
    FinalDone,
    FinalFailed,
    Finalist,
    FinalTask,
    FoldClaimed,
    FoldLanded,
    HelperDone,
    Progress,
)
from tlsweep.finalists._recorded import (
    CLAIM_RENEW_S,
    FoldLedger,
    agreed_folds,
    record_report,
    recorded_folds,
)
from tlsweep.finalists._records import MADE, FinalReport
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
    url: str = ""  # the study's storage, for the lock its workers share (``store.budget_lock``)
    folds: int | None = None  # finalists.folds, cut to the time left (``sweep.Deadline``)
    deliver: str | None = None  # finalists.deliver, when the time left holds no refit


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


SEARCH_WAIT_S = 600.0  # the most the stage waits for trials running elsewhere


def lock_of(study: Any, inputs: StageInputs) -> Callable[[], Any]:
    """The lock every process of the study shares (``store.budget_lock``)."""
    from tlsweep.store import budget_lock, storage

    return lambda: budget_lock(storage(study), study.study_name, inputs.url, inputs.directory)


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
        """The lead's stage: its report (also recorded in the study), or None when it could
        not run."""
        self.wait_for_search(study)
        reevaluate = self.should_reevaluate(inputs)
        finalists = self.choose_finalists(inputs, study, reevaluate)
        if not finalists:
            return None
        folds = self.cut_to_budget(inputs, study) if reevaluate \
            else inputs.config.finalists.folds
        what = describe(finalists, folds if reevaluate else None)
        self.console.print(f"[bold]finalists[/]: linear-probe baseline, {what}"
                           + (", then the test set" if inputs.has_test else ""))
        began = time.perf_counter()
        outcome = self._execute(self.task(inputs, study, finalists, reevaluate, "lead", folds),
                                study, inputs)
        if not isinstance(outcome, FinalDone):
            return None
        report = outcome.report.timed(time.perf_counter() - began)
        record_report(study, report)
        self.console.print(f"  [dim]{where_the_stage_went(report)}[/]")
        return report

    def help(self, inputs: StageInputs, study: Any) -> int | None:
        """A ``tlsweep worker``'s stage: the folds it can claim, trained here; how many (None
        when the stage has no folds, or failed). The lead (``run`` or ``resume``) chooses."""
        if not self.should_reevaluate(inputs):
            return None
        self.wait_for_search(study)
        finalists = self.choose_finalists(inputs, study, True)
        if not finalists:
            return None
        folds = self.fold_count(inputs, study)
        self.console.print(f"[bold]finalists[/]: helping with the folds of "
                           f"{describe(finalists, folds)}")
        outcome = self._execute(self.task(inputs, study, finalists, True, "helper", folds),
                                study, inputs)
        if not isinstance(outcome, HelperDone):
            return None
        self.console.print(f"  {outcome.trained} folds trained here; the run that leads the "
                           f"stage (run or resume) chooses and delivers")
        return outcome.trained

    def cut_to_budget(self, inputs: StageInputs, study: Any) -> int:
        """The folds this stage uses; both they and a delivery without a refit said when the
        budget cut them (``sweep.Deadline.stage_that_fits``)."""
        folds = self.fold_count(inputs, study)
        wanted, made = inputs.config.finalists.deliver, self.deliver(inputs)
        if made != wanted:
            self.console.print(f"[yellow]finalists:[/] a fine-tuned delivery is "
                               f"{MADE[made]}, not {MADE[wanted]} "
                               f"(finalists.deliver): at the pace the search measured, that "
                               f"training would end the run past budget.timeout")
        return folds

    def fold_count(self, inputs: StageInputs, study: Any) -> int:
        """The folds this stage uses (``_recorded.agreed_folds``), said when the budget cut
        them."""
        wanted = inputs.config.finalists.folds
        folds = agreed_folds(study, lock_of(study, inputs), inputs.folds or wanted)
        if folds < wanted:
            self.console.print(f"[yellow]finalists:[/] {folds} folds, not {wanted} "
                               f"(finalists.folds): at the pace the search measured, {wanted} "
                               f"would end the run past budget.timeout")
        return folds

    @staticmethod
    def deliver(inputs: StageInputs) -> str:
        """How the delivered model is made: ``finalists.deliver``, unless cut to the time left."""
        return inputs.deliver or inputs.config.finalists.deliver

    def task(self, inputs: StageInputs, study: Any, finalists: list[Finalist],
             reevaluate: bool, role: str, folds: int) -> FinalTask:
        config = inputs.config
        # Every machine's fold models where the lead can read them.
        shared = inputs.checkpoints / FINAL_DIR if config.execution.checkpoint_dir else None
        return FinalTask(inputs.spec, finalists, reevaluate, folds,
                         self.deliver(inputs), inputs.directory / FINAL_DIR,
                         recorded_folds(study.user_attrs), inputs.deadline, role, shared)

    def wait_for_search(self, study: Any) -> None:
        """Until no trial runs (in other workers): the finalists are the search's top trials,
        and every process of the stage must find the same. A trial left running by a process
        that died is waited for at most ``SEARCH_WAIT_S``."""
        from optuna.trial import TrialState

        waited = 0.0
        while waited < SEARCH_WAIT_S:
            running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
            if not running:
                return
            if not waited:
                self.console.print(f"[dim]finalists: waiting for {len(running)} trial(s) still "
                                   f"running in other workers[/]")
            time.sleep(2.0)
            waited += 2.0
        self.console.print(f"[yellow]finalists:[/] trials still marked running after "
                           f"{format_seconds(SEARCH_WAIT_S)} (a worker that died?): they are "
                           f"not finalists")

    def _execute(self, task: FinalTask, study: Any,
                 inputs: StageInputs) -> FinalDone | HelperDone | None:
        """The stage's process, started and served until it ends; None, said, when it
        failed."""
        outcome = self._serve(task, study, inputs)
        if isinstance(outcome, FinalFailed):
            # Its traceback, or its last words before a crash, are in the study's log.
            self.console.print(f"[yellow]finalists not evaluated:[/] {outcome.error}"
                               f"{see_log(task.spec.log)}")
            return None
        return outcome

    def _serve(self, task: FinalTask, study: Any,
               inputs: StageInputs) -> FinalDone | HelperDone | FinalFailed:
        from tlsweep.finalists._run import final_main

        ledger = FoldLedger(study, lock_of(study, inputs))
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
                    ledger.renew_if_due()  # while its folds train, this process's claims live
                    if not conn.poll(CLAIM_RENEW_S):
                        continue
                    message = conn.recv()
                    if isinstance(message, ClaimFold):
                        conn.send(FoldClaimed(ledger.claim(message.trial, message.index,
                                                           message.key)))
                    elif isinstance(message, AwaitFolds):
                        conn.send(ledger.await_folds(message.wanted))
                    elif isinstance(message, Progress):
                        self.console.print(f"  [dim]{message.text}[/]")
                    elif isinstance(message, FoldLanded):
                        ledger.landed(message.fold)
                    else:
                        return message
                except KeyboardInterrupt:
                    return FinalFailed("interrupted (Ctrl-C). The search's results and every "
                                       "finished fold are saved; `tlsweep resume STUDY` trains "
                                       "the folds left and ends the stage")
                except EOFError:
                    process.join(5)
                    return FinalFailed(f"its process ended (exit code {process.exitcode})")
        finally:
            if process.is_alive():
                process.kill()
            process.join(5)
