"""The search-efficiency benchmark's --smoke run, so the script cannot rot."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import REPO, needs_shared

pytestmark = pytest.mark.slow


def test_search_efficiency_smoke_runs_every_arm(tmp_path: Path) -> None:
    shared = needs_shared()
    done = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "search_efficiency.py"), "--smoke",
         "--out", str(tmp_path)], capture_output=True, text=True, timeout=900,
        env={**os.environ, "TLSWEEP_SHARED": str(shared)})
    assert done.returncode == 0, done.stderr[-3000:]
    summary = pd.read_csv(tmp_path / "summary.csv")
    assert sorted(summary["arm"]) == sorted(["tlsweep", "kt-hyperband", "kt-random",
                                             "reference"])
    # Every arm spent the epoch budget of 2 full trials of 1 + 1 epochs, or fewer where a
    # trial's depth unfroze no block (no phase 2), and none ran past one trial over it.
    assert (summary["trials"] >= 2).all() and (summary["epochs"] <= 6).all()
    assert (tmp_path / "search_efficiency.png").stat().st_size > 10_000
    assert "| tlsweep |" in (tmp_path / "search_efficiency.md").read_text()


def test_the_suite_smoke_runs_the_newcomers_path_end_to_end(tmp_path: Path) -> None:
    """init, run, export, scored by a process without tlsweep, beside the user's probe: one
    row, its table, and a resumed run that finds the row and redoes nothing."""
    shared = needs_shared()
    command = [sys.executable, str(REPO / "benchmarks" / "suite.py"), "--smoke", "--seeds", "0",
               "--out", str(tmp_path)]
    env = {**os.environ, "TLSWEEP_SHARED": str(shared)}
    done = subprocess.run(command, capture_output=True, text=True, timeout=900, env=env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    rows = pd.read_csv(tmp_path / "suite.csv")
    assert len(rows) == 1 and rows["arm"].iloc[0] == "tlsweep"
    row = rows.iloc[0]
    # 20 held-out images a class, never given to the tool; the colour classes are easy.
    assert (row["heldout"], row["pool"]) == (60, 60)
    assert row["delivered_accuracy"] > 0.9 and row["probe_accuracy"] > 0.9
    # 60 images: init writes no test split, so the headline is the out-of-fold predictions.
    assert row["low"] <= row["reported"] <= row["high"] and "out-of-fold" in row["method"]
    assert "| smoke | 0 | tlsweep |" in (tmp_path / "suite.md").read_text()
    again = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert again.returncode == 0 and "running" not in again.stdout
