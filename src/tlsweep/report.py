"""Leaderboard output (rich table, CSV, JSON, Markdown), from the Parquet files alone."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd
from rich import box
from rich.console import Console
from rich.table import Table

from tlsweep.errors import ConfigError
from tlsweep.studyview import ClassMetrics, load_leaderboard

FORMATS = ("table", "csv", "json", "markdown")
TABLE_COLUMNS = [
    "rank", "trial", "state", "value", "backbone", "unfreeze_depth", "head_lr", "finetune_lr",
    "augmentation_strength", "class_weighting", "best_epoch", "best_phase", "gap", "epochs_run",
    "duration_s", "error",
]


def select(frame: pd.DataFrame, top: int | None, sort: str | None,
           states: list[str] | None) -> pd.DataFrame:
    if sort is not None and sort not in frame.columns:
        raise ConfigError(f"--sort: unknown column {sort!r}; choose one of: "
                          f"{', '.join(frame.columns)}.")
    if states:
        known = {"complete", "pruned", "fail", "running", "waiting"}
        unknown = set(states) - known
        if unknown:
            raise ConfigError(f"--state: unknown state {sorted(unknown)[0]!r}; choose from: "
                              f"{', '.join(sorted(known))}.")
        frame = frame[frame["state"].isin(states)]
    if sort is not None:
        ascending = sort in ("rank", "trial", "duration_s", "gap")
        frame = frame.sort_values(sort, ascending=ascending, na_position="last")
    return frame.head(top) if top else frame


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return ""
    if isinstance(value, float):
        return f"{value:.3g}"
    text = str(value)
    return text if len(text) <= 60 else text[:57] + "..."


def to_markdown(frame: pd.DataFrame) -> str:
    header = "| " + " | ".join(frame.columns) + " |"
    rule = "| " + " | ".join("---" for _ in frame.columns) + " |"
    body = ["| " + " | ".join(_cell(v).replace("|", "\\|") for v in row) + " |"
            for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *body])


# Short headers keep the table readable in an 80-column terminal.
HEADERS = {"unfreeze_depth": "depth", "finetune_lr": "ft_lr", "augmentation_strength": "aug",
           "class_weighting": "weights", "best_epoch": "best@", "best_phase": "phase",
           "epochs_run": "epochs", "duration_s": "secs"}


def rich_table(frame: pd.DataFrame, title: str) -> Table:
    # Empty columns, and a backbone column with one value, only take space.
    columns = [c for c in TABLE_COLUMNS if c in frame.columns and frame[c].notna().any()
               and not (c == "backbone" and frame[c].nunique() <= 1)]
    table = Table(title=title, header_style="bold", box=box.SIMPLE_HEAD, pad_edge=False)
    for column in columns:
        table.add_column(HEADERS.get(column, column), overflow="fold",
                         justify="left" if column == "error" else "right")
    styles = {"complete": "", "pruned": "yellow", "fail": "red"}
    for row in frame[columns].itertuples(index=False):
        record = dict(zip(columns, row, strict=True))
        table.add_row(*(_cell(v) for v in row), style=styles.get(record["state"], "dim"))
    return table


def show_leaderboard(directory: Path, study: str, console: Console, top: int | None = None,
                     sort: str | None = None, states: list[str] | None = None,
                     fmt: str = "table") -> None:
    frame, meta = load_leaderboard(directory, study)
    title = f"{study}: {meta.get('objective', 'value')} (sweep {str(meta.get('sweep_sha256'))[:8]})"
    render(select(frame, top, sort, states), fmt, title, console)


def render(frame: pd.DataFrame, fmt: str, title: str, console: Console) -> None:
    if fmt == "csv":
        console.out(frame.to_csv(index=False), end="")
    elif fmt == "json":
        console.out(frame.to_json(orient="records", indent=2))
    elif fmt == "markdown":
        console.out(to_markdown(frame))
    else:
        console.print(rich_table(frame, title))


# ----------------------------------------------------------------------------- importance
def importance_table(frame: pd.DataFrame, title: str) -> Table:
    table = Table(title=title, header_style="bold", box=box.SIMPLE_HEAD, pad_edge=False)
    for column in ("evaluator", "param", "importance", "", "best value", "edge"):
        table.add_column(column, justify="right" if column == "importance" else "left")
    for evaluator, group in frame.groupby("evaluator", sort=False):
        for row in group.sort_values("importance", ascending=False).itertuples(index=False):
            bar = "█" * round(row.importance * 30)
            edge = f"[red]{row.at_edge}: widen[/]" if isinstance(row.at_edge, str) else ""
            table.add_row(str(evaluator), row.param, f"{row.importance:.3f}",
                          f"[cyan]{bar}[/]", _cell(row.best_value), edge)
    return table


# ----------------------------------------------------------------------------- one trial
BLOCKS = "▁▂▃▄▅▆▇█"


def sparkline(values: list[float], boundary: int | None = None) -> str:
    """Unicode blocks scaled to the series' range; ``│`` marks where phase 2 starts."""
    finite = [v for v in values if v == v]
    low, high = (min(finite), max(finite)) if finite else (0.0, 1.0)
    span = (high - low) or 1.0
    out = []
    for index, value in enumerate(values):
        if boundary is not None and index == boundary:
            out.append("│")
        out.append(" " if value != value else BLOCKS[round((value - low) / span * 7)])
    return "".join(out)


def curve_table(curve: pd.DataFrame) -> Table:
    boundary = None
    if "finetune" in set(curve["phase"]):
        boundary = int((curve["phase"] == "head").sum())
    table = Table(title="per-epoch curves (│ = start of fine-tuning)", box=box.SIMPLE_HEAD,
                  header_style="bold", pad_edge=False)
    for column in ("metric", "curve", "first", "best", "last"):
        table.add_column(column)
    for metric in ("val_accuracy", "accuracy", "val_loss", "loss", "lr"):
        values = curve[metric].astype(float).tolist()
        best = max(values) if "accuracy" in metric else min(values)
        table.add_row(metric, sparkline(values, boundary), f"{values[0]:.3g}", f"{best:.3g}",
                      f"{values[-1]:.3g}")
    return table


def class_table(metrics: ClassMetrics) -> Table:
    table = Table(title="per class, at the best epoch", box=box.SIMPLE_HEAD, header_style="bold",
                  pad_edge=False)
    for column in ("class", "precision", "recall", "support"):
        table.add_column(column, justify="left" if column == "class" else "right")
    for name, p, r, s in zip(metrics.names, metrics.precision, metrics.recall, metrics.support,
                             strict=True):
        table.add_row(name, f"{p:.3f}", f"{r:.3f}", str(int(s)))
    return table


def confusion_table(metrics: ClassMetrics) -> Table:
    names = metrics.names
    table = Table(title="confusion matrix (rows: true, columns: predicted)", box=box.SIMPLE_HEAD,
                  header_style="bold", pad_edge=False)
    table.add_column("true \\ predicted")
    for name in names:
        table.add_column(name, justify="right")
    for name, row in zip(names, metrics.confusion, strict=True):
        table.add_row(name, *(str(int(v)) for v in row))
    return table
