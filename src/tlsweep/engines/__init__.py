"""The search engines behind one Engine contract: Optuna's (the default) and keras-tuner's."""

from tlsweep.engines._base import Engine, Search
from tlsweep.engines._registry import ENGINES, engine_named

__all__ = [
    "ENGINES",
    "Engine",
    "Search",
    "engine_named",
]
