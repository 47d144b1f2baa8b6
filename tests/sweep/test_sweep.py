"""End to end through the real command line, on tiny images and a tiny backbone."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import run_cli, tiny_space, tiny_sweep, write_yaml
from tests.datasets.test_data import messy_folder
from tlsweep.store import read_parquet
from tlsweep.store._parquet import LEADERBOARD_COLUMNS

pytestmark = pytest.mark.slow


def test_a_messy_folder_sweeps_lists_skipped_files_and_writes_parquet(
        tmp_path: Path, tiny_backbone: Path) -> None:
    data = messy_folder(tmp_path / "messy")
    space = write_yaml(tmp_path / "space.yaml", tiny_space(tiny_backbone))
    sweep = write_yaml(tmp_path / "sweep.yaml", tiny_sweep(data, space))
    done = run_cli("run", str(sweep))
    assert done.returncode == 0, done.stderr[-3000:]
    for name in ("placeholder.gif", ".DS_Store", "notes.txt", "truncated.jpg"):
        assert f"{name}:" in done.stdout, name
    assert done.stdout.count("placeholder.gif:") == 1
    assert "decoded images cached in" in done.stdout and "rebuilt when a file changes" in \
        done.stdout

    directory = tmp_path / "results" / "tiny"
    board = pd.read_parquet(directory / "leaderboard.parquet")
    assert list(board.columns) == LEADERBOARD_COLUMNS
    assert len(board) == 3 and set(board["state"]) == {"complete"}
    assert board["rank"].tolist() == sorted(board["rank"].tolist())
    curves, meta = read_parquet(directory / "curves.parquet")
    assert len(curves) == board["epochs_run"].sum() == 12
    assert meta["versions"]["tensorflow"] and meta["versions"]["keras"]
    assert len(meta["sweep_sha256"]) == 64

    # keep_top (3) keeps every final model here; each is whole: it is written aside, then moved.
    trials = directory / "trials"
    kept = sorted(int(path.parent.name) for path in trials.glob("*/model.keras"))
    assert kept == sorted(board["trial"].tolist())
    assert not [path.name for path in trials.iterdir() if path.name.startswith(".")]
    import keras

    model = keras.models.load_model(trials / str(kept[0]) / "model.keras", compile=False)
    assert model.output_shape == (None, 2)

    again = run_cli("run", str(sweep))
    assert again.returncode == 2 and "tlsweep resume tiny" in again.stderr


def test_a_crashing_trial_is_recorded_as_failed_and_the_sweep_goes_on(
        tmp_path: Path, tiny_backbone: Path) -> None:
    # A broken backbone file is refused before the study exists (tests/test_bad_input.py);
    # a trial that crashes in training is a trial result.
    data = messy_folder(tmp_path / "data")
    space = write_yaml(tmp_path / "space.yaml", tiny_space(tiny_backbone))
    sweep = write_yaml(tmp_path / "sweep.yaml", tiny_sweep(
        data, space, budget="{trials: 6}", sampler="{kind: random}"))
    done = run_cli("run", str(sweep), env={"TLSWEEP_FAILPOINT": "trial=2,step=0:raise"})
    board = pd.read_parquet(tmp_path / "results" / "tiny" / "leaderboard.parquet")
    assert len(board) == 6
    failed = board[board["state"] == "fail"]
    assert failed["trial"].tolist() == [2]
    assert failed["error"].str.len().min() > 10 and "failpoint" in failed["error"].iloc[0]
    assert (board[board["trial"] != 2]["state"] == "complete").all()
    assert done.returncode == 0


def test_quickstart_shows_real_transfer(tmp_path: Path) -> None:
    done = run_cli("quickstart", cwd=tmp_path, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    board = pd.read_parquet(tmp_path / "results" / "quickstart" / "leaderboard.parquet")
    assert list(board.columns) == LEADERBOARD_COLUMNS
    finished = board[board["state"].isin(["complete", "pruned"])]
    print(board[["trial", "state", "value"]].to_string())
    assert len(finished) >= 8
    assert (board["state"] == "pruned").sum() >= 1
    assert board["value"].max() >= 0.90
    assert "rank" in done.stdout  # the leaderboard is printed at the end
    assert_quiet_terminal(done, tmp_path / "results" / "quickstart", tmp_path / "cache")


# What TensorFlow and absl print at start-up, and Python's warnings: never on the terminal.
TF_NOISE = [re.compile(p, re.MULTILINE | re.IGNORECASE) for p in (
    r"absl::InitializeLog", r"^[IWEF]\d{4} ", r"oneDNN", r"tensorflow", r"cuda", r"WARNING:",
    r"\w+Warning: ", r"Traceback")]


def assert_quiet_terminal(done: subprocess.CompletedProcess[str], study: Path,
                          cache: Path) -> None:
    """No TensorFlow line on stdout or stderr, and they are logged, not discarded: in the study's
    log (trial worker, final stage) and in the quickstart's cache (the pretraining, which this
    test's fresh cache makes the CLI process run)."""
    for stream, text in (("stdout", done.stdout), ("stderr", done.stderr)):
        for pattern in TF_NOISE:
            assert pattern.search(text) is None, f"{stream}: {pattern.pattern!r} in {text}"
    study_log = (study / "tlsweep.log").read_text()
    assert "trial worker, pid " in study_log and "final stage, pid " in study_log
    pretraining_log = (cache / "quickstart" / "tlsweep.log").read_text()
    assert "quickstart pretraining, pid " in pretraining_log
    for log in (study_log, pretraining_log):  # absl's and oneDNN's start-up lines
        assert any(p.search(log) for p in TF_NOISE[:3]), log[:3000]
