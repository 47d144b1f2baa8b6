"""benchmarks/probe_paired.py: a run's recorded row, and the mean gap's noise bounds. No TF."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, tiny_space, tiny_sweep, write_yaml

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


def test_a_study_given_from_two_runs_counts_once(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    space = write_yaml(tmp_path / "space.yaml", tiny_space(None))
    folders = {}
    for folder, study in (("a/hym-anchor-seed0", "hym-anchor-seed0"),
                          ("b/hym-anchor-seed0-224px", "hym-anchor-seed0"),  # the same study
                          ("b/hym-anchor-seed1-224px", "hym-anchor-seed1")):
        folders[folder] = tmp_path / folder
        write_yaml(folders[folder] / "sweep.yaml", tiny_sweep(tmp_path, space, study=study))
    kept = once_per_study(list(folders.values()))
    assert kept == [folders["a/hym-anchor-seed0"], folders["b/hym-anchor-seed1-224px"]]
    assert "study hym-anchor-seed0 already given" in capsys.readouterr().out
