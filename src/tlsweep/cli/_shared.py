"""What the command modules share: the consoles, the common options and arguments, and the
launcher of sweeps. Nothing heavy is imported here: the inspection commands must start fast and
never import TensorFlow."""

from __future__ import annotations

import functools
import inspect
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from tlsweep.errors import ConfigError
from tlsweep.system import environment

# A pipe gets wide lines rather than an 80-column wrap of the leaderboard. Workers started by
# `run --workers` share their parent's terminal: they print lines, never a live view of their own.
_plain = os.environ.get(environment.PLAIN_OUTPUT) == "1" or not sys.stdout.isatty()
console = Console(width=240 if _plain else None, force_terminal=False if _plain else None)
errors = Console(stderr=True)

ResultsDir = Annotated[Path | None, typer.Option(
    "--results-dir", help="Where studies live (default: ./results, or $TLSWEEP_RESULTS).")]


def results_root(option: Path | None) -> Path:
    from tlsweep.store import results_root as default_root

    return option or default_root()


StudyArg = Annotated[str, typer.Argument(help="Study name (a folder under the results dir).")]
ModelArg = Annotated[str, typer.Argument(
    help="An exported model (its folder or file) or a study name (its chosen model).")]


def study_view(study: str, results_dir: Path | None) -> Any:
    from tlsweep.inspection import StudyView

    return StudyView.load(results_root(results_dir) / study, study)


def launcher(results_dir: Path | None) -> Any:
    from tlsweep.launch import Launcher

    return Launcher(console, errors, results_dir)


def workers_and_gpus(workers: int, gpus: str | None) -> tuple[int, list[str] | None]:
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


@dataclass(frozen=True)
class Launch:
    """The options every command that runs trials on this machine shares."""

    storage: str | None
    workers: int  # one per --gpus device when those are given
    gpus: list[str] | None
    results_dir: Path | None


def _launch_options(storage: Storage = None, workers: Workers = 1, gpus: Gpus = None,
                    results_dir: ResultsDir = None) -> None:
    """The signature ``launch_options`` appends to a command (never called)."""


_SHARED = list(inspect.signature(_launch_options, eval_str=True).parameters.values())


def launch_options(command: Callable[..., None]) -> Callable[..., None]:
    """Give ``command`` the --storage, --workers, --gpus and --results-dir options, written once
    here, and hand them to it as one ``Launch`` (its ``launch`` parameter)."""
    own = inspect.signature(command, eval_str=True)

    @functools.wraps(command)
    def with_options(**kwargs: Any) -> None:
        given = {p.name: kwargs.pop(p.name) for p in _SHARED}
        count, devices = workers_and_gpus(given["workers"], given["gpus"])
        command(**kwargs, launch=Launch(given["storage"], count, devices, given["results_dir"]))

    del with_options.__wrapped__  # typer reads the signature below, not the command's
    with_options.__signature__ = own.replace(  # type: ignore[attr-defined]
        parameters=[p for p in own.parameters.values() if p.name != "launch"] + _SHARED)
    return with_options
