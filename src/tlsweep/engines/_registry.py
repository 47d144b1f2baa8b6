"""The engines by the name a sweep file gives them (``engine:``)."""

from __future__ import annotations

from tlsweep.engines._base import Engine
from tlsweep.engines._keras_tuner import KerasTunerEngine
from tlsweep.engines._optuna import OptunaEngine

ENGINES: dict[str, type[Engine]] = {e.name: e for e in (OptunaEngine, KerasTunerEngine)}


def engine_named(name: str) -> Engine:
    """The engine the sweep file names (its schema has already refused any other name)."""
    return ENGINES[name]()
