"""benchmarks/efficiency_merge.py: runs' arms joined, the reference checked, not doubled."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import REPO

# The scripts import each other by module name; the folder leaves sys.path again, so that its
# module names (memory, threads, storage) cannot shadow others for the rest of the suite.
sys.path.insert(0, str(REPO / "benchmarks"))
try:
    from efficiency_merge import merge_runs
finally:
    sys.path.remove(str(REPO / "benchmarks"))


def fake_run(folder: Path, bests: dict[str, float]) -> Path:
    """A finished run's files: each 'arm-sSEED' with a two-trial trajectory ending at its best."""
    folder.mkdir()
    trajectories = {key: {"epochs": [6, 12], "wall_s": [10.0, 20.0], "best": [0.5, best]}
                    for key, best in bests.items()}
    (folder / "trajectories.json").write_text(json.dumps(trajectories))
    pd.DataFrame([{"arm": key.rsplit("-s", 1)[0], "seed": int(key.rsplit("-s", 1)[1]),
                   "wall_s": 20.0} for key in bests]).to_csv(folder / "summary.csv")
    return folder


def test_arms_from_two_runs_join_and_the_second_reference_is_checked(tmp_path: Path) -> None:
    first = fake_run(tmp_path / "a", {"tlsweep-s0": 0.66, "reference-s0": 0.67,
                                      "tlsweep-s1": 0.68, "reference-s1": 0.69})
    second = fake_run(tmp_path / "b", {"kt-hyperband-s1": 0.70, "reference-s1": 0.695})
    paths, walls, notes = merge_runs([first, second])
    assert set(paths) == {("tlsweep", 0), ("reference", 0), ("tlsweep", 1), ("reference", 1),
                          ("kt-hyperband", 1)}
    assert paths[("reference", 1)]["best"].iloc[-1] == 0.69  # the first run's, kept
    assert walls[("kt-hyperband", 1)] == 20.0
    assert any("reference s1" in note and "NOT reproduced" in note for note in notes)


def test_an_arm_in_two_runs_or_a_seed_without_reference_stops(tmp_path: Path) -> None:
    first = fake_run(tmp_path / "a", {"tlsweep-s0": 0.66, "reference-s0": 0.67})
    again = fake_run(tmp_path / "b", {"tlsweep-s0": 0.60, "reference-s0": 0.67})
    with pytest.raises(SystemExit, match="tlsweep seed 0 is in two"):
        merge_runs([first, again])
    alone = fake_run(tmp_path / "c", {"kt-hyperband-s2": 0.7})
    with pytest.raises(SystemExit, match=r"no reference run for seeds \[2\]"):
        merge_runs([first, alone])
