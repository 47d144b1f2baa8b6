"""The command line: a short dispatcher and one module per command."""

from tlsweep.cli._app import main

__all__ = [
    "main",
]
