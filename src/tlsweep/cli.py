"""The ``tlsweep`` command. Each command is a few lines calling the modules below it.

Heavy imports (Optuna's study code, Keras) happen inside the commands that need them, so the
inspection commands start fast and never import TensorFlow.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from tlsweep.errors import ConfigError, TlsweepError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Find the transfer-learning setup that works for an image dataset.")
# A pipe gets wide lines rather than an 80-column wrap of the leaderboard.
console = Console(width=None if sys.stdout.isatty() else 200)
errors = Console(stderr=True)

ResultsDir = Annotated[Path | None, typer.Option(
    "--results-dir", help="Where studies live (default: ./results, or $TLSWEEP_RESULTS).")]


def _results_root(option: Path | None) -> Path:
    from tlsweep.study import results_root

    return option or results_root()


# ----------------------------------------------------------------------------- sweeps
def _launch(sweep_path: Path, root: Path, trials: int | None, timeout: str | None) -> int:
    from tlsweep.config import BudgetConfig, load_sweep, parse_duration
    from tlsweep.progress import LiveView
    from tlsweep.study import create_study, prepare, refuse_existing, run_study, study_dir

    sweep = load_sweep(sweep_path)
    budget = sweep.config.budget.model_dump()
    if trials is not None:
        budget["trials"] = trials
    if timeout is not None:
        try:
            budget["timeout"] = parse_duration(timeout)
        except ValueError as exc:
            raise ConfigError(f"--timeout: {exc}") from None
    config = sweep.config.model_copy(update={"budget": BudgetConfig(**budget)})
    sweep = sweep.model_copy(update={"config": config})
    refuse_existing(sweep, study_dir(config.study, root))  # before the data is decoded
    plan = prepare(sweep, root)
    data = plan.dataset
    console.print(f"[bold]{config.study}[/]: {len(data.y_train)} training and {len(data.y_val)} "
                  f"validation images, {data.n_classes} classes at {config.data.image_size} px")
    for skipped in plan.skipped:
        console.print(f"[yellow]skipped[/] {skipped.path}: {skipped.reason}")
    study = create_study(plan)
    with LiveView(config.study, config.budget.trials, console) as view:
        run_study(plan, study, view)
    _show_leaderboard(config.study, root, top=10)
    console.print(f"results: {plan.directory}")
    return 0 if any(t.state.name == "COMPLETE" for t in study.trials) else 1


@app.command()
def run(
    sweep: Annotated[Path, typer.Argument(help="The sweep file (YAML).")],
    trials: Annotated[int | None, typer.Option(help="Override budget.trials.")] = None,
    timeout: Annotated[str | None, typer.Option(help="Override budget.timeout, e.g. 2h.")] = None,
    results_dir: ResultsDir = None,
) -> None:
    """Create a study from SWEEP and run it to its budget, with a live view."""
    raise typer.Exit(_launch(sweep, _results_root(results_dir), trials, timeout))


@app.command()
def quickstart(results_dir: ResultsDir = None) -> None:
    """Run the embedded default sweep (digits 0-4 -> 5-9 transfer), offline, in a few minutes."""
    from tlsweep import quickstart as demo

    root = _results_root(results_dir)
    console.print("[bold]quickstart[/]: preparing the pretrained digits backbone and data in "
                  f"{demo.workspace()}")
    sweep = demo.prepare()
    previous = root / "quickstart"
    if previous.exists():
        console.print(f"replacing the previous quickstart results in {previous}")
        shutil.rmtree(previous)
    raise typer.Exit(_launch(sweep, root, None, None))


# ----------------------------------------------------------------------------- inspection
def _show_leaderboard(study: str, root: Path, top: int | None = None, sort: str | None = None,
                      states: list[str] | None = None, fmt: str = "table") -> None:
    from tlsweep.report import load_leaderboard, render, select

    frame, meta = load_leaderboard(root / study, study)
    frame = select(frame, top, sort, states)
    title = f"{study}: {meta.get('objective', 'value')} (sweep {str(meta.get('sweep_sha256'))[:8]})"
    render(frame, fmt, title, console)


@app.command()
def leaderboard(
    study: Annotated[str, typer.Argument(help="Study name (a folder under the results dir).")],
    top: Annotated[int | None, typer.Option(help="Show only the first K rows.")] = None,
    sort: Annotated[str | None, typer.Option(help="Sort by this column.")] = None,
    state: Annotated[str | None, typer.Option(
        help="Comma-separated states to keep: complete,pruned,fail.")] = None,
    fmt: Annotated[str, typer.Option("--format", help="table, csv, json or markdown.")] = "table",
    results_dir: ResultsDir = None,
) -> None:
    """Show a study's leaderboard. Reads only the Parquet file."""
    from tlsweep.report import FORMATS

    if fmt not in FORMATS:
        raise ConfigError(f"--format: unknown format {fmt!r}; choose one of: {', '.join(FORMATS)}.")
    states = [s.strip() for s in state.split(",")] if state else None
    _show_leaderboard(study, _results_root(results_dir), top, sort, states, fmt)


def main() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        app(standalone_mode=False)
    except TlsweepError as exc:
        errors.print(f"[red bold]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        errors.print("interrupted")
        sys.exit(130)
    except Exception as exc:  # click usage errors arrive here in standalone_mode=False
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(2)
        raise
