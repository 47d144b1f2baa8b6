"""The commands that read a study back: ``leaderboard``, ``importance``, ``show``, ``diagnose`` and
``report``. They read Parquet files and the study's storage, never TensorFlow."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from tlsweep.cli._shared import ResultsDir, Storage, StudyArg, console, results_root, study_view
from tlsweep.errors import ConfigError


def leaderboard(
    study: Annotated[str, typer.Argument(help="Study name (a folder under the results dir).")],
    top: Annotated[int | None, typer.Option(min=1, help="Show only the first K rows.")] = None,
    sort: Annotated[str | None, typer.Option(help="Sort by this column.")] = None,
    state: Annotated[str | None, typer.Option(
        help="Comma-separated states to keep: complete,pruned,fail.")] = None,
    fmt: Annotated[str, typer.Option("--format", help="table, csv, json or markdown.")] = "table",
    refresh: Annotated[bool, typer.Option(
        "--refresh", help="Rebuild the Parquet files from the study's storage first.")] = False,
    wide: Annotated[bool, typer.Option(
        "--wide", help="Every column, however wide the terminal (by default the table keeps "
                       "the columns that fit, the scores first).")] = False,
    storage: Storage = None,
    results_dir: ResultsDir = None,
) -> None:
    """Show a study's leaderboard. Reads only the Parquet file (and storage with --refresh)."""
    from tlsweep.inspection import FORMATS

    if refresh:
        from tlsweep.finalists import results_rows
        from tlsweep.store import load_study, write_results

        directory = results_root(results_dir) / study
        recorded = load_study(directory, study, storage)
        write_results(recorded, directory, results_rows(recorded))
    if fmt not in FORMATS:
        raise ConfigError(f"--format: unknown format {fmt!r}; choose one of: {', '.join(FORMATS)}.")
    states = [s.strip() for s in state.split(",")] if state else None
    from tlsweep.inspection import show_leaderboard

    show_leaderboard(results_root(results_dir) / study, study, console, top, sort, states, fmt,
                     wide)


def importance(
    study: StudyArg,
    evaluator: Annotated[str, typer.Option(
        help="ped-anova, fanova, mdi, or all.")] = "all",
    results_dir: ResultsDir = None,
) -> None:
    """Hyperparameter importances: written to importance.parquet and shown as bars."""
    from tlsweep.inspection import (
        EVALUATORS,
        TREATMENT,
        few_trials_warning,
        importance_table,
        write_importance,
    )

    chosen = EVALUATORS if evaluator == "all" else (evaluator,)
    if not set(chosen) <= set(EVALUATORS):
        raise ConfigError(f"--evaluator: unknown evaluator {evaluator!r}; choose one of: "
                          f"{', '.join(EVALUATORS)} or all.")
    view = study_view(study, results_dir)
    frame = write_importance(view.study, view.directory, chosen)
    if frame.empty:
        raise ConfigError(f"study {study!r}: importance needs at least 2 finished trials with "
                          f"varied parameters.")
    first = frame.iloc[0]
    pruned = int(first["n_pruned_counted"])
    step = "" if first["step"] is None or first["step"] != first["step"] else \
        f" at step {int(first['step'])}"
    console.print(importance_table(frame, f"{study}: importance for {view.objective} "
                                          f"({first['n_trials']} trials{step}, {pruned} of them "
                                          f"pruned)"))
    warning = few_trials_warning(frame)
    if warning:
        console.print(f"[yellow]warning:[/] {warning}")
    console.print(f"[dim]{TREATMENT} 'edge' marks a best value within 5% of its range's end.[/]")


def show(
    study: StudyArg,
    trial: Annotated[int, typer.Argument(help="Trial number.")],
    results_dir: ResultsDir = None,
) -> None:
    """One trial: parameters, state, failure reason, curves and per-class metrics."""
    from tlsweep.inspection import class_table, confusion_table, curve_table

    view = study_view(study, results_dir)
    frozen = view.trial(trial)
    params = frozen.user_attrs.get("params") or frozen.params
    state = frozen.state.name.lower()
    console.print(f"[bold]{study} · trial {trial}[/]: {state}"
                  + (f", value {frozen.value:.4f}" if frozen.value is not None else ""))
    for key, value in params.items():
        console.print(f"  {key:<22} {value}")
    for line in _measured_lines(view, trial):
        console.print(line)
    reason = frozen.user_attrs.get("error") or (
        f"pruned at step {frozen.user_attrs.get('pruned_at')}" if state == "pruned" else None)
    if reason:
        console.print(f"  [yellow]reason[/]                 {reason}")
    curve = view.curve(trial)
    if not curve.empty:
        console.print(curve_table(curve))
    metrics = view.class_metrics(trial)
    if metrics is not None:
        console.print(class_table(metrics))
        console.print(confusion_table(metrics))


def _measured_lines(view: Any, trial: int) -> list[str]:
    """The trial's scores with their intervals: validation, cross-validated, test."""
    import pandas as pd

    from tlsweep.inspection import measured_lines

    return measured_lines(pd.concat([view.leaderboard, view.references]), trial, view.meta)


def diagnose(study: StudyArg, results_dir: ResultsDir = None) -> None:
    """Why is validation accuracy low? Findings drawn from the study's own numbers."""
    from tlsweep.inspection import diagnose as findings_of

    colours = {"problem": "red", "ok": "green", "note": "blue"}
    for finding in findings_of(study_view(study, results_dir)):
        console.print(f"[{colours[finding.level]}]● {finding.topic}[/]: {finding.text}")


def report(study: StudyArg, results_dir: ResultsDir = None) -> None:
    """Write a self-contained report.html (and its PNGs) for a study."""
    from tlsweep.inspection import IMPORTANCE, write_importance, write_report

    view = study_view(study, results_dir)
    if not (view.directory / IMPORTANCE).is_file():
        write_importance(view.study, view.directory)
    path = write_report(view)
    console.print(f"report: {path}")


