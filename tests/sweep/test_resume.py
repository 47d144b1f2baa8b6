"""Never lose a sweep: real processes killed at real moments, then resumed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import optuna
import pandas as pd
import pytest

from tests.conftest import run_cli, tiny_space, tiny_sweep, write_class_images, write_yaml
from tlsweep.store import finished_count
from tlsweep.store._paths import sqlite_url

pytestmark = pytest.mark.slow
H, F, BUDGET = 2, 4, 3


@pytest.fixture
def sweep(tmp_path: Path, tiny_backbone: Path) -> Path:
    # Enough images that decoding and each epoch take a moment a test can aim at.
    data = write_class_images(tmp_path / "data", {"red": 160, "green": 160, "blue": 160},
                              size=48)
    space = write_yaml(tmp_path / "space.yaml", tiny_space(tiny_backbone))
    return write_yaml(tmp_path / "sweep.yaml", tiny_sweep(
        data, space, budget=f"{{trials: {BUDGET}}}",
        training=f"{{head_epochs: {H}, finetune_epochs: {F}, batch_size: 16}}"))


def start(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    log = Path(os.environ["TLSWEEP_RESULTS"]).parent / f"run-{time.monotonic_ns()}.log"
    process = subprocess.Popen([sys.executable, "-m", "tlsweep", *args], text=True,
                               stdout=log.open("w"), stderr=subprocess.STDOUT,
                               env={**os.environ, **(env or {})}, start_new_session=True)
    process.log = log  # type: ignore[attr-defined]
    return process


def study_dir() -> Path:
    return Path(os.environ["TLSWEEP_RESULTS"]) / "tiny"


def leaderboard_loads() -> None:
    """Whenever the leaderboard exists, it is a whole file."""
    path = study_dir() / "leaderboard.parquet"
    if path.exists():
        pd.read_parquet(path)


def checkpoints() -> list[dict]:
    found = []
    for pointer in (study_dir() / "trials").glob("*/latest.json"):
        try:
            found.append({"trial": int(pointer.parent.name),
                          **json.loads(pointer.read_text())["state"]})
        except (OSError, ValueError):
            continue
    return found


def wait_for(condition: Callable[[], bool], process: subprocess.Popen[str],
             timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        leaderboard_loads()
        assert process.poll() is None, "the run ended before the moment to kill it"
        assert time.monotonic() < deadline, "timed out waiting for the moment to kill"
        time.sleep(0.005)


def kill_hard(process: subprocess.Popen[str]) -> None:
    """Preemption: the orchestrator and its worker die at once."""
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(30)


def load() -> optuna.Study:
    return optuna.load_study(study_name="tiny", storage=sqlite_url(study_dir()))


def assert_complete_and_consistent() -> optuna.Study:
    study = load()
    states = [t.state for t in study.trials]
    finished = [t for t in study.trials if t.state.is_finished()
                and t.state != optuna.trial.TrialState.FAIL]
    assert len(finished) == BUDGET == finished_count(study), states
    retried = {n for t in study.trials for n in t.system_attrs.get("retry_history", [])}
    for trial in study.trials:
        if trial.state == optuna.trial.TrialState.FAIL:
            assert trial.number in retried, "a failed trial was not re-queued"
    for trial in finished:
        steps = [r["step"] for r in trial.user_attrs["curve"]]
        assert steps == list(range(H + F)), (trial.number, steps)
        assert sorted(trial.intermediate_values) == list(range(H + F))
    board = pd.read_parquet(study_dir() / "leaderboard.parquet")
    assert (board["state"] == "complete").sum() == BUDGET
    curves = pd.read_parquet(study_dir() / "curves.parquet")
    complete = board.loc[board["state"] == "complete", "trial"]
    assert not curves[curves["trial"].isin(complete)].duplicated(["trial", "step"]).any()
    return study


def resume_to_the_end() -> optuna.Study:
    done = run_cli("resume", "tiny")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return assert_complete_and_consistent()


def test_sigkill_in_phase_two_resumes_from_the_checkpoint(sweep: Path) -> None:
    process = start("run", str(sweep))
    wait_for(lambda: any(c["phase"] == "finetune" and c["step"] < H + F - 1
                         for c in checkpoints()), process)
    killed_at = max(c["step"] for c in checkpoints() if c["phase"] == "finetune")
    kill_hard(process)
    leaderboard_loads()
    killed = [t for t in load().trials if t.state == optuna.trial.TrialState.RUNNING]
    assert len(killed) == 1

    study = resume_to_the_end()
    retry = next(t for t in study.trials
                 if t.system_attrs.get("failed_trial") == killed[0].number
                 and t.state == optuna.trial.TrialState.COMPLETE)
    resumed_from = retry.user_attrs["resumed_from_step"]
    assert resumed_from >= killed_at >= H  # the checkpoint of phase 2 was used
    # Each epoch once, and the first epoch run after resuming follows the checkpointed one.
    curve = retry.user_attrs["curve"]
    assert [r["step"] for r in curve] == list(range(H + F))
    assert curve[resumed_from + 1]["step"] == resumed_from + 1


@pytest.mark.parametrize("moment", ["cache build", "phase 1", "between trials"])
def test_kills_at_other_moments_resume_to_a_consistent_study(sweep: Path, moment: str) -> None:
    process = start("run", str(sweep))
    if moment == "cache build":
        cache = Path(os.environ["TLSWEEP_CACHE"]) / "datasets"
        wait_for(lambda: any(cache.glob(".building-*")), process, timeout=120)
    elif moment == "phase 1":
        wait_for(lambda: any(c["phase"] == "head" for c in checkpoints()), process)
    else:
        def one_finished() -> bool:
            try:
                board = pd.read_parquet(study_dir() / "leaderboard.parquet")
            except (OSError, ValueError):
                return False
            return (board["state"] == "complete").sum() == 1
        wait_for(one_finished, process)
    kill_hard(process)
    leaderboard_loads()
    resume_to_the_end()


@pytest.mark.parametrize("action, reason", [
    ("raise", "RuntimeError: failpoint: injected exception"),
    ("sigkill", "worker killed by SIGKILL"),
    ("segfault", "segmentation fault"),
    ("oom", "MemoryError: the trial passed the worker's memory limit"),
])
def test_a_trial_that_dies_is_recorded_as_failed_and_the_sweep_completes(
        sweep: Path, action: str, reason: str) -> None:
    sweep.write_text(sweep.read_text() + "execution: {memory_limit_mb: 1500}\n")
    done = run_cli("run", str(sweep), env={"TLSWEEP_FAILPOINT": f"trial=1,step=1:{action}"})
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    board = pd.read_parquet(study_dir() / "leaderboard.parquet")
    failed = board[board["state"] == "fail"]
    assert failed["trial"].tolist() == [1]
    assert reason in failed["error"].iloc[0]
    if action in ("sigkill", "segfault"):  # its last words are in the study's log: named
        assert f"(its log: {study_dir() / 'tlsweep.log'})" in failed["error"].iloc[0]
    assert (board["state"] == "complete").sum() == BUDGET - 1


def test_too_many_failures_in_a_row_stop_the_sweep(sweep: Path) -> None:
    sweep.write_text(sweep.read_text() + "execution: {max_consecutive_failures: 2}\n")
    done = run_cli("run", str(sweep), env={"TLSWEEP_FAILPOINT": "trial=*,step=0:raise"})
    assert done.returncode == 1
    assert "stopped after 2 failed trials in a row" in done.stderr
    assert "injected exception" in done.stderr and "Traceback" not in done.stderr
    board = pd.read_parquet(study_dir() / "leaderboard.parquet")
    assert board["state"].tolist() == ["fail", "fail"]


def test_ctrl_c_stops_cleanly_and_resume_finishes(sweep: Path) -> None:
    process = start("run", str(sweep))
    wait_for(lambda: any(c["step"] >= 1 for c in checkpoints()), process)
    process.send_signal(signal.SIGINT)
    assert process.wait(120) == 130
    output = process.log.read_text()  # type: ignore[attr-defined]
    assert "tlsweep resume tiny" in output and "Traceback" not in output
    study = load()
    assert not [t for t in study.trials if t.state == optuna.trial.TrialState.RUNNING]
    waiting = [t for t in study.trials if t.state == optuna.trial.TrialState.WAITING]
    assert len(waiting) == 1, "the interrupted trial is queued for resumption"
    resume_to_the_end()


def test_resume_refuses_a_changed_sweep_unless_forced(sweep: Path) -> None:
    done = run_cli("run", str(sweep), "--trials", "1")
    assert done.returncode == 0
    sweep.write_text(sweep.read_text().replace("head_epochs: 2", "head_epochs: 3")
                     .replace("seed: 0", "seed: 7"))
    refused = run_cli("resume", "tiny")
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert "training.head_epochs" in refused.stderr and "seed" in refused.stderr
    forced = run_cli("resume", "tiny", "--force")
    assert forced.returncode == 0, forced.stderr[-2000:]


def test_leaderboard_refresh_rebuilds_from_storage(sweep: Path) -> None:
    assert run_cli("run", str(sweep), "--trials", "1").returncode == 0
    (study_dir() / "leaderboard.parquet").unlink()
    done = run_cli("leaderboard", "tiny", "--refresh", "--format", "csv")
    assert done.returncode == 0 and len(done.stdout.splitlines()) == 2
    assert len(pd.read_parquet(study_dir() / "leaderboard.parquet")) == 1


def test_a_worker_past_its_memory_limit_is_replaced(sweep: Path) -> None:
    # 256 MB is below any TensorFlow worker's footprint: every trial gets a fresh worker.
    sweep.write_text(sweep.read_text() + "execution: {recycle_memory_mb: 256}\n")
    done = run_cli("run", str(sweep))
    assert done.returncode == 0, done.stderr[-2000:]
    study = load()
    workers = [t.user_attrs["worker"] for t in study.trials]
    assert len(set(workers)) == BUDGET == len(workers)
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
