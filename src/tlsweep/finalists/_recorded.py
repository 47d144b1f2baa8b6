"""The finalists' stage in the study's storage, written and read in this module only: its
report (a ``FinalReport``), each fold as it lands (a ``FoldResult``), and a plain sentence
naming the delivered model where Optuna's own tools show it. No TensorFlow."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tlsweep.finalists._records import FinalReport, FoldResult

REPORT = "final"  # the study's user attribute holding the report
DELIVERED_NOTE = "delivered_model"  # the sentence optuna-dashboard and `optuna` show
FOLD_PREFIX = "final_fold:"  # one user attribute per recorded fold: final_fold:TRIAL:INDEX


def record_report(study: Any, report: FinalReport) -> None:
    study.set_user_attr(REPORT, report.as_dict())
    study.set_user_attr(DELIVERED_NOTE, report.delivered_sentence())


def recorded_report(attrs: Mapping[str, Any]) -> FinalReport | None:
    """The report in a study's user attributes (``study.user_attrs``), or None before the
    stage has run."""
    stored = attrs.get(REPORT)
    return FinalReport.from_dict(stored) if stored else None


def study_report(study: Any) -> FinalReport | None:
    return recorded_report(study.user_attrs)


def record_fold(study: Any, fold: FoldResult) -> None:
    """At once, as the fold lands: a kill after this costs only the folds in flight."""
    study.set_user_attr(f"{FOLD_PREFIX}{fold.trial}:{fold.index}", fold.as_dict())


def recorded_folds(attrs: Mapping[str, Any]) -> dict[tuple[int, int], FoldResult]:
    """Every fold recorded in the study, by (trial, fold index)."""
    found = (FoldResult.from_dict(value) for name, value in attrs.items()
             if name.startswith(FOLD_PREFIX))
    return {(fold.trial, fold.index): fold for fold in found}
