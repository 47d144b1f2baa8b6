from __future__ import annotations

import os
import stat
from pathlib import Path

import optuna
import pandas as pd
import pytest

from tlsweep.store import _parquet as results
from tlsweep.store import read_parquet, write_results
from tlsweep.store._parquet import LEADERBOARD_COLUMNS, curves_frame, leaderboard_frame


def curve(values: list[float], h: int = 2) -> list[dict]:
    return [{"phase": "head" if s < h else "finetune", "epoch": s if s < h else s - h, "step": s,
             "loss": 1.0 - v, "accuracy": v + 0.05, "val_loss": 1.0 - v, "val_accuracy": v,
             "val_balanced_accuracy": v - 0.01, "lr": 1e-3, "duration_s": 0.1}
            for s, v in enumerate(values)]


def params(depth: float) -> dict:
    return {"backbone": "MobileNetV2", "unfreeze_depth": depth, "head_lr": 1e-3,
            "finetune_lr": 1e-5, "augmentation_strength": 0.5, "class_weighting": "sqrt"}


def make_study() -> optuna.Study:
    study = optuna.create_study(direction="maximize", study_name="demo")
    study.set_user_attr("objective", "val_accuracy")
    study.set_user_attr("sweep_sha256", "abc123")
    State = optuna.trial.TrialState
    specs = [
        (State.COMPLETE, 0.8, curve([0.5, 0.7, 0.8, 0.75]), {}),
        (State.COMPLETE, 0.9, curve([0.6, 0.9, 0.85, 0.9]), {}),
        (State.PRUNED, None, curve([0.3, 0.6, 0.4]), {"pruned_at": 2}),
        (State.FAIL, None, curve([0.2]), {"error": "RuntimeError: boom"}),
    ]
    for i, (state, value, points, extra) in enumerate(specs):
        study.add_trial(optuna.trial.create_trial(
            state=state, value=value, params={}, distributions={},
            user_attrs={"params": params(0.1 * i), "curve": points, "worker": "host:1",
                        "duration_s": 3.0, **extra},
            intermediate_values={r["step"]: r["val_accuracy"] for r in points}))
    return study


def test_leaderboard_rows_rank_and_best_epoch() -> None:
    frame = leaderboard_frame(make_study())
    assert list(frame.columns) == LEADERBOARD_COLUMNS
    assert frame["trial"].tolist() == [1, 0, 2, 3]
    assert frame["rank"].tolist()[:2] == [1, 2] and frame["rank"].isna().tolist()[2:] == [1, 1]
    best = frame.iloc[0]
    # The first epoch that reached the best value, in the phase it ran in.
    assert (best["best_epoch"], best["best_phase"], best["val_accuracy"]) == (1, "head", 0.9)
    assert best["gap"] == pytest.approx(0.05)
    pruned = frame[frame["state"] == "pruned"].iloc[0]
    assert pruned["value"] == 0.6 and pruned["pruned_at"] == 2 and pruned["epochs_run"] == 3
    failed = frame[frame["state"] == "fail"].iloc[0]
    assert failed["error"] == "RuntimeError: boom"
    assert frame["unfreeze_depth"].tolist() == pytest.approx([0.1, 0.0, 0.2, 0.3])


def test_curves_hold_every_epoch_once() -> None:
    frame = curves_frame(make_study())
    assert len(frame) == 4 + 4 + 3 + 1
    assert not frame.duplicated(["trial", "step"]).any()
    assert set(frame["phase"]) == {"head", "finetune"}


def test_files_carry_metadata_and_load_with_pandas(tmp_path: Path) -> None:
    write_results(make_study(), tmp_path)
    frame = pd.read_parquet(tmp_path / "leaderboard.parquet")
    assert list(frame.columns) == LEADERBOARD_COLUMNS and len(frame) == 4
    _, meta = read_parquet(tmp_path / "curves.parquet")
    assert meta["study"] == "demo" and meta["sweep_sha256"] == "abc123"
    assert set(meta["versions"]) == {"tlsweep", "tensorflow", "keras", "optuna"}
    assert meta["versions"]["optuna"] == optuna.__version__


def test_a_failed_write_leaves_the_previous_file_whole(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    write_results(make_study(), tmp_path)
    before = (tmp_path / "leaderboard.parquet").read_bytes()

    def crash(table, where, **kwargs):
        Path(where).write_bytes(b"PAR1 half a file")
        raise OSError("disk full")

    monkeypatch.setattr(results.pq, "write_table", crash)
    with pytest.raises(OSError):
        write_results(make_study(), tmp_path)
    assert (tmp_path / "leaderboard.parquet").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["curves.parquet", "leaderboard.parquet"]


@pytest.mark.skipif(os.name == "nt", reason="POSIX permission bits")
def test_result_files_are_readable_as_the_umask_allows(tmp_path: Path) -> None:
    """Not 0o600 as tempfile.mkstemp left them: others on the machine read results under a
    0o022 umask, as they read any file the user makes (issue 38)."""
    previous = os.umask(0o022)
    try:
        write_results(make_study(), tmp_path)
    finally:
        os.umask(previous)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in tmp_path.iterdir()}
    assert modes == {"curves.parquet": 0o644, "leaderboard.parquet": 0o644}
