"""Folds as work items in the study: claimed before training, taken over when a claim lapses,
recorded with their claimant, awaited by the lead. No TensorFlow: a real Optuna study on a
journal file, two ledgers standing for two processes."""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import replace
from pathlib import Path

import optuna

from tlsweep.finalists._recorded import (
    CLAIM_STALE_S,
    FoldLedger,
    recorded_claims,
    recorded_folds,
)
from tlsweep.finalists._records import FoldResult


def study_on_journal(path: Path) -> optuna.Study:
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    return optuna.create_study(storage=JournalStorage(JournalFileBackend(str(path))),
                               study_name="s", direction="maximize")


def ledger(study: optuna.Study, name: str) -> FoldLedger:
    found = FoldLedger(study, contextlib.nullcontext)
    found.by = name  # two processes, as two names
    return found


def fold(trial: int, index: int, key: str = "k") -> FoldResult:
    return FoldResult(trial, index, key, [0, 1], 1.0, "host:1", "now")


def test_a_claimed_fold_is_trained_once(tmp_path: Path) -> None:
    study = study_on_journal(tmp_path / "j.log")
    a, b = ledger(study, "a:1"), ledger(study, "b:2")
    assert a.claim(0, 0, "k") and not b.claim(0, 0, "k")
    assert b.claim(0, 1, "k") and not a.claim(0, 1, "k")
    a.landed(fold(0, 0))
    assert not b.claim(0, 0, "k")  # recorded: nobody trains it again
    assert recorded_folds(study.user_attrs)[0, 0].claimed_by == "a:1"
    assert recorded_claims(study.user_attrs)[0, 1].by == "b:2"


def test_a_lapsed_claim_is_taken_over_and_a_renewed_one_is_not(tmp_path: Path) -> None:
    study = study_on_journal(tmp_path / "j.log")
    a, b = ledger(study, "a:1"), ledger(study, "b:2")
    assert a.claim(1, 0, "k") and a.claim(1, 1, "k")
    # a's claims as if last renewed long ago: its process is gone
    for claim in a.claims:
        study.set_user_attr(f"final_claim:{claim.trial}:{claim.index}",
                            replace(claim, at=time.time() - CLAIM_STALE_S - 1).as_dict())
    a.claims = [replace(c, at=time.time() - CLAIM_STALE_S - 1) for c in a.claims]
    a.renewed_at = 0.0
    assert b.claim(1, 0, "k")  # lapsed: b takes it over
    a.renew_if_due()  # a is alive after all and renews what it still holds
    assert recorded_claims(study.user_attrs)[1, 0].by == "a:1"
    assert not b.claim(1, 1, "k")  # renewed: still a's


def test_a_claim_for_another_recipe_does_not_hold_the_fold(tmp_path: Path) -> None:
    study = study_on_journal(tmp_path / "j.log")
    a, b = ledger(study, "a:1"), ledger(study, "b:2")
    a.landed(fold(2, 0, key="old"))
    assert b.claim(2, 0, "new")  # a record for another recipe or other images is not reused


def test_the_lead_waits_for_a_fold_trained_elsewhere(tmp_path: Path) -> None:
    study = study_on_journal(tmp_path / "j.log")
    lead, helper = ledger(study, "lead:1"), ledger(study, "helper:2")
    assert helper.claim(3, 0, "k") and helper.claim(3, 1, "k")

    def helper_trains() -> None:
        time.sleep(0.5)
        helper.landed(fold(3, 0))

    thread = threading.Thread(target=helper_trains)
    thread.start()
    began = time.monotonic()
    answer = lead.await_folds([(3, 0, "k"), (3, 1, "k")])
    thread.join()
    assert time.monotonic() - began >= 0.4
    assert [(f.trial, f.index, f.claimed_by) for f in answer.landed] == [(3, 0, "helper:2")]
    assert answer.mine == []  # fold 1 is still the helper's, renewed


def test_every_process_of_the_stage_uses_the_first_ones_fold_count(tmp_path: Path) -> None:
    from tlsweep.finalists._recorded import FOLDS, agreed_folds

    study = study_on_journal(tmp_path / "j.log")
    assert agreed_folds(study, contextlib.nullcontext, 3) == 3  # the first: its time left cut
    assert agreed_folds(study, contextlib.nullcontext, 5) == 3  # a helper with more time left
    study.set_user_attr(FOLDS, None)  # what recording the report does
    assert agreed_folds(study, contextlib.nullcontext, 5) == 5
