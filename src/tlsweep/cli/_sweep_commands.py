"""The commands that run trials: ``run``, ``resume``, ``worker``, ``quickstart``, and ``init``,
which writes the sweep file they run."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Annotated

import typer

from tlsweep.cli._shared import (
    Launch,
    ResultsDir,
    console,
    launch_options,
    launcher,
    results_root,
)
from tlsweep.system import environment


@launch_options
def run(
    sweep: Annotated[Path, typer.Argument(help="The sweep file (YAML).")],
    launch: Launch,
    trials: Annotated[int | None, typer.Option(help="Override budget.trials.")] = None,
    timeout: Annotated[str | None, typer.Option(help="Override budget.timeout, e.g. 2h.")] = None,
) -> None:
    """Create a study from SWEEP and run it to its budget, with a live view."""
    raise typer.Exit(launcher(launch.results_dir).run(sweep, trials, timeout, launch.storage,
                                                      launch.workers, launch.gpus))


@launch_options
def resume(
    study: Annotated[str, typer.Argument(help="Study name (a folder under the results dir).")],
    launch: Launch,
    force: Annotated[bool, typer.Option(
        "--force", help="Resume even though the sweep file changed.")] = False,
) -> None:
    """Continue an interrupted study up to the budget it was created with."""
    raise typer.Exit(launcher(launch.results_dir).resume(study, force, launch.storage,
                                                         launch.workers, launch.gpus))


def worker(
    sweep: Annotated[Path, typer.Argument(help="The sweep file (YAML).")],
    storage: Annotated[str, typer.Option(
        "--storage", envvar=environment.STORAGE, show_envvar=False,
        help="The shared storage URL, e.g. postgresql://user:pass@host/db.")],
    timeout: Annotated[str | None, typer.Option(help="Override budget.timeout, e.g. 2h.")] = None,
    results_dir: ResultsDir = None,
) -> None:
    """Join a study in a shared database and run its trials until the budget is spent."""
    raise typer.Exit(launcher(results_dir).worker(sweep, storage, timeout))


def quickstart(results_dir: ResultsDir = None) -> None:
    """Run the embedded default sweep (digits 0-4 -> 5-9 transfer), offline, in a few minutes."""
    from tlsweep.cli import _quickstart as demo

    root = results_root(results_dir)
    console.print("[bold]quickstart[/]: preparing the pretrained digits backbone and data in "
                  f"{demo.workspace()}")
    sweep = demo.prepare()
    previous = root / "quickstart"
    if previous.exists():
        console.print(f"replacing the previous quickstart results in {previous}")
        shutil.rmtree(previous)
    raise typer.Exit(launcher(root).run(sweep, None, None, None, 1, None))


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


