"""Leaderboard output (rich table, CSV, JSON, Markdown), from the Parquet files alone."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd
from rich import box
from rich.console import Console
from rich.table import Table

from tlsweep.config import PARAM_NAMES
from tlsweep.errors import ConfigError
from tlsweep.inspection._view import ClassMetrics, load_leaderboard
from tlsweep.measures import Objective, headline_text

FORMATS = ("table", "csv", "json", "markdown")
TABLE_COLUMNS = [
    "rank", "trial", "state", "value", "value_ci", "tied", "cv", "test", *PARAM_NAMES, "best_epoch",
    "best_phase", "gap", "epochs_run", "duration_s", "error",
]


def column_named(frame: pd.DataFrame, name: str) -> str:
    """The column ``--sort NAME`` means: a column's own name, or the header the table shows."""
    shown = {header: column for column, header in HEADERS.items()}
    column = name if name in frame.columns else shown.get(name, name)
    if column not in frame.columns:
        raise ConfigError(f"--sort: unknown column {name!r}; choose one of: "
                          f"{', '.join(HEADERS.get(c, c) for c in frame.columns)}.")
    return column


def select(frame: pd.DataFrame, top: int | None, sort: str | None,
           states: list[str] | None) -> pd.DataFrame:
    if sort is not None:
        sort = column_named(frame, sort)
    if states:
        known = {"complete", "pruned", "fail", "running", "waiting", "chosen", "baseline"}
        unknown = set(states) - known
        if unknown:
            raise ConfigError(f"--state: unknown state {sorted(unknown)[0]!r}; choose from: "
                              f"{', '.join(sorted(known))}.")
        frame = frame[frame["state"].isin(states)]
    references = frame[frame["role"] != "trial"] if "role" in frame else frame.iloc[:0]
    trials = frame.drop(references.index)
    if sort is not None:
        ascending = sort in ("rank", "trial", "duration_s", "gap")
        trials = trials.sort_values(sort, ascending=ascending, na_position="last")
    # The reference rows (chosen model, baseline) always stay: they say what the ranks mean.
    return pd.concat([trials.head(top) if top else trials, references])


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


# Shorter headers than the column names, each still saying what it is: a bare "weights" read as
# the backbone's weights, "depth" as the network's, "phase" as the trial's current one.
HEADERS = {"unfreeze_depth": "unfreeze", "finetune_lr": "ft_lr",
           "augmentation_strength": "augment",
           "class_weighting": "class_weight", "best_epoch": "best_step",
           "best_phase": "best_phase", "gap": "train_gap", "epochs_run": "epochs",
           "duration_s": "secs", "value_ci": "95% CI", "tied": "tie",
           "cv": "cv [95% CI]", "test": "test [95% CI]"}
COLUMN_NOTE = ("unfreeze: share of backbone layers fine-tuned; best_step: the epoch (global "
               "step) of value, in best_phase (head or finetune); train_gap: train minus "
               "validation accuracy there; ft_lr: the fine-tune learning rate; epochs: epochs "
               "run; secs: the trial's wall time.")


def _span(low: Any, high: Any) -> str | None:
    if low is None or high is None or pd.isna(low) or pd.isna(high):
        return None
    return f"{low:.3f}-{high:.3f}"


def _with_span(value: Any, low: Any, high: Any) -> str | None:
    span = _span(low, high)
    return None if span is None or pd.isna(value) else f"{value:.3f} [{span}]"


def display_frame(frame: pd.DataFrame, objective: str) -> pd.DataFrame:
    """The table's derived text columns: intervals, ties, the cross-validated and test
    scores of the objective's metric."""
    test = Objective.named(objective).test_column
    shown = frame.copy()
    for column in ("value_low", "value_high", "tied", "cv_value", "cv_low", "cv_high", test,
                   f"{test}_low", f"{test}_high"):
        if column not in frame:  # a leaderboard written before intervals existed
            frame = frame.assign(**{column: None})
    shown["value_ci"] = [_span(lo, hi) for lo, hi in zip(frame["value_low"],
                                                         frame["value_high"], strict=True)]
    shown["tied"] = ["≈" if pd.notna(tied) and bool(tied) else None for tied in frame["tied"]]
    shown["cv"] = [_with_span(*v) for v in zip(frame["cv_value"], frame["cv_low"],
                                               frame["cv_high"], strict=True)]
    shown["test"] = [_with_span(*v) for v in zip(frame[test], frame[f"{test}_low"],
                                                 frame[f"{test}_high"], strict=True)]
    return shown


