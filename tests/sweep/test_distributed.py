"""Several workers on one study: local processes on a journal file, and real PostgreSQL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import optuna
import pandas as pd
import pytest

from tests.conftest import (
    postgres_url_or_skip,
    run_cli,
    tiny_space,
    tiny_sweep,
    write_class_images,
    write_yaml,
)
from tlsweep.finalists import recorded_folds, study_report
from tlsweep.store import finished_count, mask, open_storage
from tlsweep.store._storage import journal_url

H, F = 2, 4
COMPLETE = optuna.trial.TrialState.COMPLETE


def test_mask_hides_passwords_everywhere() -> None:
    text = "cannot reach postgresql://ann:s3cr%40t@db.example:5432/x or mysql+pymysql://b:pw@h/d"
    assert mask(text) == ("cannot reach postgresql://ann:***@db.example:5432/x or "
                          "mysql+pymysql://b:***@h/d")
    assert mask("sqlite:///results/a/study.db") == "sqlite:///results/a/study.db"


@pytest.fixture
def postgres_url() -> str:
    return postgres_url_or_skip()


def shared_sweep(tmp_path: Path, backbone: Path, study: str, trials: int,
                 execution: str = "", finalists: str = "{k: 1, folds: 2}") -> Path:
    """``finalists``: small by default, since every worker helps with the folds after the
    search."""
    data = write_class_images(tmp_path / "data", {"red": 200, "green": 200, "blue": 200},
                              size=48)
    space = write_yaml(tmp_path / "space.yaml", tiny_space(backbone))
    checkpoints = tmp_path / "shared-checkpoints"
    return write_yaml(tmp_path / "sweep.yaml", tiny_sweep(
        data, space, study=study, budget=f"{{trials: {trials}}}",
        training=f"{{head_epochs: {H}, finetune_epochs: {F}, batch_size: 16}}",
        execution=f"{{checkpoint_dir: {checkpoints}{execution}}}", finalists=finalists))


def start_worker(sweep: Path, url: str, log: Path) -> subprocess.Popen[str]:
    # The URL travels in the environment, as `run --workers` passes it: never on a command line.
    return subprocess.Popen([sys.executable, "-m", "tlsweep", "worker", str(sweep)], text=True,
                            stdout=log.open("w"), stderr=subprocess.STDOUT,
                            env={**os.environ, "TLSWEEP_STORAGE": url})


def load(url: str, study: str) -> optuna.Study:
    return optuna.load_study(study_name=study, storage=url)


@pytest.mark.slow
def test_three_workers_finish_exactly_the_budget(tmp_path: Path, tiny_backbone: Path,
                                                  postgres_url: str) -> None:
    name = f"three-{uuid.uuid4().hex[:8]}"
    sweep = shared_sweep(tmp_path, tiny_backbone, name, trials=9)
    workers = [start_worker(sweep, postgres_url, tmp_path / f"w{i}.log") for i in range(3)]
    codes = [w.wait(600) for w in workers]
    logs = "".join((tmp_path / f"w{i}.log").read_text() for i in range(3))
    assert codes == [0, 0, 0], logs[-3000:]
    password = postgres_url.split(":")[2].split("@")[0]
    assert password not in logs
    study = load(postgres_url, name)
    complete = [t for t in study.trials if t.state == COMPLETE]
    assert len(complete) == 9 == len(study.trials) == finished_count(study)
    numbers = [t.number for t in study.trials]
    assert len(numbers) == len(set(numbers))
    owners = {t.user_attrs["owner"]["pid"] for t in complete}
    assert owners == {w.pid for w in workers}, "every worker ran at least one trial"
    board = pd.read_parquet(tmp_path / "results" / name / "leaderboard.parquet")
    assert sorted(board["trial"]) == sorted(numbers)


@pytest.mark.slow
def test_two_workers_share_the_finalists_folds(tmp_path: Path, tiny_backbone: Path,
                                               postgres_url: str) -> None:
    """Issue 37: the folds are work items in the study. Two ``tlsweep worker`` processes on
    PostgreSQL end the search, then claim the finalists' folds between them; each fold is
    recorded once, with the worker that trained it. ``resume`` leads the stage afterwards: it
    trains no fold, chooses and delivers."""
    name = f"folds-{uuid.uuid4().hex[:8]}"
    sweep = shared_sweep(tmp_path, tiny_backbone, name, trials=4,
                         finalists="{k: 3, folds: 4, fold_workers: 1}")
    workers = [start_worker(sweep, postgres_url, tmp_path / f"w{i}.log") for i in range(2)]
    codes = [w.wait(900) for w in workers]
    logs = "".join((tmp_path / f"w{i}.log").read_text() for i in range(2))
    assert codes == [0, 0], logs[-3000:]
    study = load(postgres_url, name)
    folds = recorded_folds(study.user_attrs)
    finalists = min(3, sum(t.state == COMPLETE for t in study.trials))
    assert len(folds) == 4 * finalists  # every fold of every finalist, once
    trained_by = {fold.claimed_by.rsplit(":", 1)[1] for fold in folds.values()}
    assert trained_by == {str(w.pid) for w in workers}, "each worker trained some folds"
    assert "folds trained here" in logs and study_report(study) is None  # helpers don't choose

    resumed = run_cli("resume", name, "--storage", postgres_url)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    report = study_report(load(postgres_url, name))
    assert report is not None and report.delivered.path
    assert len(report.finalists) == finalists
    n = 4 * finalists  # the lead found every fold recorded
    assert f"{n} of {n} folds recorded by an earlier run: 0 to train" in resumed.stdout
    assert recorded_folds(load(postgres_url, name).user_attrs) == folds


@pytest.mark.slow
def test_a_killed_workers_trial_is_finished_by_another(tmp_path: Path, tiny_backbone: Path,
                                                       postgres_url: str) -> None:
    name = f"killed-{uuid.uuid4().hex[:8]}"
    sweep = shared_sweep(tmp_path, tiny_backbone, name, trials=9,
                         execution=", heartbeat_interval_s: 1, heartbeat_grace_s: 4")
    workers = {}
    for i in range(3):
        process = start_worker(sweep, postgres_url, tmp_path / f"w{i}.log")
        workers[process.pid] = process
    victim, victim_trial = None, None
    deadline = time.monotonic() + 300
    while victim is None:
        assert time.monotonic() < deadline, "no trial reached phase 2 in time"
        try:
            running = load(postgres_url, name).get_trials(
                states=(optuna.trial.TrialState.RUNNING,))
        except KeyError:
            running = []
        for trial in running:
            curve = trial.user_attrs.get("curve") or []
            if any(r["phase"] == "finetune" for r in curve) and len(curve) < H + F - 1:
                victim, victim_trial = trial.user_attrs["owner"]["pid"], trial.number
                break
        time.sleep(0.1)
    os.kill(victim, signal.SIGKILL)
    survivors = [p for pid, p in workers.items() if pid != victim]
    assert [p.wait(600) for p in survivors] == [0, 0]
    workers[victim].wait(30)

    study = load(postgres_url, name)
    killed = next(t for t in study.trials if t.number == victim_trial)
    assert killed.state == optuna.trial.TrialState.FAIL
    assert "heartbeats" in killed.user_attrs["error"]
    retry = next(t for t in study.trials if t.system_attrs.get("failed_trial") == victim_trial)
    assert retry.state == COMPLETE and retry.user_attrs["owner"]["pid"] != victim
    assert retry.user_attrs["resumed_from_step"] >= H  # continued from the phase-2 checkpoint
    assert [r["step"] for r in retry.user_attrs["curve"]] == list(range(H + F))
    assert sum(t.state == COMPLETE for t in study.trials) == 9 == finished_count(study)


@pytest.mark.slow
def test_local_workers_share_a_journal_file(tmp_path: Path, tiny_backbone: Path) -> None:
    data = write_class_images(tmp_path / "data", {"red": 60, "green": 60, "blue": 60})
    space = write_yaml(tmp_path / "space.yaml", tiny_space(tiny_backbone))
    sweep = write_yaml(tmp_path / "sweep.yaml", tiny_sweep(data, space, budget="{trials: 4}"))
    done = run_cli("run", str(sweep), "--workers", "2")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "2 workers started (1 CPU threads each)" in done.stdout
    directory = tmp_path / "results" / "tiny"
    assert (directory / "journal.log").is_file() and not (directory / "study.db").exists()
    board = pd.read_parquet(directory / "leaderboard.parquet")
    assert (board["state"] == "complete").sum() == 4 and len(board) == 4
    assert board["worker"].nunique() == 2


def test_a_bad_password_is_never_printed(tmp_path: Path) -> None:
    data = write_class_images(tmp_path / "data", {"a": 3, "b": 3})
    space = write_yaml(tmp_path / "space.yaml", tiny_space(
        None, backbone="{choices: {MobileNetV2: {weights: none}}}"))
    sweep = write_yaml(tmp_path / "sweep.yaml", tiny_sweep(data, space).replace(
        "image_size: 16", "image_size: 32") + f"execution: {{checkpoint_dir: {tmp_path}}}\n")
    url = "postgresql://ann:hunter2-secret@127.0.0.1:1/none"
    for args in (["run", str(sweep), "--storage", url], ["worker", str(sweep)]):
        done = run_cli(*args, env={"TLSWEEP_STORAGE": url})
        assert done.returncode == 2, done.stderr
        assert "hunter2" not in done.stdout + done.stderr
        assert "postgresql://ann:***@127.0.0.1:1/none" in done.stderr


def test_shared_storage_needs_a_shared_checkpoint_folder(tmp_path: Path) -> None:
    data = write_class_images(tmp_path / "data", {"a": 3, "b": 3})
    space = write_yaml(tmp_path / "space.yaml", tiny_space(
        None, backbone="{choices: {MobileNetV2: {weights: none}}}"))
    sweep = write_yaml(tmp_path / "sweep.yaml", tiny_sweep(data, space).replace(
        "image_size: 16", "image_size: 32"))
    done = run_cli("worker", str(sweep), "--storage", "postgresql://u:p@127.0.0.1:1/x")
    assert done.returncode == 2 and "execution.checkpoint_dir" in done.stderr


@pytest.mark.slow
def test_gpus_pin_one_worker_to_each_device(tmp_path: Path, tiny_backbone: Path) -> None:
    """On a CPU machine TensorFlow finds no GPU and trains on the CPU; what is checked is that
    each worker was handed its own device through CUDA_VISIBLE_DEVICES."""
    data = write_class_images(tmp_path / "data", {"red": 60, "green": 60, "blue": 60})
    space = write_yaml(tmp_path / "space.yaml", tiny_space(tiny_backbone))
    sweep = write_yaml(tmp_path / "sweep.yaml", tiny_sweep(data, space, budget="{trials: 4}"))
    done = run_cli("run", str(sweep), "--gpus", "0,1")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "2 workers started" in done.stdout and "GPUs 0,1" in done.stdout
    study = optuna.load_study(study_name="tiny", storage=open_storage(
        journal_url(tmp_path / "results" / "tiny")))
    devices = {(t.user_attrs["owner"]["pid"], t.user_attrs["worker_devices"]
                ["cuda_visible_devices"]) for t in study.trials}
    assert {device for _, device in devices} == {"0", "1"}
    assert len({pid for pid, _ in devices}) == 2 == len(devices)


def _open_together(url: str, barrier: object, results: object) -> None:
    barrier.wait()  # type: ignore[attr-defined]
    try:
        open_storage(url)
        results.put("ok")  # type: ignore[attr-defined]
    except Exception as exc:  # the race's symptom is an error here
        results.put(f"{type(exc).__name__}: {exc}")  # type: ignore[attr-defined]


def test_workers_starting_together_on_a_fresh_database_all_open_it(postgres_url: str) -> None:
    """Optuna creates its schema when a storage is first opened; processes that open a new
    database at the same moment must not race there. Three fresh databases, five processes each,
    released by one barrier."""
    import multiprocessing

    import sqlalchemy

    admin = sqlalchemy.create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    context = multiprocessing.get_context("spawn")
    try:
        for _ in range(3):
            name = f"tlsweep_race_{uuid.uuid4().hex[:8]}"
            with admin.connect() as connection:
                connection.execute(sqlalchemy.text(f"CREATE DATABASE {name}"))
            url = postgres_url.rsplit("/", 1)[0] + f"/{name}"
            barrier, results = context.Barrier(5), context.Queue()
            processes = [context.Process(target=_open_together, args=(url, barrier, results))
                         for _ in range(5)]
            for process in processes:
                process.start()
            outcomes = [results.get(timeout=120) for _ in processes]
            for process in processes:
                process.join(30)
            with admin.connect() as connection:
                connection.execute(sqlalchemy.text(f"DROP DATABASE {name} WITH (FORCE)"))
            assert outcomes == ["ok"] * 5, outcomes
    finally:
        admin.dispose()
