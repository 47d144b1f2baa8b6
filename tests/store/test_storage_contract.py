"""One contract, every storage a study can live in: SQLite (one worker), the journal file
(several workers on one machine) and PostgreSQL (several machines; started by .ci/postgres.sh).
Each test runs once per backend, the way optuna/testing/pytest_storages.py runs Optuna's. No
TensorFlow: the orchestrator's own storage calls, with trials told by hand."""

from __future__ import annotations

import multiprocessing
import os
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from tests.conftest import postgres_url_or_skip
from tlsweep.store import (
    budget_lock,
    lineage_root,
    mask,
    open_storage,
    planned_count,
    record_heartbeat,
)
from tlsweep.store._paths import sqlite_url
from tlsweep.store._storage import journal_url
from tlsweep.sweep import recover_stale
from tlsweep.sweep._study import requeue

BACKENDS = ("sqlite", "journal", "postgresql")


@pytest.fixture(params=BACKENDS)
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield sqlite_url(tmp_path)
    elif request.param == "journal":
        yield journal_url(tmp_path)
    else:
        yield postgres_url_or_skip()  # a study name per test keeps the tests apart in one database


@pytest.fixture
def name() -> str:
    return f"contract-{uuid.uuid4().hex[:10]}"


def new_study(url: str, name: str, **storage_options: int) -> optuna.Study:
    return optuna.create_study(study_name=name, storage=open_storage(url, **storage_options),
                               direction="maximize")


def dead_pid() -> int:
    """The pid of a process of this machine that has exited."""
    process = multiprocessing.get_context("spawn").Process(target=os.getpid)
    process.start()
    process.join()
    return process.pid  # type: ignore[return-value]


# ----------------------------------------------------------------------------- the budget
def _take_trials(url: str, name: str, directory: str, budget: int) -> None:
    """As SweepRunner.next_trial: decide and ask under the study's lock, until the budget is
    spent. The pause between the count and the ask is where an unlocked pair would overshoot."""
    storage = open_storage(url)
    study = optuna.load_study(study_name=name, storage=storage)
    while True:
        with budget_lock(storage, name, url, Path(directory)):
            if planned_count(study) >= budget:
                return
            time.sleep(0.02)
            trial = study.ask()
        study.tell(trial, 0.5)


def test_the_budget_is_exact_however_many_processes_share_it(url: str, name: str,
                                                              tmp_path: Path) -> None:
    new_study(url, name)
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_take_trials, args=(url, name, str(tmp_path), 12))
               for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(180)
    assert [w.exitcode for w in workers] == [0] * 4
    study = optuna.load_study(study_name=name, storage=open_storage(url))
    assert len(study.trials) == 12
    assert planned_count(study) == 12


# ----------------------------------------------------------------------------- stale trials
def test_a_trial_whose_process_died_is_failed_and_requeued_with_its_curve(url: str,
                                                                          name: str) -> None:
    study = new_study(url, name)
    trial = study.ask({"head_lr": optuna.distributions.FloatDistribution(1e-5, 1e-3, log=True)})
    trial.report(0.4, 0)
    trial.report(0.6, 1)
    trial.set_user_attr("owner", {"host": socket.gethostname(), "pid": dead_pid()})
    alive = study.ask()
    alive.set_user_attr("owner", {"host": socket.gethostname(), "pid": os.getpid()})

    assert recover_stale(study) == [trial.number]

    stored = {t.number: t for t in study.get_trials(deepcopy=False)}
    assert stored[trial.number].state == TrialState.FAIL
    assert "process died" in stored[trial.number].user_attrs["error"]
    assert stored[alive.number].state == TrialState.RUNNING  # a live owner's trial is left
    retry = next(t for t in stored.values() if t.state == TrialState.WAITING)
    assert retry.params == stored[trial.number].params
    assert retry.intermediate_values == {0: 0.4, 1: 0.6}  # the retry resumes from its curve
    assert lineage_root(retry) == trial.number
    assert planned_count(study) == 2  # a retry is not a new plan: the budget is not spent twice
    assert recover_stale(study) == []  # reclaimed once, whoever asks again


def test_a_silent_trial_is_reclaimed_where_the_storage_keeps_heartbeats(url: str,
                                                                        name: str) -> None:
    study = new_study(url, name, heartbeat_interval=1, grace_period=1)
    trial = study.ask()
    # Its owner is alive but on another machine: only a heartbeat can tell it is gone.
    trial.set_user_attr("owner", {"host": "elsewhere", "pid": os.getpid()})
    record_heartbeat(study, trial)
    time.sleep(2.5)
    reclaimed = recover_stale(study)
    if url.startswith("journal"):  # no heartbeat there: another machine's trial is never taken
        assert reclaimed == []
    else:
        assert reclaimed == [trial.number]
        assert "heartbeats" in study.trials[trial.number].user_attrs["error"]


# ----------------------------------------------------------------------------- retries
def test_a_retry_inherits_the_params_the_curve_and_the_lineage(url: str, name: str) -> None:
    study = new_study(url, name)
    first = study.ask({"depth": optuna.distributions.FloatDistribution(0.0, 0.7)})
    first.report(0.3, 0)
    study.tell(first, state=TrialState.FAIL)
    requeue(study, study.trials[first.number])
    second = study.ask()
    second.report(0.5, 1)
    study.tell(second, state=TrialState.FAIL)
    requeue(study, study.trials[second.number])  # a retry of a retry
    third = study.ask()

    stored = study.trials[third.number]
    assert stored.params == {"depth": first.params["depth"]}
    assert stored.intermediate_values == {0: 0.3, 1: 0.5}
    assert lineage_root(stored) == first.number
    assert planned_count(study) == 1


# ----------------------------------------------------------------------------- resume
def test_a_study_reopened_from_its_url_is_the_same_study(url: str, name: str) -> None:
    study = new_study(url, name)
    for value in (0.2, 0.7):
        trial = study.ask({"x": optuna.distributions.FloatDistribution(0.0, 1.0)})
        trial.set_user_attr("curve", [{"step": 0, "val_accuracy": value}])
        study.tell(trial, value)
    running = study.ask()
    del study

    again = optuna.load_study(study_name=name, storage=open_storage(url))
    assert [t.state for t in again.trials] == [TrialState.COMPLETE] * 2 + [TrialState.RUNNING]
    assert [t.value for t in again.trials[:2]] == [0.2, 0.7]
    assert again.trials[1].user_attrs["curve"] == [{"step": 0, "val_accuracy": 0.7}]
    assert again.trials[running.number].state == TrialState.RUNNING
    assert again.best_value == 0.7


# ----------------------------------------------------------------------------- masked URLs
def test_a_url_is_shown_without_its_password_and_only_that_is_hidden(url: str) -> None:
    shown = mask(f"cannot open {url}")
    if "@" in url:
        secret = url.split("://", 1)[1].rsplit("@", 1)[0].split(":", 1)[1]
        assert secret not in shown
        assert shown == f"cannot open {url.replace(':' + secret + '@', ':***@')}"
    else:  # a file's URL carries no secret: it is shown whole
        assert shown == f"cannot open {url}"
