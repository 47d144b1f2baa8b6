"""The keras-tuner engine, end to end through the command line, beside the Optuna engine."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import run_cli, tiny_space, tiny_sweep, write_class_images, write_yaml
from tlsweep.store import open_storage
from tlsweep.store._parquet import CURVE_COLUMNS, LEADERBOARD_COLUMNS

pytestmark = pytest.mark.slow


def frames(directory: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    return (pd.read_parquet(directory / "leaderboard.parquet"),
            pd.read_parquet(directory / "curves.parquet"))


def test_keras_tuner_hyperband_writes_what_the_optuna_engine_writes(
        tmp_path: Path, tiny_backbone: Path) -> None:
    data = write_class_images(tmp_path / "data", {"red": 20, "green": 20})
    # Depths that unfreeze a block, so every trial has a phase 2 and Hyperband's epochs hold.
    space = write_yaml(tmp_path / "space.yaml",
                       tiny_space(tiny_backbone, unfreeze_depth="{low: 0.5, high: 1.0}"))
    tuned = write_yaml(tmp_path / "kt.yaml", tiny_sweep(
        data, space, study="kt", engine="keras-tuner", pruner=None,
        tuner="{kind: hyperband, factor: 2}", budget="{trials: 30}"))
    optuna_sweep = write_yaml(tmp_path / "optuna.yaml", tiny_sweep(
        data, space, study="op", budget="{trials: 10, epochs: 6}"))

    done = run_cli("run", str(tuned))
    assert done.returncode == 0, done.stderr[-3000:]
    assert run_cli("run", str(optuna_sweep)).returncode == 0

    board, curves = frames(tmp_path / "results" / "kt")
    optuna_board, optuna_curves = frames(tmp_path / "results" / "op")
    assert list(board.columns) == list(optuna_board.columns) == LEADERBOARD_COLUMNS
    assert list(curves.columns) == list(optuna_curves.columns) == CURVE_COLUMNS
    # Hyperband with max_epochs 4 and factor 2: brackets of 1, 2 and 4 epochs.
    assert set(board["state"]) == {"complete"} and len(board) >= 8
    assert board["epochs_run"].sum() == len(curves)
    assert sorted(set(board["epochs_run"])) == [1, 2, 4]
    assert board["head_lr"].notna().all() and board["class_weighting"].notna().all()

    # Rounds that continue a trial start at the epoch where Hyperband picks it up: the global
    # step never restarts at 0, and phase 2 follows the head's epochs.
    storage = open_storage(f"sqlite:///{tmp_path / 'results' / 'kt' / 'study.db'}")
    import optuna

    trials = optuna.load_study(study_name="kt", storage=storage).trials
    continuing = [t for t in trials if t.user_attrs["continues_trial"] is not None]
    assert continuing, "Hyperband continued no trial"
    for trial in continuing:
        steps = [r["step"] for r in trial.user_attrs["curve"]]
        assert steps[0] > 0 and steps == list(range(steps[0], steps[0] + len(steps)))
        assert all((r["phase"] == "head") == (r["step"] < 2) for r in trial.user_attrs["curve"])

    # The epoch budget stops the Optuna engine once it is spent: 4 + 4 >= 6.
    assert len(optuna_board) == 2 and optuna_board["epochs_run"].sum() == 8

    shown = run_cli("leaderboard", "kt", "--format", "csv")
    assert shown.returncode == 0 and shown.stdout.count("\n") == len(board) + 1


def test_keras_tuner_random_search_keeps_the_trial_budget(tmp_path: Path,
                                                          tiny_backbone: Path) -> None:
    data = write_class_images(tmp_path / "data", {"red": 12, "green": 12})
    # Depths that unfreeze a block, so every trial has its phase 2 epoch.
    space = write_yaml(tmp_path / "space.yaml",
                       tiny_space(tiny_backbone, unfreeze_depth="{low: 0.5, high: 1.0}"))
    sweep = write_yaml(tmp_path / "sweep.yaml", tiny_sweep(
        data, space, engine="keras-tuner", pruner=None, tuner="{kind: random}",
        training="{head_epochs: 1, finetune_epochs: 1, batch_size: 16}"))
    done = run_cli("run", str(sweep))
    assert done.returncode == 0, done.stderr[-3000:]
    board, curves = frames(tmp_path / "results" / "tiny")
    assert len(board) == 3 and (board["epochs_run"] == 2).all() and len(curves) == 6

    workers = run_cli("run", str(sweep), "--workers", "2")
    assert workers.returncode == 2 and "runs its search in one process" in workers.stderr
