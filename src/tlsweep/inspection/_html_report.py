"""``report.html`` (one self-contained file, PNGs inlined) plus the PNGs, from Parquet and storage.

Plots are drawn with matplotlib's Agg backend, so no browser or display is needed to make them;
Optuna's own matplotlib plots draw the history, parallel coordinates and slices.
"""

from __future__ import annotations

import base64
import html
import warnings
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from tlsweep.inspection._diagnostics import Finding, diagnose
from tlsweep.inspection._tables import honesty_notes
from tlsweep.inspection._view import StudyView

REPORT = "report.html"
PLOTS_DIR = "report"


def _figure_of(axes: Any) -> Any:
    first = axes.flat[0] if hasattr(axes, "flat") else axes
    return first.get_figure()


def _history(view: StudyView) -> Any:
    from optuna.visualization.matplotlib import plot_optimization_history

    return _figure_of(plot_optimization_history(view.study))


def _parallel(view: StudyView) -> Any:
    from optuna.visualization.matplotlib import plot_parallel_coordinate

    return _figure_of(plot_parallel_coordinate(view.study))


def _slices(view: StudyView) -> Any:
    from optuna.visualization.matplotlib import plot_slice

    return _figure_of(plot_slice(view.study))


def _importances(view: StudyView) -> Any:
    import matplotlib.pyplot as plt

    frame = pd.read_parquet(view.directory / "importance.parquet")
    frame = frame[frame["evaluator"] == frame["evaluator"].iloc[0]].sort_values("importance")
    figure, axes = plt.subplots(figsize=(7, 0.5 * len(frame) + 1.2))
    axes.barh(frame["param"], frame["importance"], color="#3b82f6")
    axes.set_xlabel(f"importance ({frame['evaluator'].iloc[0]}, "
                    f"{frame['n_trials'].iloc[0]} complete trials)")
    axes.set_title("Hyperparameter importance")
    figure.tight_layout()
    return figure


def _learning_curves(view: StudyView) -> Any:
    import matplotlib.pyplot as plt

    top = view.complete.sort_values("value", ascending=False)["trial"].head(5)
    figure, axes = plt.subplots(figsize=(8, 4.5))
    for number in top:
        curve = view.curve(int(number))
        axes.plot(curve["step"], curve["val_accuracy"], marker="o", label=f"trial {number}")
    boundary = view.head_epochs()
    if boundary is not None:
        axes.axvline(boundary - 0.5, color="grey", linestyle="--", label="fine-tuning starts")
    axes.set_xlabel("global epoch (head, then fine-tune)")
    axes.set_ylabel("validation accuracy")
    axes.set_title("Learning curves of the top 5 trials")
    axes.legend(fontsize="small")
    figure.tight_layout()
    return figure


def _confusion(view: StudyView) -> Any:
    import matplotlib.pyplot as plt

    best = view.best_trial_number()
    metrics = view.class_metrics(best) if best is not None else None
    if metrics is None:
        raise ValueError("no confusion matrix recorded for the best trial")
    size = max(4.0, 0.6 * len(metrics.names) + 2)
    figure, axes = plt.subplots(figsize=(size, size))
    axes.imshow(metrics.confusion, cmap="Blues")
    ticks = range(len(metrics.names))
    axes.set_xticks(ticks, metrics.names, rotation=45, ha="right")
    axes.set_yticks(ticks, metrics.names)
    for (i, j), value in pd.DataFrame(metrics.confusion).stack().items():
        axes.text(j, i, int(value), ha="center", va="center", color="black")
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    axes.set_title(f"Confusion matrix, best trial {best}")
    figure.tight_layout()
    return figure


PLOTS: list[tuple[str, str, Callable[[StudyView], Any]]] = [
    ("history", "Optimisation history", _history),
    ("importance", "Importances", _importances),
    ("parallel", "Parallel coordinates", _parallel),
    ("slices", "Slice plots per parameter", _slices),
    ("curves", "Learning curves, top 5 trials", _learning_curves),
    ("confusion", "Confusion matrix of the best trial", _confusion),
]


def render_plots(view: StudyView) -> tuple[list[tuple[str, str, Path]], list[str]]:
    """Write each plot's PNG; returns the plots made and a note for each that could not be."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder = view.directory / PLOTS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    made, missing = [], []
    for key, title, draw in PLOTS:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                figure = draw(view)
        except Exception as exc:  # one plot that cannot be drawn must not sink the report
            missing.append(f"{title}: not drawn ({type(exc).__name__}: {exc})")
            continue
        path = folder / f"{key}.png"
        figure.savefig(path, dpi=110)
        plt.close(figure)
        made.append((key, title, path))
    return made, missing


STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1100px; color: #222; }
h1 { margin-bottom: 0; } .meta { color: #666; margin-top: .3rem; }
figure { margin: 1.5rem 0; } figure img { max-width: 100%; border: 1px solid #ddd; }
table { border-collapse: collapse; font-size: .85rem; } td, th { padding: .2rem .5rem;
  border-bottom: 1px solid #eee; text-align: right; } th { background: #f5f5f5; }
.wide { overflow-x: auto; }
li.problem { color: #b91c1c; } li.ok { color: #166534; } li.note { color: #1e3a8a; }
"""


def _findings_html(findings: list[Finding]) -> str:
    items = "".join(f'<li class="{f.level}"><b>{html.escape(f.topic)}</b>: '
                    f'{html.escape(f.text)}</li>' for f in findings)
    return f'<ul id="diagnostics">{items}</ul>'


def write_report(view: StudyView) -> Path:
    made, missing = render_plots(view)
    figures = "".join(
        f'<figure id="plot-{key}"><figcaption><h3>{html.escape(title)}</h3></figcaption>'
        f'<img class="plot" alt="{html.escape(title)}" src="data:image/png;base64,'
        f'{base64.b64encode(path.read_bytes()).decode()}"></figure>'
        for key, title, path in made)
    notes = "".join(f"<li>{html.escape(m)}</li>" for m in missing)
    top = view.leaderboard.head(10).drop(columns=["worker", "started_at"], errors="ignore")
    sweep_hash = str(view.meta.get("sweep_sha256"))[:12]
    table = top.to_html(index=False, na_rep="", float_format="{:.4g}".format)
    references = view.references.drop(columns=["worker", "started_at"], errors="ignore")
    answer = references.to_html(index=False, na_rep="", float_format="{:.4g}".format) \
        if not references.empty else "<p>No finalists' stage has run for this study.</p>"
    meaning = "".join(f"<li>{html.escape(line)}</li>" for line in honesty_notes(
        pd.concat([view.leaderboard, view.references]), view.meta))
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>tlsweep report: {html.escape(view.name)}</title>
<style>{STYLE}</style></head><body>
<h1>tlsweep report: {html.escape(view.name)}</h1>
<p class="meta">objective {html.escape(view.objective)} · {len(view.leaderboard)} trials ·
generated {datetime.now(UTC):%Y-%m-%d %H:%M} UTC · sweep {sweep_hash}</p>
<h2>Diagnostics</h2>{_findings_html(diagnose(view))}
<h2>The answer: chosen model and baseline</h2><div class="wide" id="answer">{answer}</div>
<ul id="meaning">{meaning}</ul>
<h2>Leaderboard, top 10</h2><div class="wide">{table}</div>
<h2>Plots</h2>{figures}{f'<ul>{notes}</ul>' if notes else ''}
</body></html>"""
    path = view.directory / REPORT
    path.write_text(page, encoding="utf-8")
    return path
