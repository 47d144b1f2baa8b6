from __future__ import annotations

import re
from pathlib import Path

import optuna
import pytest

from tests.conftest import run_cli, tiny_space, tiny_sweep, write_class_images, write_yaml
from tests.store.test_parquet import curve, params
from tlsweep.finalists import (
    BaselineResult,
    DeliveredModel,
    FinalistResult,
    FinalReport,
    results_rows,
)
from tlsweep.finalists._recorded import record_report
from tlsweep.finalists._records import SplitSizes
from tlsweep.store import write_results
from tlsweep.store._paths import sqlite_url


def stored_study(results: Path, curves: list[list[dict]]) -> Path:
    directory = results / "fake"
    directory.mkdir(parents=True)
    study = optuna.create_study(study_name="fake", storage=sqlite_url(directory),
                                direction="maximize")
    study.set_user_attr("objective", "val_accuracy")
    study.set_user_attr("class_names", ["a", "b"])
    for points in curves:
        study.add_trial(optuna.trial.create_trial(
            state=optuna.trial.TrialState.COMPLETE,
            value=max(p["val_accuracy"] for p in points), params={}, distributions={},
            user_attrs={"params": params(0.3), "curve": points}))
    write_results(study, directory)
    return directory


def test_diagnose_reports_overfitting_with_its_numbers(tmp_path: Path) -> None:
    overfit = curve([0.5, 0.7, 0.72, 0.71])
    for record in overfit:
        record["accuracy"] = 0.99
    stored_study(tmp_path / "results", [overfit, curve([0.4, 0.5, 0.6, 0.55])])
    done = run_cli("diagnose", "fake")
    assert done.returncode == 0, done.stderr
    assert "Overfitting: best trial 0: train accuracy 0.990, validation 0.720" in done.stdout
    assert "gap +0.270; threshold 0.20" in done.stdout


def test_diagnose_says_no_overfitting_when_the_gap_is_small(tmp_path: Path) -> None:
    stored_study(tmp_path / "results", [curve([0.5, 0.7, 0.72, 0.71])])
    done = run_cli("diagnose", "fake")
    assert "No large train-validation gap" in done.stdout and "gap +0.050" in done.stdout


@pytest.mark.slow
def test_diagnose_reports_class_imbalance_and_worst_recall(tmp_path: Path,
                                                           tiny_backbone: Path) -> None:
    data = write_class_images(tmp_path / "data", {"common": 100, "rare": 10})
    space = write_yaml(tmp_path / "space.yaml", tiny_space(tiny_backbone))
    sweep = write_yaml(tmp_path / "sweep.yaml", tiny_sweep(data, space, budget="{trials: 2}"))
    assert run_cli("run", str(sweep)).returncode == 0
    done = run_cli("diagnose", "tiny")
    assert done.returncode == 0, done.stderr
    text = " ".join(done.stdout.split())
    assert "Class imbalance: class 'common' has 70 training images, 'rare' 7 (ratio 10.0" in text
    worst = r"Worst class recall at the best trial \((\d+)\): (\w+) ([0-9]+\.[0-9]+)"
    match = re.search(worst, text)
    assert match, text
    assert 0.0 <= float(match.group(3)) <= 1.0
    assert "Mean value by class weighting" in text or "not varied" in text


def test_without_a_test_set_the_probe_is_compared_on_the_finalists_folds(tmp_path: Path) -> None:
    """The chosen model's estimate is cross-validated; so is the probe, on the same folds:
    diagnose compares those two, not the chosen CV score against the probe's validation."""
    directory = stored_study(tmp_path / "results", [curve([0.5, 0.7, 0.8, 0.75])])
    study = optuna.load_study(study_name="fake", storage=sqlite_url(directory))
    record_report(study, FinalReport(
        "val_accuracy", True, "5-fold CV",
        [BaselineResult("MobileNetV2", 1.0, 0.7, "none", [[9, 1], [1, 9]], None, "train", 1.0,
                        "none", cv_confusion=[[45, 5], [5, 45]])],
        [FinalistResult(0, 0.8, 4, cv_confusion=[[40, 10], [10, 40]])], 0, None,
        DeliveredModel(0, "MobileNetV2", "refit", None), SplitSizes(80, 20, 0)))
    write_results(study, directory, results_rows(study))
    done = run_cli("diagnose", "fake")
    assert done.returncode == 0, done.stderr
    text = " ".join(done.stdout.split())
    assert "On the finalists' cross-validation folds, the chosen model 0.800" in text, text
    assert "linear probe on MobileNetV2's frozen features 0.900" in text and "-0.100" in text
