"""benchmarks/probe_paired.py: a run's recorded row, and the mean gap's noise bounds. No TF."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

# As in test_efficiency_merge: the benchmarks folder leaves sys.path again.
sys.path.insert(0, str(REPO / "benchmarks"))
try:
    from probe_paired import means, once_per_study, recorded
finally:
    sys.path.remove(str(REPO / "benchmarks"))


def test_a_run_finds_its_own_row_in_results_json(tmp_path: Path) -> None:
    rows = [{"set": "flowers-small", "arm": "before", "seed": 1, "test": 0.61},
            {"set": "flowers-small", "arm": "anchor", "seed": 1, "test": 0.66},
            {"set": "hymenoptera-split", "arm": "anchor", "seed": 1, "test": 0.95}]
    (tmp_path / "results.json").write_text(json.dumps(rows))
    assert recorded(tmp_path / "flowers-small-anchor-seed1")["test"] == 0.66
    assert recorded(tmp_path / "hymenoptera-split-anchor-seed1-224px")["test"] == 0.95
    assert recorded(tmp_path / "flowers-small-anchor-seed2") == {}


def test_the_mean_gap_is_bounded_by_independent_and_correlated_seeds() -> None:
    rows = [{"run": f"flowers-small-anchor-seed{s}", "gap": gap, "se": 0.01}
            for s, gap in enumerate([0.02, 0.03, 0.04])]
    line = means(rows)[0]
    # Mean gap 3 points; SE between 1/sqrt(3) points (independent) and 1 point (correlated).
    assert "+3.00 points on the mean of 3 seeds" in line
    assert f"{100 * 0.01 / 3 ** 0.5:.2f}–1.00" in line
    assert "+3.0 to +5.2 SE" in line
    assert "smallest per-seed gap +2.00" in line


@pytest.mark.parametrize("group", ["flowers-small-before", "flowers-small-anchor"])
def test_each_set_and_arm_gets_its_own_line(group: str) -> None:
    rows = [{"run": f"{g}-seed0", "gap": 0.01, "se": 0.01}
            for g in ("flowers-small-before", "flowers-small-anchor")]
    assert sum(line.startswith(f"- {group}:") for line in means(rows)) == 1


def test_a_study_given_from_two_runs_counts_once(capsys: pytest.CaptureFixture[str]) -> None:
    first, again = Path("a/hym-anchor-seed0"), Path("b/hym-anchor-seed0")
    other = Path("b/hym-anchor-seed1")
    assert once_per_study([first, again, other]) == [first, other]
    assert "counted once" in capsys.readouterr().out