# Which columns a narrow terminal keeps, first to last: the answer (what ran, how good, how
# sure, on test), then the settings, then the detail. A column that does not fit whole is left
# out rather than folded, so no number is ever split across lines; --wide shows them all.
PRIORITY = ["rank", "trial", "state", "value", "value_ci", "test", "cv", "tied", *PARAM_NAMES,
            "best_epoch", "epochs_run", "duration_s", "best_phase", "gap", "error"]


def _natural_width(table: Table) -> int:
    """The width ``table`` takes when nothing constrains it."""
    from rich.measure import Measurement

    console = Console(width=100_000)
    return Measurement.get(console, console.options, table).maximum


def rich_table(frame: pd.DataFrame, title: str, width: int | None = None) -> Table:
    """``width``: the terminal's, to keep to (columns dropped by PRIORITY); None: every
    column (``--wide``)."""
    # Empty columns, and a backbone column with one value, only take space.
    columns = [c for c in TABLE_COLUMNS if c in frame.columns and frame[c].notna().any()
               and not (c == "backbone" and frame[c].nunique() <= 1)]
    by_priority = sorted(columns, key=lambda c: PRIORITY.index(c) if c in PRIORITY
                         else len(PRIORITY))
    table = _table(frame, columns, title)
    while width is not None and len(columns) > 1 and _natural_width(table) > width:
        least = by_priority.pop()  # the least wanted goes
        columns = [c for c in columns if c != least]
        table = _table(frame, columns, title)
    return table


def _table(frame: pd.DataFrame, columns: list[str], title: str) -> Table:
    table = Table(title=title, header_style="bold", box=box.SIMPLE_HEAD, pad_edge=False)
    for column in columns:
        folds = column == "error"  # words may wrap; numbers never do
        table.add_column(HEADERS.get(column, column), overflow="fold" if folds else "ellipsis",
                         no_wrap=not folds, justify="left" if folds else "right")
    styles = {"complete": "", "pruned": "yellow", "fail": "red", "chosen": "bold green",
              "baseline": "cyan"}
    states = frame["state"].tolist()
    reference = [state in ("chosen", "baseline") for state in states]
    for index, row in enumerate(frame[columns].itertuples(index=False)):
        # A rule between the trials and the reference rows below them.
        last_trial = not reference[index] and reference[index + 1:index + 2] == [True]
        table.add_row(*(_cell(v) for v in row), style=styles.get(states[index], "dim"),
                      end_section=last_trial)
    return table


def honesty_notes(frame: pd.DataFrame, meta: dict[str, Any]) -> list[str]:
    """What the numbers mean, in a few plain sentences under the table."""
    objective = meta.get("objective", "val_accuracy")
    n_val, n_test = meta.get("n_val"), meta.get("n_test") or 0
    trials = frame[frame["role"] == "trial"] if "role" in frame else frame
    headline = headline_text(meta.get("headline"), meta.get("baseline_headline"))
    lines = [f"chosen model's {headline}"] if headline else []
    lines += [f"value: the trial's best epoch on the {n_val or '?'} validation images "
             f"({objective}); 95% CI: accuracy by Wilson's interval, balanced accuracy by its "
             f"posterior (Brodersen et al. 2010); ≈: tied with the best within that interval."]
    if n_test:
        lines.append(f"test: scored once, after the search, on {n_test} held-out images that "
                     f"no trial, pruner or choice saw.")
    else:
        lines.append(f"No test set: rank 1's value is the best of {len(trials)} noisy "
                     f"validation scores, an optimistic estimate from selection. Add "
                     f"data.test_dir or data.test_split to measure it.")
    if meta.get("final_method"):
        lines.append(f"chosen: the anchor recipe, unless a searched finalist's cv score leads "
                     f"it by more than finalists.margin_se standard errors of their paired gap "
                     f"(without an anchor, the best cv score); then, with finalists."
                     f"probe_competes, the baseline itself unless that choice leads it so; from "
                     f"{meta['final_method']}."
                     + (f" Here: {meta['final_choice']}." if meta.get("final_choice") else ""))
    if "role" in frame and (frame["role"] == "baseline").any():
        lines.append("baseline: a logistic-regression probe on the frozen backbone's features; "
                     "fine-tuning has to beat it to earn its cost (tested after training on "
                     "the same images as the delivered model when that is a refit or a fold "
                     "ensemble).")
    return [*lines, COLUMN_NOTE]


