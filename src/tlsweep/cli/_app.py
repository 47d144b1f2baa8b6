"""The ``tlsweep`` command. Each command is a few lines calling the modules below it.

Heavy imports (Optuna's study code, Keras) happen inside the commands that need them, so the
inspection commands start fast and never import TensorFlow.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from tlsweep.errors import ConfigError, TlsweepError
from tlsweep.system import environment

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Find the transfer-learning setup that works for an image dataset.")
# A pipe gets wide lines rather than an 80-column wrap of the leaderboard. Workers started by
# `run --workers` share their parent's terminal: they print lines, never a live view of their own.
_plain = os.environ.get(environment.PLAIN_OUTPUT) == "1" or not sys.stdout.isatty()
console = Console(width=240 if _plain else None, force_terminal=False if _plain else None)
errors = Console(stderr=True)

ResultsDir = Annotated[Path | None, typer.Option(
    "--results-dir", help="Where studies live (default: ./results, or $TLSWEEP_RESULTS).")]


def _results_root(option: Path | None) -> Path:
    from tlsweep.store import results_root

    return option or results_root()


# ----------------------------------------------------------------------------- sweeps
def _launcher(results_dir: Path | None) -> Any:
    from tlsweep.cli._launch import Launcher

    return Launcher(console, errors, results_dir)


def _workers_and_gpus(workers: int, gpus: str | None) -> tuple[int, list[str] | None]:
    """--gpus sets the worker count: one worker per listed device."""
    if gpus is None:
        return workers, None
    found = [g.strip() for g in gpus.split(",") if g.strip()]
    if not found or not all(g.isdigit() for g in found):
        raise ConfigError(f"--gpus: {gpus!r} is not a comma-separated list of device numbers "
                          f"such as 0,1.")
    return len(found), found


Storage = Annotated[str | None, typer.Option(
    "--storage", envvar=environment.STORAGE, show_envvar=False,
    help="Optuna storage URL (postgresql://...); default: a file in the results folder.")]
Workers = Annotated[int, typer.Option(
    "--workers", min=1, help="Worker processes on this machine.")]
Gpus = Annotated[str | None, typer.Option(
    "--gpus", help="Pin one worker to each of these GPUs, e.g. 0,1 (sets --workers).")]


@app.command()
def run(
    sweep: Annotated[Path, typer.Argument(help="The sweep file (YAML).")],
    trials: Annotated[int | None, typer.Option(help="Override budget.trials.")] = None,
    timeout: Annotated[str | None, typer.Option(help="Override budget.timeout, e.g. 2h.")] = None,
    storage: Storage = None,
    workers: Workers = 1,
    gpus: Gpus = None,
    results_dir: ResultsDir = None,
) -> None:
    """Create a study from SWEEP and run it to its budget, with a live view."""
    count, devices = _workers_and_gpus(workers, gpus)
    raise typer.Exit(_launcher(results_dir).run(sweep, trials, timeout, storage, count, devices))


@app.command()
def resume(
    study: Annotated[str, typer.Argument(help="Study name (a folder under the results dir).")],
    force: Annotated[bool, typer.Option(
        "--force", help="Resume even though the sweep file changed.")] = False,
    storage: Storage = None,
    workers: Workers = 1,
    gpus: Gpus = None,
    results_dir: ResultsDir = None,
) -> None:
    """Continue an interrupted study up to the budget it was created with."""
    count, devices = _workers_and_gpus(workers, gpus)
    raise typer.Exit(_launcher(results_dir).resume(study, force, storage, count, devices))


@app.command()
def worker(
    sweep: Annotated[Path, typer.Argument(help="The sweep file (YAML).")],
    storage: Annotated[str, typer.Option(
        "--storage", envvar=environment.STORAGE, show_envvar=False,
        help="The shared storage URL, e.g. postgresql://user:pass@host/db.")],
    timeout: Annotated[str | None, typer.Option(help="Override budget.timeout, e.g. 2h.")] = None,
    results_dir: ResultsDir = None,
) -> None:
    """Join a study in a shared database and run its trials until the budget is spent."""
    raise typer.Exit(_launcher(results_dir).worker(sweep, storage, timeout))


@app.command()
def quickstart(results_dir: ResultsDir = None) -> None:
    """Run the embedded default sweep (digits 0-4 -> 5-9 transfer), offline, in a few minutes."""
    from tlsweep.cli import _quickstart as demo

    root = _results_root(results_dir)
    console.print("[bold]quickstart[/]: preparing the pretrained digits backbone and data in "
                  f"{demo.workspace()}")
    sweep = demo.prepare()
    previous = root / "quickstart"
    if previous.exists():
        console.print(f"replacing the previous quickstart results in {previous}")
        shutil.rmtree(previous)
    raise typer.Exit(_launcher(root).run(sweep, None, None, None, 1, None))


@app.command()
def init(
    data_dir: Annotated[Path, typer.Argument(metavar="DATA_DIR", help=(
        "Image folder: one sub-folder per class, or train/ and val/ (and test/) folders."))],
    out: Annotated[Path | None, typer.Option(metavar="FILE", help=(
        "Sweep file to write (default ./<folder>.yaml); the search space goes beside it as "
        "<name>_space.yaml."))] = None,
    weights: Annotated[list[str] | None, typer.Option("--weights", metavar="NAME=FILE", help=(
        "A local .weights.h5 file for a registered backbone; repeatable."))] = None,
    wall_time: Annotated[str, typer.Option("--time", metavar="DURATION", help=(
        "Wall time the sweep should fit, e.g. 30m or 2h."))] = "30m",
) -> None:
    """Write a commented sweep file and search space for DATA_DIR, with defaults read from it."""
    from tlsweep.cli._scaffold import init as scaffold

    for line in scaffold(data_dir, out, weights or [], wall_time):
        console.print(line, markup=False, highlight=False, soft_wrap=True)


# ----------------------------------------------------------------------------- models
@app.command()
def export(
    study: Annotated[str, typer.Argument(help="Study name (a folder under the results dir).")],
    out: Annotated[Path, typer.Option("--out", help="Folder for the model and its card.")],
    trial: Annotated[int | None, typer.Option(
        help="Export this trial's kept model instead of the study's chosen one.")] = None,
    fmt: Annotated[str, typer.Option("--format", help="keras, savedmodel or tflite.")] = "keras",
    results_dir: ResultsDir = None,
) -> None:
    """Write a self-contained model (raw uint8 images in, probabilities out) and its card."""
    from tlsweep.cli._model_commands import export_command

    export_command(console, _results_root(results_dir), study, trial, out, fmt)


ModelArg = Annotated[str, typer.Argument(
    help="An exported model (its folder or file) or a study name (its chosen model).")]


@app.command()
def predict(
    model: ModelArg,
    paths: Annotated[list[Path], typer.Argument(help="Image files or folders (recursive).")],
    top: Annotated[int, typer.Option(min=1, help="Classes per image.")] = 3,
    fmt: Annotated[str, typer.Option("--format", help="table, csv, json or parquet.")] = "table",
    out: Annotated[Path | None, typer.Option("--out", help="Write to this file.")] = None,
    results_dir: ResultsDir = None,
) -> None:
    """The top classes of each image, with their probabilities."""
    from tlsweep.cli._model_commands import predict_command

    predict_command(console, errors, _results_root(results_dir), model, paths, top, fmt, out)


@app.command()
def evaluate(
    model: ModelArg,
    folder: Annotated[Path, typer.Argument(help="Labelled images: one sub-folder per class.")],
    out: Annotated[Path | None, typer.Option(
        "--out", help="Also write metrics.json, Parquet files and calibration.png here.")] = None,
    results_dir: ResultsDir = None,
) -> None:
    """Accuracy, balanced accuracy, per-class scores, calibration, with intervals."""
    from tlsweep.cli._model_commands import evaluate_command

    evaluate_command(console, errors, _results_root(results_dir), model, folder, out)


# ----------------------------------------------------------------------------- inspection
@app.command()
def leaderboard(
    study: Annotated[str, typer.Argument(help="Study name (a folder under the results dir).")],
    top: Annotated[int | None, typer.Option(min=1, help="Show only the first K rows.")] = None,
    sort: Annotated[str | None, typer.Option(help="Sort by this column.")] = None,
    state: Annotated[str | None, typer.Option(
        help="Comma-separated states to keep: complete,pruned,fail.")] = None,
    fmt: Annotated[str, typer.Option("--format", help="table, csv, json or markdown.")] = "table",
    refresh: Annotated[bool, typer.Option(
        "--refresh", help="Rebuild the Parquet files from the study's storage first.")] = False,
    storage: Storage = None,
    results_dir: ResultsDir = None,
) -> None:
    """Show a study's leaderboard. Reads only the Parquet file (and storage with --refresh)."""
    from tlsweep.inspection import FORMATS

    if refresh:
        from tlsweep.store import load_study, write_results

        directory = _results_root(results_dir) / study
        write_results(load_study(directory, study, storage), directory)
    if fmt not in FORMATS:
        raise ConfigError(f"--format: unknown format {fmt!r}; choose one of: {', '.join(FORMATS)}.")
    states = [s.strip() for s in state.split(",")] if state else None
    from tlsweep.inspection import show_leaderboard

    show_leaderboard(_results_root(results_dir) / study, study, console, top, sort, states, fmt)


