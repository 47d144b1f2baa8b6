"""A run's life: ``run``, ``resume`` and ``worker``, in one process or several; the CLI parses
their options and this does the rest, in order: the checks, the study, the engine's search, the
finalists' stage, the results and where the time went.

One orchestrator per process (``sweep.SweepRunner``), each with its own trial subprocess. With
``--workers N`` on one machine, N orchestrator processes share a JournalStorage file; with a
PostgreSQL URL, any number of ``tlsweep worker`` processes on any machines share the database.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console

from tlsweep.config import load_sweep
from tlsweep.engines import Search, engine_named
from tlsweep.errors import ConfigError, TlsweepError
from tlsweep.finalists import FinalReport, results_rows
from tlsweep.launch._checks import (
    require_shared_checkpoints,
    single_process,
    verify_checkpoint_folder,
    with_overrides,
)
from tlsweep.store import (
    StorageURL,
    finished_count,
    is_local,
    load_study,
    local_url,
    locate,
    recorded_sweep,
    require_driver,
    results_root,
    scrub,
    write_results,
)
from tlsweep.sweep import (
    INTERRUPTED,
    SPLIT,
    Deadline,
    Lease,
    Plan,
    RunSplit,
    attach_search,
    check,
    check_unchanged,
    create_study,
    discard_new_study,
    join_study,
    recover_stale,
    refuse_existing,
)
from tlsweep.system import environment, format_seconds

LEAD, HELPER = "lead", "helper"  # a process's part in the finalists' stage (``finish``)


class Launcher:
    def __init__(self, console: Console, errors: Console, root: Path | None) -> None:
        self.console, self.errors = console, errors
        self.root = root or results_root()
        self.began = time.monotonic()  # the command's start: what a user's --time is held to

    # ----------------------------------------------------------------------- commands
    def run(self, sweep_path: Path, trials: int | None, timeout: str | None,
            storage: str | None, workers: int, gpus: list[str] | None) -> int:
        sweep = with_overrides(load_sweep(sweep_path), trials, timeout)
        plan = check(sweep, self.root)
        if workers > 1:
            single_process(plan, "--workers")
        url = storage or local_url(plan.directory, workers)
        require_shared_checkpoints(plan, url)
        refuse_existing(sweep, url)
        # The study exists before the (slow) decoding, so a run killed while decoding resumes.
        study = create_study(plan, url)
        try:
            self.decode(plan, url)
        except TlsweepError:
            discard_new_study(study, url)
            raise
        if not is_local(url):
            verify_checkpoint_folder(study, plan)
        self.describe(plan)
        if workers > 1:
            return self.local_workers(plan, study, url, workers, gpus, timeout)
        return self.execute(plan, study, url, lease=is_local(url), role=LEAD)

    def resume(self, name: str, force: bool, storage: str | None, workers: int,
               gpus: list[str] | None) -> int:
        directory = self.root / name
        url = locate(directory, storage)
        if workers > 1 and StorageURL.parse(url).kind == "sqlite":
            raise ConfigError(f"{directory}: study {name!r} was created for one worker (SQLite). "
                              f"Resume it without --workers.")
        stored = load_study(directory, name, url)
        sweep = recorded_sweep(stored)
        check_unchanged(stored, sweep, force)
        plan = check(sweep, self.root)
        if workers > 1:
            single_process(plan, "--workers")
        Lease(plan.directory).acquire(name)  # refuses while another live process runs it
        recovered = recover_stale(stored)
        if recovered:
            self.console.print(f"re-queued trials left running by a dead process: {recovered}")
        self.decode(plan, url)
        attach_search(stored, sweep)
        self.describe(plan)
        if workers > 1:
            return self.local_workers(plan, stored, url, workers, gpus, None)
        return self.execute(plan, stored, url, lease=True, role=LEAD)

    def worker(self, sweep_path: Path, storage: str, timeout: str | None) -> int:
        sweep = with_overrides(load_sweep(sweep_path), None, timeout)
        plan = check(sweep, self.root)
        single_process(plan, "tlsweep worker")
        require_shared_checkpoints(plan, storage)
        require_driver(StorageURL.parse(storage))  # before the (slow) decoding
        plan.load_data()
        study = join_study(plan, storage)
        if not is_local(storage):
            verify_checkpoint_folder(study, plan)
        return self.execute(plan, study, storage, lease=False, role=HELPER)

    # ----------------------------------------------------------------------- in this process
    def decode(self, plan: Plan, url: str) -> None:
        """Decode the images (the slow part of starting); Ctrl-C here still says how to go on,
        since the study exists already."""
        try:
            plan.load_data()
        except KeyboardInterrupt:
            raise SystemExit(self.interrupted(plan, url)) from None

    def interrupted(self, plan: Plan, url: str) -> int:
        flag = "" if self.root.resolve() == results_root().resolve() \
            else f" --results-dir {self.root}"
        flag += "" if is_local(url) else " --storage URL"
        self.console.print(f"Interrupted. The study is saved; continue it with:\n"
                           f"  tlsweep resume {plan.sweep.config.study}{flag}")
        return INTERRUPTED

    def describe(self, plan: Plan) -> None:
        data, config = plan.dataset, plan.sweep.config
        test = (f", {len(data.y_test)} test images (held out until the search ends)"
                if data.has_test else " and no test set (the leaderboard's values will be "
                "optimistic: add data.test_dir or data.test_split to measure the winner)")
        self.console.print(f"[bold]{config.study}[/]: {len(data.y_train)} training and "
                           f"{len(data.y_val)} validation images{test}, {data.n_classes} classes "
                           f"at {config.data.image_size} px")
        for skipped in plan.skipped:
            self.console.print(f"[yellow]skipped[/] {skipped.path}: {skipped.reason}")
        for line in data.duplicates.summary_lines() if data.duplicates else []:
            self.console.print(f"[yellow]duplicates[/] {line}")
        where = ", ".join(str(d) for d in data.cache_dirs)
        self.console.print(f"[dim]decoded images cached in {where} "
                           f"({data.cache_size_mb():.1f} MB; rebuilt when a file changes)[/]")

    def execute(self, plan: Plan, study: Any, url: str, lease: bool, role: str) -> int:
        """Run trials in this process until the study's budget is spent, then the finalists'
        stage as ``role`` (``finish``)."""
        from tlsweep.sweep import LiveView

        name = plan.sweep.config.study
        data = plan.dataset
        study.set_user_attr("class_names", data.class_names)
        counts = {"train": np.bincount(data.y_train, minlength=data.n_classes).tolist(),
                  "val": np.bincount(data.y_val, minlength=data.n_classes).tolist()}
        if data.has_test:
            counts["test"] = np.bincount(data.y_test, minlength=data.n_classes).tolist()
        study.set_user_attr("class_counts", counts)
        if data.duplicates is not None:
            study.set_user_attr("duplicates", data.duplicates.as_dict())
        held = Lease(plan.directory) if lease else None
        if held is not None:
            held.acquire(name)
        budget = int(study.user_attrs.get("budget_trials", plan.sweep.config.budget.trials))
        publish = lambda s: write_results(s, plan.directory, results_rows(s))  # noqa: E731
        # budget.timeout holds the whole run: where the finalists' stage follows in this
        # process, the search leaves it its measured share.
        follows = lease or os.environ.get(environment.STAGE_FOLLOWS) == "1"
        deadline = Deadline(plan, self.began, stage_follows=follows)
        try:
            with LiveView(name, budget, self.console, already_done=finished_count(study),
                          deadline=deadline) as view:
                engine = engine_named(plan.sweep.config.engine)
                code = engine.search(Search(plan, study, view, url, publish, deadline))
        finally:
            if held is not None:
                held.release()
        return self.finish(plan, study, code, url, deadline, role)

    def finish(self, plan: Plan, study: Any, code: int, url: str, deadline: Deadline,
               role: str = LEAD) -> int:
        """Report a finished (or interrupted) run, after the finalists' stage: ``run`` and
        ``resume`` lead it (choose, refit, score), each ``tlsweep worker`` helps with its folds
        (``finalists.FinalStage``)."""
        from tlsweep.inspection import write_importance

        name = plan.sweep.config.study
        if code != INTERRUPTED:
            self.stage(plan, study, url, deadline, role)
        if code == INTERRUPTED:
            return self.interrupted(plan, url)
        try:
            write_importance(study, plan.directory)
        except Exception as exc:  # an analysis problem must not fail a finished sweep
            self.errors.print(f"[yellow]importance not computed:[/] {type(exc).__name__}: "
                              f"{scrub(str(exc), url)}")
        from tlsweep.inspection import show_leaderboard

        show_leaderboard(plan.directory, name, self.console, top=10)
        self.console.print(f"results: {plan.directory}")
        return 0 if any(t.state.name == "COMPLETE" for t in study.trials) else 1

    def stage(self, plan: Plan, study: Any, url: str, deadline: Deadline, role: str) -> None:
        from tlsweep.finalists import FinalStage
        from tlsweep.sweep import stage_inputs

        fit = deadline.stage_that_fits(study)
        inputs = replace(stage_inputs(plan, deadline, url), folds=fit.folds, deliver=fit.deliver)
        if role == HELPER:
            FinalStage(self.console).help(inputs, study)
            return
        if deadline.stopped:
            self.console.print(f"[dim]{deadline.stopped}[/]")
        search_s = time.monotonic() - self.began
        stage = FinalStage(self.console).run(inputs, study)
        split = RunSplit(plan.sweep.config.budget.timeout, search_s,
                         stage.seconds if stage else None,
                         stage.delivered.seconds if stage else None,
                         deadline.stage_estimate_s, deadline.stopped)
        study.set_user_attr(SPLIT, split.as_dict())
        if stage is not None:
            write_results(study, plan.directory, results_rows(study))
        self.console.print(split.text())
        self.say_budget(plan, stage)

    def say_budget(self, plan: Plan, stage: FinalReport | None) -> None:
        """A plain line when the run ended more than 10% past budget.timeout, and why: the
        search stops where its estimate of the trial and the stage says so, and a trial or the
        stage can take longer than estimated."""
        timeout = plan.sweep.config.budget.timeout
        wall = time.monotonic() - self.began
        if timeout is None or wall <= 1.1 * timeout:
            return
        finalists = (f"; the finalists' stage took {format_seconds(stage.seconds)} of it"
                     if stage and stage.seconds else "")
        self.console.print(f"[yellow]past the budget:[/] this run took {format_seconds(wall)} "
                           f"against budget.timeout {format_seconds(timeout)}{finalists}. The "
                           f"search stops when the time left holds one more trial and the "
                           f"finalists' stage as estimated from its own epochs; a trial, or the "
                           f"stage, took longer than that. Give a longer timeout, or fewer "
                           f"finalists.folds or finalists.k, to end sooner.")

    # ----------------------------------------------------------------------- several processes
    def local_workers(self, plan: Plan, study: Any, url: str, workers: int,
                      gpus: list[str] | None, timeout: str | None) -> int:
        """N orchestrator processes on this machine, each with its share of the CPU cores (and
        one GPU each with --gpus), all against the study's storage; restarted if one dies."""
        threads = max(1, (os.cpu_count() or 1) // workers)
        command = [sys.executable, "-m", "tlsweep", "worker", str(plan.sweep.path),
                   "--results-dir", str(self.root)]
        if timeout:
            command += ["--timeout", timeout]

        def start(index: int) -> subprocess.Popen:
            env = {**os.environ, environment.STORAGE: url, environment.THREADS: str(threads),
                   environment.PLAIN_OUTPUT: "1", environment.STAGE_FOLLOWS: "1"}
            if gpus:
                env["CUDA_VISIBLE_DEVICES"] = gpus[index % len(gpus)]
            # Own session: a Ctrl-C reaches the parent only, which passes on one SIGINT.
            return subprocess.Popen(command, env=env, start_new_session=True)

        children = [start(i) for i in range(workers)]
        self.console.print(f"{workers} workers started ({threads} CPU threads each"
                           + (f", GPUs {','.join(gpus)}" if gpus else "") + ")")
        interrupted = []

        def on_sigint(signum: int, frame: Any) -> None:
            interrupted.append(signum)
            for child in children:
                if child.poll() is None:
                    child.send_signal(signal.SIGINT if len(interrupted) == 1 else signal.SIGKILL)

        previous = signal.signal(signal.SIGINT, on_sigint)
        restarts = 0
        try:
            while any(child.poll() is None for child in children):
                time.sleep(1.0)
                for index, child in enumerate(children):
                    code = child.poll()
                    if code not in (None, 0, INTERRUPTED, 1) and not interrupted \
                            and restarts < 3 * workers:
                        self.errors.print(f"worker {index} exited with {code}; restarting it")
                        children[index] = start(index)
                        restarts += 1
        finally:
            signal.signal(signal.SIGINT, previous)
        code = INTERRUPTED if interrupted else 0
        return self.finish(plan, load_study(plan.directory, study.study_name, url), code, url,
                           Deadline(plan, self.began, stage_follows=True))
