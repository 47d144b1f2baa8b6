"""The sweep-file options whose packages come with an extra (``pip install 'tlsweep[EXTRA]'``):
the keras-tuner engine and the ``tracking`` section; and the check that what a sweep file asks
for is installed.

A missing extra is refused when the sweep file is loaded, before any work, naming the key and
the extra. A study's recorded sweep file, replayed (``show``, ``report``, ``resume``), is not
checked: reading a study never needs the packages that searched it.
"""

from __future__ import annotations

from importlib.util import find_spec
from pathlib import Path
from typing import Any

from pydantic import ValidationInfo, field_validator

from tlsweep.config._base import Strict, resolve_path, switch_section

# The extra of each optional feature, and the modules it must bring (import names).
TUNER = ("tuner", ("keras_tuner", "tensorboard"))
TRACKING = ("tracking", ("mlflow",))


def installed(module: str) -> bool:
    """Whether ``module`` can be imported, without importing it (keras_tuner would import
    TensorFlow). A module set to None in ``sys.modules`` counts as absent, as ``import`` does."""
    try:
        return find_spec(module) is not None
    except (ImportError, ValueError):  # a broken parent package, or a module without a spec
        return False


def install_hint(extra: str) -> str:
    return f"pip install 'tlsweep[{extra}]'"


def _missing(feature: tuple[str, tuple[str, ...]]) -> str | None:
    """The install command of ``feature``'s extra where one of its modules is absent."""
    extra, modules = feature
    return None if all(installed(m) for m in modules) else install_hint(extra)


class MLflowConfig(Strict, use_attribute_docstrings=True):
    """Each finished trial (complete or pruned) logged as one MLflow run, from the orchestrator,
    by MLflow's client: the trial's parameters, its value, its per-epoch curve and its state.
    Needs ``pip install 'tlsweep[tracking]'``. A tracking server that fails costs the sweep
    nothing: one warning, and no more runs logged by that process."""

    tracking_uri: str | None = None
    """Where the runs go: a tracking server (``http://host:5000``, ``databricks``) or a
    database (``sqlite:///mlflow.db``, relative to the sweep file). Null: MLflow's default
    (``MLFLOW_TRACKING_URI``, else MLflow's local default)."""
    experiment: str | None = None
    """The MLflow experiment the runs are logged in, created if it does not exist; null: the
    study's name."""

    @field_validator("tracking_uri")
    @classmethod
    def _relative_to_the_file(cls, value: str | None, info: ValidationInfo) -> str | None:
        # MLflow reads a relative SQLite path against the working directory; tlsweep reads
        # every relative path against the file that names it, so a run started anywhere (or
        # resumed) logs to the same database.
        prefix = "sqlite:///"
        if value is None or not value.startswith(prefix) or value.startswith(prefix + "/"):
            return value
        path, query = value.removeprefix(prefix).partition("?")[::2]
        if not path or path == ":memory:":
            return value
        return f"{prefix}{resolve_path(Path(path), info)}" + (f"?{query}" if query else "")


class TrackingConfig(Strict, use_attribute_docstrings=True):
    """Experiment trackers that log every finished trial beside the study (which records it
    whatever the tracking does). Off by default."""

    mlflow: MLflowConfig | None = None
    """Log each finished trial as an MLflow run: ``true`` for MLflow's defaults, or a mapping
    of the settings to change; null or ``false``: no MLflow."""

    @field_validator("mlflow", mode="before")
    @classmethod
    def _mlflow_switch(cls, value: Any) -> Any:
        return switch_section(value)


def unavailable(engine: str, tracking: TrackingConfig | None) -> str | None:
    """Why the sweep file's ``engine`` or ``tracking`` cannot act here, naming the key and the
    fix; None when both can."""
    if engine == "keras-tuner" and (hint := _missing(TUNER)):
        return (f"engine: keras-tuner needs keras-tuner and TensorBoard, which are not "
                f"installed here: {hint} (or use engine: optuna)")
    if tracking is None:
        return None
    if tracking.mlflow is None:
        return ("'tracking' names no tracker: give tracking: {mlflow: {tracking_uri: ..., "
                "experiment: ...}} (or mlflow: true for MLflow's defaults), or remove tracking")
    # keras-tuner's trials end inside its own loop (engines._keras_tuner), which does not call
    # the tracker yet: refused rather than silently left untracked.
    if engine != "optuna":
        return (f"'tracking' logs the optuna engine's trials; engine: {engine} is not tracked: "
                f"set engine: optuna, or remove tracking")
    if hint := _missing(TRACKING):
        return (f"tracking.mlflow needs MLflow, which is not installed here: {hint} (or "
                f"remove tracking)")
    return None

