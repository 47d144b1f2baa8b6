"""``report.html`` (one self-contained file, PNGs inlined) plus the PNGs, from Parquet and storage.

The answer comes first (``_report_answer``): the delivered model, its headline estimate and the
baseline, with the delivered model's confusion matrix on the test split. Then the diagnostics,
the top of the leaderboard and the plots (``_report_plots``), which count pruned trials as well
as complete ones. Every cell that has no value shows an en dash: pandas' ``<NA>`` is never
printed, and the long notes some rows carry are listed under the table, not inside it, where
one 300-character note made every row of a 40-column table 500 px tall.
"""

from __future__ import annotations

import base64
import html
import math
import warnings
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from tlsweep.config import PARAM_NAMES
from tlsweep.finalists import study_report
from tlsweep.inspection._diagnostics import Finding, diagnose
from tlsweep.inspection._report_answer import DASH, answer_html
from tlsweep.inspection._report_plots import (
    ReportData,
    confusion,
    confusion_source,
    history,
    importances,
    learning_curves,
    parallel,
    slices,
)
from tlsweep.inspection._report_trials import trial_points
from tlsweep.inspection._tables import HEADERS, display_frame, honesty_notes
from tlsweep.inspection._view import StudyView

REPORT = "report.html"
PLOTS_DIR = "report"
NOTE_CHARS = 400  # a note or error longer than this is cut in the list under the table

PLOTS: list[tuple[str, str, Callable[[ReportData], Any]]] = [
    ("confusion", "Confusion matrix of the delivered model on the test split", confusion),
    ("history", "Optimisation history, every trial", history),
    ("parallel", "Parallel coordinates, every trial", parallel),
    ("slices", "Slice plots per parameter, every trial", slices),
    ("importance", "Importances", importances),
    ("curves", "Learning curves, top 5 trials", learning_curves),
]


