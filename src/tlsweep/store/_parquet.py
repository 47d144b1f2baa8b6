"""Optuna trials -> leaderboard and curves Parquet files (pandas, pyarrow). No TensorFlow.

Files are written to a temporary name and renamed, so a reader always sees a whole file.
The storage is the source of truth: these files can always be rebuilt from it.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from tlsweep._version import __version__
from tlsweep.config import NUMERIC_PARAMS, PARAM_NAMES
from tlsweep.measures import estimate
from tlsweep.store._recorded import DEFAULT_START, anchor_recipe, best_value
from tlsweep.system import replacing

if TYPE_CHECKING:
    import optuna

LEADERBOARD, CURVES = "leaderboard.parquet", "curves.parquet"
REFERENCES = "final.parquet"  # the chosen model's and the baselines' rows, same columns
METADATA_KEY = b"tlsweep"
INTERVAL_COLUMNS = [f"{metric}{end}" for metric in (
    "val_accuracy", "val_balanced_accuracy", "test_accuracy", "test_balanced_accuracy")
    for end in ("", "_low", "_high")]
LEADERBOARD_COLUMNS = [
    "trial", "state", "value", "rank", "role", "value_low", "value_high", "tied", *PARAM_NAMES,
    "best_epoch", "best_phase", *INTERVAL_COLUMNS[:6], "train_accuracy", "gap", "cv_value",
    "cv_low", "cv_high", *INTERVAL_COLUMNS[6:], "epochs_run", "pruned_at", "duration_s",
    "started_at", "worker", "note", "error",
]
# The anchor recipe's trial row: its value and test are the search's run of it (its cv, once
# cross-validated, is added by ``tlsweep.finalists``).
ANCHOR_NOTE = "the anchor recipe (finalists.anchor); value: as the search's schedule trained it"
DEFAULT_START_NOTE = ("the default recipe (sampler.start_from_default), the search's first "
                      "trial; value: as the search's schedule trained it")
# role: "trial" (ranked), "baseline" (the linear probe per backbone) or "chosen" (the delivered
# model of the finalists' stage); the last two are reference rows, never ranked.
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


class Extension(Protocol):
    """What a later stage adds to the results files (``tlsweep.finalists.FinalRows``): store
    writes the rows and metadata it is given and reads no stage's report itself."""

    def extend(self, rows: list[dict[str, Any]], objective: str) -> None:
        """Adds columns to the trial rows (by ``row["trial"]``) and appends reference rows."""

    def metadata(self) -> dict[str, Any]:
        """Entries for every results file's metadata."""


