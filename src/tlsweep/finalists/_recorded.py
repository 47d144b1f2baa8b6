"""The finalists' stage in the study's storage, written and read in this module only: its
report (a ``FinalReport``), each fold as it lands (a ``FoldResult``), each fold's claim by the
process that trains it (a ``FoldClaim``), and a plain sentence naming the delivered model where
Optuna's own tools show it. No TensorFlow.

Folds are work items, as trials are: every process that joins the stage (``run``, ``resume``,
each ``tlsweep worker``) claims a fold before training it, under the lock the study's workers
already share for its budget (``store.budget_lock``: a PostgreSQL advisory lock across
machines, else a file lock). A claim names its process and when it was last renewed; its
process renews it while the fold trains, so a claim left by a killed or lost process goes
stale and another takes the fold over."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from tlsweep.finalists._protocol import FoldsAwaited
from tlsweep.finalists._records import FinalReport, FoldClaim, FoldResult

REPORT = "final"  # the study's user attribute holding the report
DELIVERED_NOTE = "delivered_model"  # the sentence optuna-dashboard and `optuna` show
FOLD_PREFIX = "final_fold:"  # one user attribute per recorded fold: final_fold:TRIAL:INDEX
CLAIM_PREFIX = "final_claim:"  # one per claimed fold: final_claim:TRIAL:INDEX
FOLDS = "final_folds"  # the folds every process of the stage uses, fixed by the first
# A claim not renewed for this long belongs to a process that is gone. Its owner renews every
# CLAIM_RENEW_S, while the fold trains, so only a dead or cut-off process lets it lapse.
CLAIM_STALE_S = 90.0
CLAIM_RENEW_S = 15.0
AWAIT_POLL_S = 2.0  # how often the lead looks for folds trained elsewhere


def record_report(study: Any, report: FinalReport) -> None:
    study.set_user_attr(REPORT, report.as_dict())
    study.set_user_attr(DELIVERED_NOTE, report.delivered_sentence())
    study.set_user_attr(FOLDS, None)  # a later stage (a resume with more time) fixes its own


def agreed_folds(study: Any, lock: Callable[[], Any], proposed: int) -> int:
    """How many folds the stage uses: the first of its processes to ask fixes it (its time
    left may cut ``finalists.folds``), and every other, a helper's or a resumed lead's,
    uses the same, so that their folds are the same work items."""
    with lock():
        stored = study.user_attrs.get(FOLDS)
        if stored is not None:
            return int(stored)
        study.set_user_attr(FOLDS, proposed)
        return proposed


def recorded_report(attrs: Mapping[str, Any]) -> FinalReport | None:
    """The report in a study's user attributes (``study.user_attrs``), or None before the
    stage has run."""
    stored = attrs.get(REPORT)
    return FinalReport.from_dict(stored) if stored else None


def study_report(study: Any) -> FinalReport | None:
    return recorded_report(study.user_attrs)


def record_fold(study: Any, fold: FoldResult) -> None:
    study.set_user_attr(f"{FOLD_PREFIX}{fold.trial}:{fold.index}", fold.as_dict())


def recorded_folds(attrs: Mapping[str, Any]) -> dict[tuple[int, int], FoldResult]:
    """Every fold recorded in the study, by (trial, fold index)."""
    return _by_fold(attrs, FOLD_PREFIX, FoldResult)


def recorded_claims(attrs: Mapping[str, Any]) -> dict[tuple[int, int], FoldClaim]:
    return _by_fold(attrs, CLAIM_PREFIX, FoldClaim)


def _by_fold(attrs: Mapping[str, Any], prefix: str, record: Any) -> dict[tuple[int, int], Any]:
    """Every user attribute named ``prefix``TRIAL:INDEX, read as ``record``, by (trial,
    index)."""
    found = (record.from_dict(value) for name, value in attrs.items() if name.startswith(prefix))
    return {(item.trial, item.index): item for item in found}


def _write_claim(study: Any, claim: FoldClaim) -> None:
    study.set_user_attr(f"{CLAIM_PREFIX}{claim.trial}:{claim.index}", claim.as_dict())


def _free(claim: FoldClaim | None, key: str, by: str, now: float) -> bool:
    """Whether process ``by`` may take the fold of recipe ``key`` that ``claim`` holds (None:
    unclaimed): unless another process claimed it for the same recipe and renewed it within
    ``CLAIM_STALE_S``."""
    return claim is None or claim.key != key or claim.by == by \
        or now - claim.at >= CLAIM_STALE_S


def claim_fold(study: Any, lock: Callable[[], Any], claim: FoldClaim) -> bool:
    """Whether this process may train ``claim``'s fold: taken, under ``lock``, unless the fold
    is recorded for the same recipe and images, or claimed by another process whose claim is
    still renewed."""
    with lock():
        attrs = study.user_attrs
        done = recorded_folds(attrs).get((claim.trial, claim.index))
        if done is not None and done.key == claim.key:
            return False
        held = recorded_claims(attrs).get((claim.trial, claim.index))
        if not _free(held, claim.key, claim.by, claim.at):
            return False
        _write_claim(study, claim)
        return True


def renew_claims(study: Any, claims: list[FoldClaim], now: float) -> list[FoldClaim]:
    """Each of this process's claims whose fold is not recorded yet, renewed at ``now``."""
    done = recorded_folds(study.user_attrs)
    renewed = []
    for claim in claims:
        if (claim.trial, claim.index) in done:
            continue
        claim = claim.renewed(now)
        _write_claim(study, claim)
        renewed.append(claim)
    return renewed


class FoldLedger:
    """One orchestrator's side of the stage's folds in the study: its claims (renewed while
    they train), its landed folds recorded with its name, and the lead's wait for the folds
    other processes claimed. ``lock``: the study's shared lock (``store.budget_lock``)."""

    def __init__(self, study: Any, lock: Callable[[], Any]) -> None:
        self.study, self.lock = study, lock
        self.by = f"{socket.gethostname()}:{os.getpid()}"
        self.claims: list[FoldClaim] = []
        self.renewed_at = time.time()

    def claim(self, trial: int, index: int, key: str) -> bool:
        claim = FoldClaim(trial, index, key, self.by, time.time())
        granted = claim_fold(self.study, self.lock, claim)
        if granted:
            self.claims.append(claim)
        return granted

    def landed(self, fold: FoldResult) -> None:
        """At once, as the fold lands: a kill after this costs only the folds in flight."""
        record_fold(self.study, replace(fold, claimed_by=self.by))

    def renew_if_due(self) -> None:
        now = time.time()
        if self.claims and now - self.renewed_at >= CLAIM_RENEW_S:
            self.claims = renew_claims(self.study, self.claims, now)
            self.renewed_at = now

    def await_folds(self, wanted: list[tuple[int, int, str]]) -> FoldsAwaited:
        """Blocks until one of ``wanted`` (trial, index, key) is recorded by another process,
        or its claim has lapsed and this process holds it now."""
        while True:
            attrs = self.study.user_attrs  # one read a poll; a claim only where one lapsed
            done, held, now = recorded_folds(attrs), recorded_claims(attrs), time.time()
            landed = [done[t, i] for t, i, key in wanted
                      if (t, i) in done and done[t, i].key == key]
            if landed:
                return FoldsAwaited(landed, [])
            mine = [(t, i) for t, i, key in wanted
                    if _free(held.get((t, i)), key, self.by, now) and self.claim(t, i, key)]
            if mine:
                return FoldsAwaited([], mine)
            time.sleep(AWAIT_POLL_S)
