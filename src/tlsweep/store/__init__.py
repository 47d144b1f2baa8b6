"""Where a sweep is recorded: the Optuna storage built from its URL, the results folder's paths and
the Parquet leaderboard."""

from tlsweep.store._optuna_internals import (
    current,
    record_heartbeat,
    stale_trial_ids,
    storage,
    trial_id,
)
from tlsweep.store._parquet import (
    CURVES,
    LEADERBOARD,
    REFERENCES,
    file_metadata,
    read_parquet,
    write_parquet,
    write_results,
)
from tlsweep.store._paths import results_root, study_dir
from tlsweep.store._recorded import (
    ANCHOR,
    DEFAULT_START,
    anchor_recipe,
    best_value,
    checkpoint_folder,
    epochs_spent,
    finished_count,
    lineage_root,
    load_study,
    locate,
    planned_count,
    recorded_sweep,
    study_exists,
)
from tlsweep.store._secrets import mask, scrub, storages_opened
from tlsweep.store._storage import StorageURL, budget_lock, is_local, local_url, open_storage

__all__ = [
    "ANCHOR",
    "CURVES",
    "DEFAULT_START",
    "LEADERBOARD",
    "REFERENCES",
    "StorageURL",
    "anchor_recipe",
    "best_value",
    "budget_lock",
    "checkpoint_folder",
    "current",
    "epochs_spent",
    "file_metadata",
    "finished_count",
    "is_local",
    "lineage_root",
    "load_study",
    "local_url",
    "locate",
    "mask",
    "open_storage",
    "planned_count",
    "read_parquet",
    "record_heartbeat",
    "recorded_sweep",
    "results_root",
    "scrub",
    "stale_trial_ids",
    "storage",
    "storages_opened",
    "study_dir",
    "study_exists",
    "trial_id",
    "write_parquet",
    "write_results",
]