def file_metadata(study: optuna.Study, extension: Extension | None = None) -> dict[str, Any]:
    counts = study.user_attrs.get("class_counts") or {}
    return {
        "n_val": sum(counts.get("val", [])) or None,
        "n_test": sum(counts.get("test", [])),
        **(extension.metadata() if extension else {}),
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
    value = best_value(trial)
    started = attrs.get("started_at") or (
        trial.datetime_start.isoformat(timespec="seconds") if trial.datetime_start else None)
    # The values come from the best epoch's record, their intervals from its confusion matrix;
    # the value's interval is that of the objective's metric.
    val = score_columns("val", (attrs.get("result") or {}).get("confusion"))
    return {
        "trial": trial.number,
        "role": "trial",
        "state": trial.state.name.lower(),
        "value": value,
        "value_low": val[f"{objective}_low"], "value_high": val[f"{objective}_high"],
        **{name: params.get(name) for name in PARAM_NAMES},
        "best_epoch": best["step"] if best else None,
        "best_phase": best["phase"] if best else None,
        **val,
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
        "note": ANCHOR_NOTE if anchor_recipe(trial) else
        DEFAULT_START_NOTE if trial.user_attrs.get(DEFAULT_START) else None,
    }


def leaderboard_frame(study: optuna.Study, extension: Extension | None = None) -> pd.DataFrame:
    objective = study.user_attrs.get("objective", "val_accuracy")
    rows = [_row(t, objective) for t in study.get_trials(deepcopy=False)]
    if extension is not None:
        extension.extend(rows, objective)
    frame = pd.DataFrame(rows, columns=LEADERBOARD_COLUMNS)
    numeric = ["value", "duration_s", *NUMERIC_PARAMS, "cv_value", "cv_low", "cv_high", "value_low",
               "value_high", *INTERVAL_COLUMNS, "train_accuracy", "gap"]
    frame = frame.astype({"trial": "Int64", "best_epoch": "Int64", "epochs_run": "Int64",
                          "pruned_at": "Int64", **dict.fromkeys(numeric, "float64")})
    # Only finished trials are ranked: a pruned trial's value is a partial one.
    complete = (frame["state"] == "complete") & (frame["role"] == "trial")
    frame["rank"] = frame["value"].where(complete).rank(ascending=False, method="min")
    frame["rank"] = frame["rank"].astype("Int64")
    best = frame.loc[complete, "value"].max()
    frame["tied"] = (complete & (frame["value_high"] >= best)).astype("boolean")
    frame.loc[~complete, "tied"] = pd.NA
    order = frame["role"].map({"trial": 0, "chosen": 1, "baseline": 2})
    return frame.assign(_order=order).sort_values(
        ["_order", "rank", "value"], ascending=[True, True, False], na_position="last")\
        .drop(columns="_order").reset_index(drop=True)


# ----------------------------------------------------------------------------- honest answers
def estimated_columns(name: str, confusion: list[list[int]] | None, metric: str) -> dict[str, Any]:
    """{name, name_low, name_high}: ``metric`` from a confusion matrix and its 95% interval
    (``intervals`` names the method); None each without a matrix."""
    if confusion is None:
        return dict.fromkeys((name, f"{name}_low", f"{name}_high"))
    found = estimate(np.asarray(confusion), metric)
    return {name: found.value, f"{name}_low": found.low, f"{name}_high": found.high}


def score_columns(split: str, confusion: list[list[int]] | None) -> dict[str, Any]:
    """Accuracy and balanced accuracy on ``split``, each with its interval."""
    return {**estimated_columns(f"{split}_accuracy", confusion, "accuracy"),
            **estimated_columns(f"{split}_balanced_accuracy", confusion, "balanced_accuracy")}


def curves_frame(study: optuna.Study) -> pd.DataFrame:
    rows = [{"trial": t.number, **record}
            for t in study.get_trials(deepcopy=False)
            for record in t.user_attrs.get("curve", [])]
    return pd.DataFrame(rows, columns=CURVE_COLUMNS).astype(
        {"trial": "int64", "epoch": "int64", "step": "int64"})


def write_parquet(frame: pd.DataFrame, path: Path, meta: dict[str, Any]) -> None:
    """Write atomically (``atomic.replacing``)."""
    table = pa.Table.from_pandas(frame, preserve_index=False)
    table = table.replace_schema_metadata(
        {**(table.schema.metadata or {}), METADATA_KEY: json.dumps(meta).encode()})
    with replacing(path) as temporary:
        pq.write_table(table, temporary)


def write_results(study: optuna.Study, directory: Path, extension: Extension | None = None) -> None:
    """leaderboard.parquet holds one row per trial; the reference rows, once the finalists'
    stage has run (``extension``), go to final.parquet beside it."""
    meta = file_metadata(study, extension)
    frame = leaderboard_frame(study, extension)
    trials = frame["role"] == "trial"
    write_parquet(frame[trials].reset_index(drop=True), directory / LEADERBOARD, meta)
    if not trials.all():
        write_parquet(frame[~trials].reset_index(drop=True), directory / REFERENCES, meta)
    write_parquet(curves_frame(study), directory / CURVES, meta)


def read_parquet(path: Path) -> tuple[pd.DataFrame, dict[str, Any]]:
    """A results file and its metadata; a damaged one is a ConfigError naming its fix."""
    from tlsweep.errors import ConfigError

    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError(f"{path}: damaged or incomplete Parquet file ({reason}). The study's "
                          f"storage still holds everything: rebuild the file with `tlsweep "
                          f"leaderboard {path.parent.name} --refresh`.") from None
    raw = (table.schema.metadata or {}).get(METADATA_KEY)
    return table.to_pandas(), json.loads(raw) if raw else {}
