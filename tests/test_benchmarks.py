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
