"""The finalists' stage in the results files: the finalists' cross-validated and test columns on
their trial rows, the delivered model's row and each baseline's (roles "chosen" and
"baseline", reference rows that are never ranked), and the report's entries in every file's
metadata. ``store.write_results`` writes what this gives it. No TensorFlow."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tlsweep.finalists._recorded import study_report
from tlsweep.finalists._records import MADE, BaselineResult, FinalReport
from tlsweep.store import estimated_columns, score_columns

ANCHOR_CV_NOTE = ("the anchor recipe (finalists.anchor); value and test: as the search's schedule "
                  "trained it; cv: its own schedule of {epochs} epochs")
# A model trained on other images than the trial's: none of the trial's own measurements
# describe it, only the cross-validated estimate and the test.
_TRIAL_ONLY = ("val_accuracy", "val_accuracy_low", "val_accuracy_high", "val_balanced_accuracy",
               "val_balanced_accuracy_low", "val_balanced_accuracy_high", "train_accuracy",
               "gap", "epochs_run", "pruned_at", "duration_s", "started_at", "worker", "tied")


def _cv(confusion: list[list[int]] | None, objective: str) -> dict[str, Any]:
    cv = estimated_columns("cv", confusion, objective)
    return {"cv_value": cv["cv"], "cv_low": cv["cv_low"], "cv_high": cv["cv_high"]}


@dataclass(frozen=True)
class FinalRows:
    """A ``store.Extension`` built from a recorded report."""

    report: FinalReport

    def metadata(self) -> dict[str, Any]:
        report = self.report
        probe = report.probe_headline()
        return {"final_method": report.method, "final_chosen": report.chosen,
                "final_choice": report.choice,
                "headline": report.delivered.headline.as_dict()
                if report.delivered.headline else None,
                "baseline_headline": probe.as_dict() if probe else None}

    def extend(self, rows: list[dict[str, Any]], objective: str) -> None:
        by_number = {row["trial"]: row for row in rows}
        for finalist in self.report.finalists:
            row = by_number.get(finalist.trial)
            if row is not None:
                row.update(_cv(finalist.cv_confusion, objective))
                row.update(score_columns("test", finalist.test_confusion))
                if finalist.anchor:
                    row["note"] = ANCHOR_CV_NOTE.format(epochs=finalist.epochs)
        chosen = self._chosen_row(by_number.get(self.report.delivered.trial))
        if chosen is not None:
            rows.append(chosen)
        for probe in self.report.baselines:
            row = self._baseline_row(probe, objective)
            rows.append(row)
            delivered = self.report.delivered
            if delivered.is_probe and delivered.backbone == probe.backbone:
                rows.append(self._probe_chosen(row))

    def _chosen_row(self, source: dict[str, Any] | None) -> dict[str, Any] | None:
        if source is None:
            return None
        report, delivered = self.report, self.report.delivered
        row = {**source, **score_columns("test", delivered.test_confusion)}
        if report.reevaluated:
            row.update(value=row["cv_value"], value_low=row["cv_low"], value_high=row["cv_high"],
                       **dict.fromkeys(_TRIAL_ONLY))
        anchor = report.finalist(delivered.trial)
        anchor = anchor if anchor is not None and anchor.anchor else None
        recipe = f"the anchor recipe, {anchor.epochs} epochs, " if anchor else ""
        if anchor:  # trained to the end of its schedule, not to the search's best epoch
            row.update(best_epoch=anchor.epochs - 1, best_phase="finetune")
        row.update(role="chosen", state="chosen", rank=None, note=(
            f"{recipe}{MADE.get(delivered.kind, '')}; value: "
            + (report.method or "" if report.reevaluated else "its validation score")))
        return row

    @staticmethod
    def _baseline_row(probe: BaselineResult, objective: str) -> dict[str, Any]:
        val = score_columns("val", probe.val_confusion)
        return {"role": "baseline", "state": "baseline", "backbone": probe.backbone,
                "value": val[objective], "value_low": val[f"{objective}_low"],
                "value_high": val[f"{objective}_high"], **val,
                **_cv(probe.cv_confusion, objective),
                **score_columns("test", probe.test_confusion), "note": probe.note()}

    def _probe_chosen(self, baseline: dict[str, Any]) -> dict[str, Any]:
        """The chosen row when the stage delivered the probe (``finalists.probe_competes``):
        the baseline's cross-validated estimate, the delivered model's test."""
        return {**baseline, **score_columns("test", self.report.delivered.test_confusion),
                "role": "chosen", "state": "chosen", "value": baseline["cv_value"],
                "value_low": baseline["cv_low"], "value_high": baseline["cv_high"], "note": (
                    f"the linear probe on {baseline['backbone']}'s frozen features, refit on "
                    f"train+val: on the finalists' folds the chosen finalist did not lead it by "
                    f"more than finalists.margin_se, so fine-tuning did not earn its cost here; "
                    f"value: {self.report.method}")}


def results_rows(study: Any) -> FinalRows | None:
    """The stage's rows and metadata for ``store.write_results``; None before it has run."""
    report = study_report(study)
    return FinalRows(report) if report else None
