"""The sweep file: its schema, the search space's six hyperparameters and the objective."""

from tlsweep.config._schema import (
    BackboneChoice,
    BudgetConfig,
    DataConfig,
    PrunerConfig,
    SamplerConfig,
    Sweep,
    changed_keys,
    load_sweep,
    parse_duration,
)
from tlsweep.config._space import NUMERIC_PARAMS, PARAM_NAMES, TrialParams, suggest

__all__ = [
    "NUMERIC_PARAMS",
    "PARAM_NAMES",
    "BackboneChoice",
    "BudgetConfig",
    "DataConfig",
    "PrunerConfig",
    "SamplerConfig",
    "Sweep",
    "TrialParams",
    "changed_keys",
    "load_sweep",
    "parse_duration",
    "suggest",
]