def _view(study: str, results_dir: Path | None) -> Any:
    from tlsweep.inspection import StudyView

    return StudyView.load(_results_root(results_dir) / study, study)


StudyArg = Annotated[str, typer.Argument(help="Study name (a folder under the results dir).")]


@app.command()
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
    view = _view(study, results_dir)
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


@app.command()
def show(
    study: StudyArg,
    trial: Annotated[int, typer.Argument(help="Trial number.")],
    results_dir: ResultsDir = None,
) -> None:
    """One trial: parameters, state, failure reason, curves and per-class metrics."""
    from tlsweep.inspection import class_table, confusion_table, curve_table

    view = _view(study, results_dir)
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


@app.command()
def diagnose(study: StudyArg, results_dir: ResultsDir = None) -> None:
    """Why is validation accuracy low? Findings drawn from the study's own numbers."""
    from tlsweep.inspection import diagnose as findings_of

    colours = {"problem": "red", "ok": "green", "note": "blue"}
    for finding in findings_of(_view(study, results_dir)):
        console.print(f"[{colours[finding.level]}]● {finding.topic}[/]: {finding.text}")


@app.command()
def report(study: StudyArg, results_dir: ResultsDir = None) -> None:
    """Write a self-contained report.html (and its PNGs) for a study."""
    from tlsweep.inspection import IMPORTANCE, write_importance, write_report

    view = _view(study, results_dir)
    if not (view.directory / IMPORTANCE).is_file():
        write_importance(view.study, view.directory)
    path = write_report(view)
    console.print(f"report: {path}")


def main() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        app()  # typer reports usage errors itself, with exit code 2
    except TlsweepError as exc:
        from tlsweep.store import mask

        # Messages quote user text (paths, keys): escape it so rich shows it as written.
        errors.print("[red bold]error:[/] " + escape(mask(str(exc))), highlight=False,
                     soft_wrap=True)
        sys.exit(exc.exit_code)
