"""The finalists' stage: after the search, the top trials, the anchor recipe and the linear probe
cross-validated on the same folds, the choice, the delivered model and its one headline
estimate. The orchestrator's side (``FinalStage``) imports no TensorFlow; the stage's process
and its fold workers (``_run``, ``_folds``, ``_baselines``) do. What it found is typed
(``FinalReport`` and its parts), recorded in the study fold by fold and read back here only."""

from tlsweep.finalists._budget import EpochCosts, cross_validates, stage_seconds
from tlsweep.finalists._crossval import fold_model_path
from tlsweep.finalists._protocol import Finalist
from tlsweep.finalists._recorded import recorded_folds, recorded_report, study_report
from tlsweep.finalists._records import (
    MADE,
    BaselineResult,
    DeliveredModel,
    FinalistResult,
    FinalReport,
    FoldResult,
)
from tlsweep.finalists._rows import FinalRows, results_rows
from tlsweep.finalists._run import DELIVERED, FINAL_DIR, fold_ensemble
from tlsweep.finalists._stage import FinalStage, StageInputs

__all__ = [
    "DELIVERED",
    "FINAL_DIR",
    "MADE",
    "BaselineResult",
    "DeliveredModel",
    "EpochCosts",
    "FinalReport",
    "FinalRows",
    "FinalStage",
    "Finalist",
    "FinalistResult",
    "FoldResult",
    "StageInputs",
    "cross_validates",
    "fold_ensemble",
    "fold_model_path",
    "recorded_folds",
    "recorded_report",
    "results_rows",
    "stage_seconds",
    "study_report",
]
