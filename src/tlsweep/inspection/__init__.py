"""Reading a study back without TensorFlow: the view, importance, diagnostics, tables and the HTML
report."""

from tlsweep.inspection._diagnostics import diagnose
from tlsweep.inspection._html_report import write_report
from tlsweep.inspection._importance import (
    EVALUATORS,
    IMPORTANCE,
    TREATMENT,
    few_trials_warning,
    write_importance,
)
from tlsweep.inspection._tables import (
    FORMATS,
    class_table,
    confusion_table,
    curve_table,
    importance_table,
    measured_lines,
    show_leaderboard,
)
from tlsweep.inspection._view import ClassMetrics, StudyView

__all__ = [
    "EVALUATORS",
    "FORMATS",
    "IMPORTANCE",
    "TREATMENT",
    "ClassMetrics",
    "StudyView",
    "class_table",
    "confusion_table",
    "curve_table",
    "diagnose",
    "few_trials_warning",
    "importance_table",
    "measured_lines",
    "show_leaderboard",
    "write_importance",
    "write_report",
]
