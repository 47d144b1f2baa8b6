"""The sweep file: its schema, and the search space (the six hyperparameters, their ranges and
Optuna's suggestions from them)."""

from tlsweep.config._schema import (
    AnchorConfig,
    BudgetConfig,
    DataConfig,
    PrunerConfig,
    SamplerConfig,
    Sweep,
    changed_keys,
    load_sweep,
    parse_duration,
)
from tlsweep.config._space import (
    NUMERIC_PARAMS,
    PARAM_NAMES,
    BackboneChoice,
    TrialParams,
    anchor_params,
    suggest,
)

__all__ = [
    "NUMERIC_PARAMS",
    "PARAM_NAMES",
    "AnchorConfig",
    "BackboneChoice",
    "BudgetConfig",
    "DataConfig",
    "PrunerConfig",
    "SamplerConfig",
    "Sweep",
    "TrialParams",
    "anchor_params",
    "changed_keys",
    "load_sweep",
    "parse_duration",
    "suggest",
]
