"""A soak with faults: 60 short trials, two workers on one journal file (`run --workers 2`), and
five SIGKILLs at random moments, each followed by a restart: two trial workers (their
orchestrator starts a fresh one), two worker orchestrators (the launcher starts a fresh one; the
trial they held is re-queued once its heartbeat stops) and the run itself during the finalists'
stage (restarted by `tlsweep resume`). Afterwards the budget is exact, no trial is counted
twice, no epoch appears twice in a curve, every Parquet file reads, and every process that lived
from its 10th trial to its last grew by at most 50 MB of resident memory.

The moments are drawn from a seeded generator (``TLSWEEP_SOAK_SEED``, 38 by default): a failure
names the seed, and the same seed replays the same kill points."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import optuna
import pandas as pd
import pytest

from tests.conftest import run_cli, tiny_space, tiny_sweep, write_class_images, write_yaml
from tlsweep.finalists import study_report
from tlsweep.finalists._recorded import FOLD_PREFIX
from tlsweep.store import finished_count, open_storage
from tlsweep.store._recorded import planned_count
from tlsweep.store._storage import journal_url
from tlsweep.sweep import recorded_memory

pytestmark = pytest.mark.slow
TRIALS, GROWTH_MB, FROM_TRIAL = 60, 50.0, 10
SEED = int(os.environ.get("TLSWEEP_SOAK_SEED", "38"))
FINAL = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)


@dataclass(frozen=True)
class Kill:
    at_finished: int  # finished trials when the kill was due
    target: str  # "trial worker", "worker orchestrator" or "run, in the finalists' stage"
    pid: int
    trial: int | None = None
    when: datetime | None = None


def soak_sweep(tmp_path: Path, backbone: Path) -> Path:
    data = write_class_images(tmp_path / "data", {"red": 40, "green": 40, "blue": 30}, size=16,
                              noise=160.0)  # hard enough that the pruner has work
    space = write_yaml(tmp_path / "space.yaml", tiny_space(backbone))
    return write_yaml(tmp_path / "sweep.yaml", tiny_sweep(
        data, space, study="soak", budget=f"{{trials: {TRIALS}}}",
        training="{head_epochs: 1, finetune_epochs: 3, batch_size: 16}",
        pruner="{kind: median, min_finetune_epochs: 1, n_startup_trials: 5, n_warmup_steps: 1}",
        execution="{heartbeat_interval_s: 1, heartbeat_grace_s: 4}",
        finalists="{k: 2, reevaluate: on, folds: 3, fold_workers: 1, "
                  "anchor: {head_epochs: 1, finetune_epochs: 2}}"))


class Watch:
    """The study as the test sees it between kills: read from the journal file, never written."""

    def __init__(self, directory: Path) -> None:
        self.url = journal_url(directory)
        self.journal = directory / "journal.log"

    def study(self) -> optuna.Study | None:
        if not self.journal.exists():
            return None
        try:
            return optuna.load_study(study_name="soak", storage=open_storage(self.url))
        except KeyError:  # the study is not in the log yet
            return None

    def running(self) -> list[optuna.trial.FrozenTrial]:
        study = self.study()
        if study is None:
            return []
        return [t for t in study.get_trials(deepcopy=False,
                                            states=(optuna.trial.TrialState.RUNNING,))
                if "worker" in t.user_attrs and t.user_attrs.get("curve")]

    def finished(self) -> int:
        study = self.study()
        return 0 if study is None else finished_count(study)

    def folds(self) -> int:
        study = self.study()
        return 0 if study is None else sum(k.startswith(FOLD_PREFIX) for k in study.user_attrs)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def wait_for(condition, what: str, run: subprocess.Popen[str], log: Path,
             timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert run.poll() is None, f"seed {SEED}: the run ended before {what}:\n" \
                                   f"{log.read_text()[-3000:]}"
        assert time.monotonic() < deadline, f"seed {SEED}: no {what} in {timeout:.0f} s"
        time.sleep(0.2)


def kill_in_search(watch: Watch, target: str, at: int, run: subprocess.Popen[str],
                   log: Path) -> Kill:
    """SIGKILL one process of a trial that is training, once `at` trials have finished."""
    wait_for(lambda: watch.finished() >= at, f"{at} trials finished", run, log)
    running: list[optuna.trial.FrozenTrial] = []
    wait_for(lambda: running.extend(watch.running()) or running, "trial running", run, log)
    trial = random.Random(SEED + at).choice(running)
    pid = (int(trial.user_attrs["worker"].rsplit(":", 1)[1]) if target == "trial worker"
           else trial.user_attrs["owner"]["pid"])
    os.kill(pid, signal.SIGKILL)
    return Kill(at, target, pid, trial.number, datetime.now())


def test_a_sweep_survives_five_sigkills(tmp_path: Path, tiny_backbone: Path) -> None:
    sweep = soak_sweep(tmp_path, tiny_backbone)
    results = tmp_path / "results"
    watch = Watch(results / "soak")
    rng = random.Random(SEED)
    # One moment in each quarter of the search, so that no two kills land together.
    quarter = (TRIALS - 12) // 4
    moments = [6 + q * quarter + rng.randrange(quarter) for q in range(4)]
    targets = rng.sample(["trial worker", "trial worker", "worker orchestrator",
                          "worker orchestrator"], 4)

    log = tmp_path / "run.log"
    run = subprocess.Popen([sys.executable, "-m", "tlsweep", "run", str(sweep), "--workers",
                            "2"], text=True, stdout=log.open("w"), stderr=subprocess.STDOUT,
                           start_new_session=True, env={**os.environ, "TLSWEEP_RESULTS":
                                                        str(results)})
    kills = [kill_in_search(watch, target, at, run, log)
             for at, target in zip(moments, targets, strict=True)]
    # The fifth: the run (the launcher and the stage's process) once a fold has landed.
    wait_for(lambda: watch.folds() >= 1, "fold recorded", run, log)
    os.killpg(run.pid, signal.SIGKILL)
    run.wait(30)
    kills.append(Kill(TRIALS, "run, in the finalists' stage", run.pid))
    folds_before = watch.folds()

    resumed = run_cli("resume", "soak", env={"TLSWEEP_RESULTS": str(results)})
    story = f"seed {SEED}, kills {kills}\n{log.read_text()[-2000:]}\n{resumed.stdout[-2000:]}"
    assert resumed.returncode == 0, story + resumed.stderr[-2000:]
    assert "folds recorded by an earlier run" in resumed.stdout, story
    assert len(kills) == 5 and len({k.pid for k in kills}) == 5, story

    study = watch.study()
    assert study is not None
    trials = study.get_trials(deepcopy=False)
    # The budget is exact: 60 planned trials, each finished once (a re-queued one through its
    # retry), none left running.
    assert planned_count(study) == TRIALS == finished_count(study), story
    assert not [t.number for t in trials if t.state not in (*FINAL,
                                                           optuna.trial.TrialState.FAIL)]
    retried = [t.system_attrs["failed_trial"] for t in trials if "failed_trial" in t.system_attrs]
    assert len(retried) == len(set(retried)), f"a trial was retried twice: {retried}"
    for kill in kills[:4]:  # each killed trial failed, unless it ended as the kill was sent
        killed = next(t for t in trials if t.number == kill.trial)
        assert killed.state.name == "FAIL" or killed.datetime_complete < (
            kill.when + timedelta(seconds=1)), (kill, killed.state)
    # No epoch twice: a retry resumed from its checkpoint continues the curve.
    for trial in trials:
        steps = [r["step"] for r in trial.user_attrs.get("curve", [])]
        assert steps == sorted(set(steps)), (trial.number, steps)

    parquet = sorted((results / "soak").glob("*.parquet"))
    assert {p.name for p in parquet} >= {"leaderboard.parquet", "curves.parquet"}, parquet
    tables = {p.name: pd.read_parquet(p) for p in parquet}
    board = tables["leaderboard.parquet"]
    numbers = board.loc[board["role"] == "trial", "trial"].tolist()
    assert sorted(set(numbers)) == sorted(numbers), "a trial appears twice on the leaderboard"
    curves = tables["curves.parquet"]
    assert not curves.duplicated(["trial", "step"]).any(), "an epoch appears twice"

    report = study_report(study)
    assert report is not None and folds_before >= 1, story

    samples: dict[tuple[str, int], list[float]] = defaultdict(list)
    ended = sorted((t for t in trials if t.datetime_complete is not None),
                   key=lambda t: t.datetime_complete)
    for trial in ended:
        sample = recorded_memory(trial.user_attrs)
        if sample is not None:
            samples["orchestrator", sample.orchestrator_pid].append(sample.orchestrator_mb)
            samples["trial worker", sample.worker_pid].append(sample.worker_mb)
    growth = {key: round(mb[-1] - mb[FROM_TRIAL - 1], 1) for key, mb in samples.items()
              if len(mb) >= FROM_TRIAL}
    print(f"seed {SEED}; kills: {kills}")
    print("trial states:", Counter(t.state.name for t in trials))
    print("trials per process:", {f"{k[0]} {k[1]}": len(v) for k, v in samples.items()})
    print(f"growth from the {FROM_TRIAL}th trial to the last (MB):", growth)
    assert {kind for kind, _ in growth} == {"orchestrator", "trial worker"}, (
        f"no process of each kind lived {FROM_TRIAL} trials: {samples.keys()}")
    assert max(growth.values()) <= GROWTH_MB, growth
