"""Optuna trials -> leaderboard and curves Parquet files (pandas, pyarrow). No TensorFlow.

Files are written to a temporary name and renamed, so a reader always sees a whole file.
The storage is the source of truth: these files can always be rebuilt from it.
"""

from __future__ import annotations

import json
import os
import tempfile
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from tlsweep import __version__
from tlsweep.space import PARAM_NAMES

if TYPE_CHECKING:
    import optuna

LEADERBOARD, CURVES = "leaderboard.parquet", "curves.parquet"
METADATA_KEY = b"tlsweep"
LEADERBOARD_COLUMNS = [
    "trial", "state", "value", "rank", *PARAM_NAMES, "best_epoch", "best_phase", "val_accuracy",
    "val_balanced_accuracy", "train_accuracy", "gap", "epochs_run", "pruned_at", "duration_s",
    "started_at", "worker", "error",
]
CURVE_COLUMNS = [
    "trial", "phase", "epoch", "step", "loss", "accuracy", "val_loss", "val_accuracy",
    "val_balanced_accuracy", "lr", "duration_s",
]


def _version(*distributions: str) -> str | None:
    for name in distributions:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return None


def file_metadata(study: optuna.Study) -> dict[str, Any]:
    return {
        "study": study.study_name,
        "sweep_sha256": study.user_attrs.get("sweep_sha256"),
        "objective": study.user_attrs.get("objective"),
        "budget_trials": study.user_attrs.get("budget_trials"),
        "written_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "versions": {
            "tlsweep": __version__,
            "tensorflow": _version("tensorflow-cpu", "tensorflow"),
            "keras": _version("keras"),
            "optuna": _version("optuna"),
        },
    }


def _best_epoch(curve: list[dict[str, Any]], objective: str) -> dict[str, Any] | None:
    # The first epoch that reached the best value: later ties add nothing.
    return max(curve, key=lambda r: (r[objective], -r["step"])) if curve else None


def _row(trial: optuna.trial.FrozenTrial, objective: str) -> dict[str, Any]:
    attrs = trial.user_attrs
    params = attrs.get("params", trial.params)
    best = _best_epoch(attrs.get("curve", []), objective)
    # Optuna gives a pruned trial its *last* value; its best so far says more.
    complete = trial.state.name == "COMPLETE"
    value = trial.value if complete else (best[objective] if best else None)
    started = attrs.get("started_at") or (
        trial.datetime_start.isoformat(timespec="seconds") if trial.datetime_start else None)
    return {
        "trial": trial.number,
        "state": trial.state.name.lower(),
        "value": value,
        **{name: params.get(name) for name in PARAM_NAMES},
        "best_epoch": best["step"] if best else None,
        "best_phase": best["phase"] if best else None,
        "val_accuracy": best["val_accuracy"] if best else None,
        "val_balanced_accuracy": best["val_balanced_accuracy"] if best else None,
        "train_accuracy": best["accuracy"] if best else None,
        "gap": best["accuracy"] - best["val_accuracy"] if best else None,
        "epochs_run": len(attrs.get("curve", [])),
        "pruned_at": attrs.get("pruned_at"),
        "duration_s": attrs.get("duration_s"),
        "started_at": started,
        "worker": attrs.get("worker"),
        "error": attrs.get("error"),
    }


def leaderboard_frame(study: optuna.Study) -> pd.DataFrame:
    objective = study.user_attrs.get("objective", "val_accuracy")
    rows = [_row(t, objective) for t in study.get_trials(deepcopy=False)]
    frame = pd.DataFrame(rows, columns=LEADERBOARD_COLUMNS)
    frame = frame.astype({"trial": "int64", "value": "float64", "best_epoch": "Int64",
                          "epochs_run": "int64", "pruned_at": "Int64", "duration_s": "float64",
                          "unfreeze_depth": "float64", "head_lr": "float64",
                          "finetune_lr": "float64", "augmentation_strength": "float64"})
    # Only finished trials are ranked: a pruned trial's value is a partial one.
    complete = frame["state"] == "complete"
    frame["rank"] = frame["value"].where(complete).rank(ascending=False, method="min")
    frame["rank"] = frame["rank"].astype("Int64")
    return frame.sort_values(["rank", "value"], ascending=[True, False], na_position="last")\
        .reset_index(drop=True)


def curves_frame(study: optuna.Study) -> pd.DataFrame:
    rows = [{"trial": t.number, **record}
            for t in study.get_trials(deepcopy=False)
            for record in t.user_attrs.get("curve", [])]
    return pd.DataFrame(rows, columns=CURVE_COLUMNS).astype(
        {"trial": "int64", "epoch": "int64", "step": "int64"})


def write_parquet(frame: pd.DataFrame, path: Path, meta: dict[str, Any]) -> None:
    """Write atomically: a temporary file in the same folder, then a rename."""
    table = pa.Table.from_pandas(frame, preserve_index=False)
    table = table.replace_schema_metadata(
        {**(table.schema.metadata or {}), METADATA_KEY: json.dumps(meta).encode()})
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    try:
        pq.write_table(table, temporary)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


def write_results(study: optuna.Study, directory: Path) -> None:
    meta = file_metadata(study)
    write_parquet(leaderboard_frame(study), directory / LEADERBOARD, meta)
    write_parquet(curves_frame(study), directory / CURVES, meta)


def read_parquet(path: Path) -> tuple[pd.DataFrame, dict[str, Any]]:
    table = pq.read_table(path)
    raw = (table.schema.metadata or {}).get(METADATA_KEY)
    return table.to_pandas(), json.loads(raw) if raw else {}
