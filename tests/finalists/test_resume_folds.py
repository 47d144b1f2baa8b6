"""The finalists' stage resumes fold by fold: a run killed with SIGKILL after some folds landed
loses only the folds in flight; `resume` trains the others and delivers what an uninterrupted
run of the same seed delivers. And the study reads right in plain Optuna."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest

from tests.conftest import run_cli, tiny_space, tiny_sweep, write_class_images, write_yaml
from tlsweep.finalists import study_report
from tlsweep.finalists._recorded import DELIVERED_NOTE, FOLD_PREFIX, recorded_folds
from tlsweep.store._paths import sqlite_url

pytestmark = pytest.mark.slow
FOLDS, FINALISTS = 3, 2  # two searched finalists and the anchor recipe: 9 folds


def sweep(tmp_path: Path, backbone: Path) -> Path:
    data = write_class_images(tmp_path / "data", {"a": 30, "b": 30, "c": 20}, size=24)
    space = write_yaml(tmp_path / "space.yaml", tiny_space(backbone))
    return write_yaml(tmp_path / "sweep.yaml", tiny_sweep(
        data, space, budget="{trials: 3}",
        training="{head_epochs: 2, finetune_epochs: 3, batch_size: 16}",
        finalists=f"{{k: {FINALISTS}, reevaluate: on, folds: {FOLDS}, fold_workers: 1, "
                  "anchor: {head_epochs: 1, finetune_epochs: 2}}"))


def folds_landed(directory: Path) -> int:
    """Fold records in the study's SQLite file, read without Optuna (no lock held long)."""
    path = directory / "study.db"
    if not path.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1) as db:
            return db.execute("SELECT COUNT(*) FROM study_user_attributes WHERE key LIKE ?",
                              (f"{FOLD_PREFIX}%",)).fetchone()[0]
    except sqlite3.OperationalError:  # a table not created yet, or the file being written
        return 0


def load(directory: Path) -> optuna.Study:
    return optuna.load_study(study_name="tiny", storage=sqlite_url(directory))


def test_a_run_killed_in_the_folds_resumes_them_and_delivers_the_same(
        tmp_path: Path, tiny_backbone: Path) -> None:
    path = sweep(tmp_path, tiny_backbone)
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    done = run_cli("run", str(path), env={"TLSWEEP_RESULTS": str(whole)})
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    expected = study_report(load(whole / "tiny"))
    assert expected is not None and len(expected.finalists) == FINALISTS + 1

    log = (tmp_path / "killed.log").open("w")
    process = subprocess.Popen([sys.executable, "-m", "tlsweep", "run", str(path)], text=True,
                               stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                               env={**os.environ, "TLSWEEP_RESULTS": str(killed)})
    deadline = time.monotonic() + 600
    while folds_landed(killed / "tiny") < 2:
        assert process.poll() is None, (tmp_path / "killed.log").read_text()[-3000:]
        assert time.monotonic() < deadline, "no two folds landed in time"
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)  # the run, the stage's process and its workers
    process.wait(30)
    before = recorded_folds(load(killed / "tiny").user_attrs)
    assert 2 <= len(before) < FOLDS * (FINALISTS + 1), len(before)
    assert study_report(load(killed / "tiny")) is None  # the stage did not end

    resumed = run_cli("resume", "tiny", env={"TLSWEEP_RESULTS": str(killed)})
    assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-2000:]
    total = FOLDS * (FINALISTS + 1)
    assert (f"{len(before)} of {total} folds recorded by an earlier run: "
            f"{total - len(before)} to train") in resumed.stdout, resumed.stdout
    study = load(killed / "tiny")
    after = recorded_folds(study.user_attrs)
    assert len(after) == total
    for key, fold in before.items():  # not trained again: the same record, started then
        assert after[key] == fold
    report = study_report(study)
    assert report is not None
    assert (report.chosen, report.choice) == (expected.chosen, expected.choice)
    assert report.delivered.test_confusion == expected.delivered.test_confusion
    assert [f.cv_confusion for f in report.finalists] == [
        f.cv_confusion for f in expected.finalists]


def test_plain_optuna_names_the_metric_and_the_delivered_model(tmp_path: Path,
                                                               tiny_backbone: Path) -> None:
    data = write_class_images(tmp_path / "data", {"a": 12, "b": 12})
    space = write_yaml(tmp_path / "space.yaml", tiny_space(tiny_backbone))
    path = write_yaml(tmp_path / "sweep.yaml", tiny_sweep(
        data, space, budget="{trials: 2}",
        training="{head_epochs: 1, finetune_epochs: 1, batch_size: 16}",
        finalists="{k: 1, reevaluate: on, folds: 2}"))
    done = run_cli("run", str(path), env={"TLSWEEP_RESULTS": str(tmp_path / "results")})
    assert done.returncode == 0, done.stderr[-2000:]
    study = load(tmp_path / "results" / "tiny")  # plain Optuna, as the dashboard opens it
    assert study.metric_names == [study.user_attrs["objective"]]
    note = study.user_attrs[DELIVERED_NOTE]
    report = study_report(study)
    assert note.startswith("tlsweep delivered ") and report.delivered.backbone in note
    assert report.choice in note
