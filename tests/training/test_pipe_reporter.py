"""The worker's reporter: epochs are answered while the next one trains, and a stop answer
still stops the trial at the epoch it was given for. No TensorFlow."""

from __future__ import annotations

from multiprocessing import Pipe
from multiprocessing.connection import Connection
from types import SimpleNamespace

import pytest

from tlsweep.training._epochs import AnswersLater, StopTrial
from tlsweep.training._worker import PipeReporter
from tlsweep.training.protocol import EpochAnswer, EpochFinished, RunTrial


def record(step: int) -> SimpleNamespace:
    return SimpleNamespace(step=step, as_dict=lambda: {"step": step})


def reported(step: int) -> tuple[PipeReporter, Connection]:
    """A reporter that has just reported ``step``, and the orchestrator's end, which read it."""
    worker_end, orchestrator = Pipe()
    reporter = PipeReporter(worker_end, number=0, memory_limited=False)
    reporter.epoch_finished(record(step))
    assert orchestrator.recv() == EpochFinished({"step": step})
    return reporter, orchestrator


def test_an_epoch_is_answered_while_the_next_trains() -> None:
    reporter, orchestrator = reported(0)  # returned without an answer
    assert isinstance(reporter, AnswersLater)
    reporter.poll()  # nothing yet: training goes on
    orchestrator.send(EpochAnswer.CONTINUE)
    reporter.poll()
    assert reporter.unanswered is None
    reporter.epoch_finished(record(1))
    orchestrator.recv()
    orchestrator.send(EpochAnswer.PRUNE)
    with pytest.raises(StopTrial) as stopped:
        reporter.poll()  # a batch of epoch 2 learns epoch 1 was pruned
    assert (stopped.value.reason, stopped.value.step) == ("pruned", 1)


def test_no_epoch_is_reported_before_the_last_is_answered() -> None:
    reporter, orchestrator = reported(3)
    orchestrator.send(EpochAnswer.INTERRUPT)
    with pytest.raises(StopTrial) as stopped:
        reporter.epoch_finished(record(4))
    assert (stopped.value.reason, stopped.value.step) == ("interrupted", 3)
    assert not orchestrator.poll(0.1), "epoch 4 must not be reported"


def test_a_failed_trial_leaves_no_answer_for_the_next() -> None:
    reporter, orchestrator = reported(0)
    orchestrator.send(EpochAnswer.CONTINUE)
    reporter.forget()  # the trial raised while its epoch 0 was unanswered
    orchestrator.send(RunTrial("next"))
    assert reporter.conn.recv() == RunTrial("next")
