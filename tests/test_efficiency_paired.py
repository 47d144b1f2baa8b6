"""benchmarks/efficiency_paired.py: which trial stands for an arm, and the paired gaps. No TF."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

from tests.conftest import REPO

# As in test_efficiency_merge: the benchmarks folder leaves sys.path again.
sys.path.insert(0, str(REPO / "benchmarks"))
try:
    from efficiency_paired import chosen_trial, gaps, studies
finally:
    sys.path.remove(str(REPO / "benchmarks"))


def board(values: list[float | None], epochs: list[int]) -> pd.DataFrame:
    return pd.DataFrame({"trial": range(len(values)), "role": "trial", "value": values,
                         "epochs_run": epochs})


def test_the_chosen_trial_is_the_best_finished_within_the_budget() -> None:
    # Trial 3 is the best, but it ends past the 12-epoch budget; trial 1 failed (no value).
    frame = board([0.60, None, 0.65, 0.70], [6, 2, 4, 6])
    assert int(chosen_trial(frame, budget_epochs=12)["trial"]) == 2
    assert int(chosen_trial(frame, budget_epochs=18)["trial"]) == 3
    # Equal values: the first one found, as the best-so-far trajectory keeps it.
    assert int(chosen_trial(board([0.7, 0.7], [6, 6]), 12)["trial"]) == 0


def test_each_arm_and_seed_comes_from_the_first_run_that_has_it(tmp_path: Path) -> None:
    for run, names in (("a", ["tlsweep-s0", "reference-s0"]),
                       ("b", ["kt-hyperband-s0", "reference-s0"])):
        for name in names:
            (tmp_path / run / "results-1" / name).mkdir(parents=True)
    found = studies([tmp_path / "a", tmp_path / "b"])
    assert set(found) == {("tlsweep", 0), ("reference", 0), ("kt-hyperband", 0)}
    assert found[("reference", 0)].folder.parts[-3] == "a"


def test_paired_gaps_are_far_less_noisy_than_independent_scores() -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 5, 4000)
    reference = np.where(rng.random(4000) < 0.67, labels, (labels + 1) % 5)
    # The challenger agrees with the reference except on 4% of images, where it is right.
    fixed = rng.random(4000) < 0.04
    tlsweep = np.where(fixed, labels, reference)
    table = gaps(labels, {("tlsweep", 0): tlsweep, ("reference", 0): reference})
    row = table.iloc[0]
    assert row["pair"] == "tlsweep − reference"
    expected = 100 * float(np.mean(tlsweep == labels) - np.mean(reference == labels))
    assert abs(row["gap"] - expected) < 1e-9
    assert row["disagree"] == float(np.mean(tlsweep != reference))
    unpaired = 100 * np.sqrt(2 * 0.67 * 0.33 / 4000)  # two independent accuracies' gap
    assert row["se"] < unpaired / 2
    assert row["gap"] / row["se"] > 2  # a 1.3-point gap on consistent images is signal


def test_the_mean_of_seeds_is_reported_and_less_noisy_than_one_seed() -> None:
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 5, 3000)
    predictions = {}
    for seed in range(3):
        reference = np.where(rng.random(3000) < 0.67, labels, (labels + 1) % 5)
        predictions[("reference", seed)] = reference
        # Each seed's challenger differs from its reference on its own 20% of the images.
        flipped = rng.random(3000) < 0.2
        predictions[("tlsweep", seed)] = np.where(flipped, (reference + 2) % 5, reference)
    table = gaps(labels, predictions)
    assert list(table["seed"]) == ["0", "1", "2", "mean"]
    per_seed, mean = table.iloc[:3], table.iloc[3]
    assert abs(mean["gap"] - per_seed["gap"].mean()) < 1e-9
    assert mean["se"] < 0.75 * per_seed["se"].min()
