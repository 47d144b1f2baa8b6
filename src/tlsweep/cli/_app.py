"""The ``tlsweep`` command: a dispatcher over one module per family of commands.

Heavy imports (Optuna's study code, Keras) happen inside the commands that need them, so the
inspection commands start fast and never import TensorFlow.
"""

from __future__ import annotations

import os
import sys
import warnings

import typer
from rich.markup import escape

from tlsweep.cli import _inspect_commands, _model_commands, _sweep_commands
from tlsweep.cli._shared import errors
from tlsweep.errors import TlsweepError

app = typer.Typer(no_args_is_help=True, pretty_exceptions_enable=False,
                  context_settings={"help_option_names": ["-h", "--help"]},
                  help="Find the transfer-learning setup that works for an image dataset.")


def _print_version(asked: bool) -> None:
    if asked:
        from tlsweep._version import __version__

        typer.echo(f"tlsweep {__version__}")
        raise typer.Exit()


@app.callback()
def _options(version: bool = typer.Option(False, "--version", "-V", callback=_print_version,
                                          is_eager=True, help="Print the version and exit.")
             ) -> None:
    """Find the transfer-learning setup that works for an image dataset."""

for command in (
    _sweep_commands.run, _sweep_commands.resume, _sweep_commands.worker,
    _sweep_commands.quickstart, _sweep_commands.init,
    _model_commands.export, _model_commands.predict, _model_commands.evaluate,
    _inspect_commands.leaderboard, _inspect_commands.importance, _inspect_commands.show,
    _inspect_commands.diagnose, _inspect_commands.report,
):
    app.command()(command)


def main() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # Optuna warns, on every use, that heartbeats are experimental: a note for its developers,
    # not a user's. Matched by text, so that starting the command never imports Optuna.
    warnings.filterwarnings("ignore", message=r"Argument ``\w+`` is an experimental feature")
    try:
        app()  # typer reports usage errors itself, with exit code 2
    except TlsweepError as exc:
        from tlsweep.store import scrub, storages_opened

        # Messages quote user text (paths, keys): escape it so rich shows it as written. They
        # may quote a driver too, which can spell a password no URL holds any more.
        errors.print("[red bold]error:[/] " + escape(scrub(str(exc), *storages_opened())),
                     highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except Exception:
        print_scrubbed_traceback()
        sys.exit(1)  # Python's own exit code for an uncaught exception


def print_scrubbed_traceback() -> None:
    """A bug's traceback, as Python prints it, less any password of a storage this process
    opened: a driver's error in it may spell one."""
    import traceback

    from tlsweep.store import scrub, storages_opened

    sys.stderr.write(scrub(traceback.format_exc(), *storages_opened()))
    sys.stderr.flush()