def measured_lines(board: pd.DataFrame, trial: int, meta: dict[str, Any]) -> list[str]:
    """One trial's scores with their 95% intervals, as ``show`` prints them."""
    if "role" not in board:
        return []
    rows = board[board["trial"] == trial]
    lines = []
    for row in rows.itertuples(index=False):
        record = row._asdict()
        val, val_balanced = (_with_span(*_triple(record, metric)) for metric in (
            "val_accuracy", "val_balanced_accuracy"))
        if record["role"] == "trial" and pd.notna(record.get("val_accuracy_low")):
            lines.append(f"  validation             accuracy {val}, balanced {val_balanced} "
                         f"on {meta.get('n_val')} images")
        if record["role"] == "trial" and pd.notna(record.get("cv_value")):
            cv = _with_span(*_triple(record, "cv", "cv_value"))
            lines.append(f"  cross-validated        {cv} ({meta.get('final_method')})")
        label = "chosen model, test" if record["role"] == "chosen" else "kept model, test"
        if pd.notna(record.get("test_accuracy")):
            test = _with_span(*_triple(record, "test_accuracy"))
            lines.append(f"  {label:<22} accuracy {test}, "
                         f"balanced {_with_span(*_triple(record, 'test_balanced_accuracy'))} on "
                         f"{meta.get('n_test')} held-out images"
                         + (f" ({record['note'].split(';')[0]})" if record["role"] == "chosen"
                            else ""))
    return lines


def _triple(record: dict[str, Any], prefix: str, value: str | None = None) -> tuple[Any, ...]:
    return record[value or prefix], record[f"{prefix}_low"], record[f"{prefix}_high"]


def show_leaderboard(directory: Path, study: str, console: Console, top: int | None = None,
                     sort: str | None = None, states: list[str] | None = None,
                     fmt: str = "table", wide: bool = False) -> None:
    frame, meta = load_leaderboard(directory, study)
    objective = str(meta.get("objective") or "val_accuracy")
    title = f"{study}: {objective} (sweep {str(meta.get('sweep_sha256'))[:8]})"
    if fmt != "table":
        # Machine formats give the trials' rows, as leaderboard.parquet holds them; the
        # reference rows when --state names them (chosen, baseline).
        if not states and "role" in frame:
            frame = frame[frame["role"] == "trial"]
        render(select(frame, top, sort, states), fmt, title, console)
        return
    chosen = select(frame, top, sort, states)
    render(display_frame(chosen, objective), fmt, title, console,
           None if wide else console.width)
    for line in honesty_notes(frame, meta):
        console.print(f"[dim]{line}[/]")


def render(frame: pd.DataFrame, fmt: str, title: str, console: Console,
           width: int | None = None) -> None:
    """``width``: the table's, for ``rich_table`` (None: every column)."""
    if fmt == "csv":
        console.out(frame.to_csv(index=False), end="")
    elif fmt == "json":
        console.out(frame.to_json(orient="records", indent=2))
    elif fmt == "markdown":
        console.out(to_markdown(frame))
    else:
        console.print(rich_table(frame, title, width))


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