def render_plots(data: ReportData) -> tuple[list[tuple[str, str, Path]], list[str]]:
    """Write each plot's PNG; returns the plots made and a note for each that could not be."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder = data.view.directory / PLOTS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    made, missing = [], []
    for key, title, draw in PLOTS:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                figure = draw(data)
        except Exception as exc:  # one plot that cannot be drawn must not sink the report
            plt.close("all")
            missing.append(f"{title}: not drawn ({type(exc).__name__}: {exc})")
            continue
        path = folder / f"{key}.png"
        # bbox_inches="tight" grows the saved image to hold every label and legend: Optuna's
        # plots, saved at their figure size, cut the parallel plot's axis names in half.
        figure.savefig(path, dpi=110, bbox_inches="tight", pad_inches=0.15)
        plt.close(figure)
        made.append((key, title, path))
    return made, missing


STYLE = """
body { font-family: system-ui, sans-serif; margin: 0 auto; padding: 1.5rem 1rem 3rem;
  max-width: 1100px; color: #1f2937; line-height: 1.45; }
h1 { margin-bottom: 0; } .meta { color: #6b7280; margin-top: .3rem; }
h2 { margin-top: 2rem; }
#answer { border: 1px solid #cbd5e1; border-radius: 8px; background: #f8fafc;
  padding: .2rem 1.2rem 1rem; }
#answer h2 { margin-top: .8rem; }
#answer p, #answer li, ul.notes li, #diagnostics li, #meaning li { overflow-wrap: anywhere; }
#answer .lead { font-size: 1.15rem; } .figure { font-size: 1.2rem; }
.small { font-size: .8rem; color: #4b5563; }
td .small { display: block; }
.tag { display: inline-block; font-size: .72rem; padding: 0 .35rem; margin-left: .2rem;
  border-radius: 4px; background: #e0e7ff; color: #3730a3; white-space: nowrap; }
figure { margin: 1.5rem 0; } figure h3 { margin: 0 0 .4rem; }
figure img { max-width: 100%; height: auto; border: 1px solid #e5e7eb; }
table { border-collapse: collapse; font-size: .82rem; }
caption { text-align: left; color: #4b5563; padding-bottom: .3rem; }
td, th { padding: .2rem .4rem; border-bottom: 1px solid #e5e7eb; text-align: right;
  vertical-align: top; } th { background: #f3f4f6; vertical-align: bottom; }
td { white-space: nowrap; } .name { white-space: normal; text-align: left; }
#candidates { width: 100%; margin-top: .8rem; } #leaderboard { font-size: .78rem; }
tr.delivered td { background: #ecfdf5; font-weight: 600; }
tr.pruned td { color: #9a3412; } tr.fail td { color: #b91c1c; }
.wide { overflow-x: auto; }
li.problem { color: #b91c1c; } li.ok { color: #166534; } li.note { color: #1e3a8a; }
"""


def _findings_html(findings: list[Finding]) -> str:
    items = "".join(f'<li class="{f.level}"><b>{html.escape(f.topic)}</b>: '
                    f'{html.escape(f.text)}</li>' for f in findings)
    return f'<ul id="diagnostics">{items}</ul>'


def cell(value: Any) -> str:
    """A table cell's text: an en dash for a missing value, three significant digits for a
    float (``str`` of pandas' missing value is ``<NA>``, of a missing float ``nan``)."""
    if value is None or value is pd.NA or value is pd.NaT:
        return DASH
    if isinstance(value, float):
        return DASH if math.isnan(value) else f"{value:.3g}"
    return str(value)


def _columns(frame: pd.DataFrame) -> list[str]:
    """The leaderboard's columns as the terminal shows them, but for the value's interval,
    shown under the value; empty columns, and a parameter that never changed (fixed in the
    search space), only take width."""
    wanted = ["rank", "trial", "state", "value", "tied", "cv", "test", *PARAM_NAMES,
              "best_epoch", "best_phase", "gap", "epochs_run", "duration_s"]
    return [c for c in wanted if c in frame and frame[c].notna().any()
            and not (c in PARAM_NAMES and frame[c].nunique() <= 1)]


def _score_cell(value: Any, interval: Any) -> str:
    """A score over its interval, on two lines: side by side, three of them made the table
    wider than a 1280-px window."""
    if isinstance(value, str) and " [" in value:  # "0.904 [0.856-0.937]", from display_frame
        value, interval = value.split(" [", 1)
        interval = "[" + interval
    shown = html.escape(cell(value))
    if isinstance(interval, str) and interval:
        shown += f'<span class="small">{html.escape(interval)}</span>'
    return shown


def _notes(frame: pd.DataFrame) -> list[str]:
    """Each row's note and error, one line per trial, under the table."""
    lines = []
    for row in frame.itertuples(index=False):
        record = row._asdict()
        for key in ("note", "error"):
            text = record.get(key)
            if isinstance(text, str) and text.strip():
                text = text if len(text) <= NOTE_CHARS else text[:NOTE_CHARS - 1] + "…"
                lines.append(f"trial {cell(record.get('trial'))} {key}: {text}")
    return lines


def leaderboard_html(view: StudyView, top: int = 10) -> str:
    board = view.leaderboard.head(top)
    if board.empty:
        return "<p>No trial has finished yet.</p>"
    shown = display_frame(board, view.objective)
    columns = _columns(shown)
    headers = {**HEADERS, "value": "value [95% CI]"}
    # <wbr>: a header may break after an underscore; headers set the width of most columns.
    head = "".join(f"<th>{html.escape(headers.get(c, c)).replace('_', '_<wbr>')}</th>"
                   for c in columns)
    rows = []
    for _, row in shown.iterrows():
        cells = [_score_cell(row[c], row.get("value_ci") if c == "value" else None)
                 if c in ("value", "cv", "test") else html.escape(cell(row[c]))
                 for c in columns]
        rows.append(f'<tr class="{html.escape(str(row["state"]))}">'
                    + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    notes = "".join(f"<li>{html.escape(line)}</li>" for line in _notes(board))
    caption = (f"top {len(board)} of {len(view.leaderboard)} trials; pruned trials are "
               f"valued by their best epoch before they were pruned, and not ranked")
    return (f'<div class="wide"><table id="leaderboard"><caption>{html.escape(caption)}'
            f"</caption><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table></div>"
            + (f'<ul class="notes small">{notes}</ul>' if notes else ""))


def _figure(key: str, title: str, path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return (f'<figure id="plot-{key}"><figcaption><h3>{html.escape(title)}</h3></figcaption>'
            f'<img class="plot" alt="{html.escape(title)}" src="data:image/png;base64,{data}">'
            f"</figure>")


def report_data(view: StudyView) -> ReportData:
    return ReportData(view, trial_points(view.study), study_report(view.study))


def write_report(view: StudyView) -> Path:
    data = report_data(view)
    made, missing = render_plots(data)
    titles = {key: title for key, title, _ in made}
    if "confusion" in titles:
        # Whose matrix it is: the delivered model's on test, or without the finalists' stage
        # the best trial's on validation.
        titles["confusion"] = f"Confusion matrix: {confusion_source(data)[1]}"
    figures = {key: _figure(key, titles[key], path) for key, _, path in made}
    answer = answer_html(data.final, view, figures.pop("confusion", ""))
    notes = "".join(f"<li>{html.escape(m)}</li>" for m in missing)
    meaning = "".join(f"<li>{html.escape(line)}</li>" for line in honesty_notes(
        pd.concat([view.leaderboard, view.references]), view.meta))
    sweep_hash = view.meta.get("sweep_sha256")
    meta = " · ".join([f"objective {view.objective}", data.points.counts(),
                       f"generated {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
                       *([f"sweep {str(sweep_hash)[:12]}"] if sweep_hash else [])])
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>tlsweep report: {html.escape(view.name)}</title>
<style>{STYLE}</style></head><body>
<h1>tlsweep report: {html.escape(view.name)}</h1>
<p class="meta">{html.escape(meta)}</p>
{answer}
<h2>Diagnostics</h2>{_findings_html(diagnose(view))}
<h2>Leaderboard</h2>{leaderboard_html(view)}
<h3>How to read it</h3><ul id="meaning" class="small">{meaning}</ul>
<h2>Plots</h2>{''.join(figures.values())}{f'<ul>{notes}</ul>' if notes else ''}
</body></html>"""
    path = view.directory / REPORT
    path.write_text(page, encoding="utf-8")
    return path
