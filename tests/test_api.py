"""The Python API (``tlsweep.run``, ``load``, ``load_model``) as a notebook uses it: each story
is one test whose steps are the notebook's cells, run in order.

Reading a study must not import TensorFlow: that story runs in a fresh interpreter, where
``sys.modules`` says what the cells imported (this process may have imported TensorFlow for
another test). The stories that train or load a model are marked slow.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import optuna
import pytest
from PIL import Image

import tlsweep
from tests.conftest import tiny_space, tiny_sweep, write_class_images, write_yaml
from tests.inspection.test_diagnostics import stored_study
from tests.store.test_parquet import curve
from tlsweep.delivery import ModelSource, predict_files, study_source
from tlsweep.delivery._modelcard import ModelCard
from tlsweep.errors import ConfigError, DataError, StudyExists
from tlsweep.finalists import (
    BaselineResult,
    DeliveredModel,
    FinalistResult,
    FinalReport,
    results_rows,
)
from tlsweep.finalists._recorded import record_report
from tlsweep.finalists._records import SplitSizes
from tlsweep.measures import pooled_headline
from tlsweep.store import write_results
from tlsweep.store._paths import sqlite_url

HEAVY = ("tensorflow", "keras", "optuna", "pandas")


def fresh_python(code: str, *args: str) -> dict:
    """``code`` in a new interpreter; what it printed last, as JSON."""
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.splitlines()[-1])


def test_import_tlsweep_is_light_and_offers_the_api() -> None:
    found = fresh_python(f"import json, sys, tlsweep\nprint(json.dumps({{'heavy': [m for m in "
                         f"{HEAVY!r} if m in sys.modules], 'all': tlsweep.__all__}}))")
    assert found["heavy"] == []
    assert {"run", "load", "load_model", "Study"} <= set(found["all"])
    assert all(callable(getattr(tlsweep, name)) for name in found["all"])


# ----------------------------------------------------------------------------- without TensorFlow
def finished_study(results: Path) -> FinalReport:
    """A study with two trials and a finalists' report, built without training."""
    directory = stored_study(results, [curve([0.5, 0.7, 0.8, 0.75]), curve([0.4, 0.5, 0.6])])
    study = optuna.load_study(study_name="fake", storage=sqlite_url(directory))
    headline = pooled_headline([([[40, 10], [5, 45]], "out-of-fold predictions on train+val")],
                               "val_accuracy")
    report = FinalReport(
        "val_accuracy", True, "5-fold CV",
        [BaselineResult("MobileNetV2", 1.0, 0.7, "none", [[9, 1], [1, 9]], None, "train", 1.0,
                        "none", cv_confusion=[[45, 5], [5, 45]])],
        [FinalistResult(0, 0.8, 4, cv_confusion=[[40, 10], [5, 45]])], 0, "it led the probe",
        DeliveredModel(0, "MobileNetV2", "refit", None, headline=headline),
        SplitSizes(80, 20, 0))
    record_report(study, report)
    write_results(study, directory, results_rows(study))
    return report


READ_A_STUDY = """
import json, sys
import tlsweep

# cell 1: the study
study = tlsweep.load("fake", results_dir=sys.argv[1])
# cell 2: its leaderboard, and with the finalists' reference rows
board = study.leaderboard()
everything = study.leaderboard(references=True)
# cell 3: what the finalists' stage found, and the one estimate to quote
report = study.report()
headline = study.headline
print(json.dumps({
    "name": study.name, "directory": str(study.directory),
    "trials": board["trial"].tolist(), "values": board["value"].tolist(),
    "roles": sorted(set(everything["role"])), "chosen": report.chosen,
    "choice": report.choice, "headline": headline.as_dict(),
    "imported": [m for m in ("tensorflow", "keras") if m in sys.modules]}))
"""


def test_a_notebook_reads_a_study_without_tensorflow(tmp_path: Path) -> None:
    results = tmp_path / "results"
    recorded = finished_study(results)
    started = time.monotonic()
    found = fresh_python(READ_A_STUDY, str(results))
    assert found["imported"] == [], "reading a study imported TensorFlow"
    assert time.monotonic() - started < 60
    assert found["name"] == "fake" and Path(found["directory"]) == results / "fake"
    assert found["trials"] == [0, 1] and found["values"] == [0.8, 0.6]  # best first
    assert {"trial", "chosen"} <= set(found["roles"])
    assert (found["chosen"], found["choice"]) == (recorded.chosen, recorded.choice)
    assert found["headline"] == recorded.delivered.headline.as_dict()
    # The trials' rows alone are the default: the reference rows are asked for.
    assert "chosen" not in set(tlsweep.load("fake", results_dir=results).leaderboard()["role"])


def test_a_missing_study_is_the_packages_error_not_an_exit(tmp_path: Path) -> None:
    finished_study(tmp_path / "results")
    with pytest.raises(ConfigError, match="no study 'nope'"):
        tlsweep.load("nope", results_dir=tmp_path / "results")
    study = tlsweep.load("fake", results_dir=tmp_path / "results")  # $TLSWEEP_RESULTS: default
    assert tlsweep.load("fake") == study


# ----------------------------------------------------------------------------- predict's own work
def stub_model(tmp_path: Path, size: int = 8) -> tuple[tlsweep.Model, list[int]]:
    """A model whose probabilities are an image's mean red and green share, and the sizes of
    the batches it was given: no TensorFlow."""
    card = ModelCard(class_names=["red", "green"], image_size=size, backbone="x",
                     preprocessing="unit", study="s", trial=0, made_by="kept", params={},
                     metrics={})
    calls: list[int] = []

    def forward(images: np.ndarray) -> np.ndarray:
        calls.append(len(images))
        red, green = (images[..., c].mean(axis=(1, 2)) + 1.0 for c in (0, 1))
        return np.stack([red, green], axis=1) / (red + green)[:, None]

    return tlsweep.Model(ModelSource(tmp_path / "m.keras", "keras", card), forward), calls


def test_predict_batches_arrays_and_decodes_files_as_training_did(tmp_path: Path) -> None:
    model, calls = stub_model(tmp_path)
    images = np.zeros((70, 8, 8, 3), np.uint8)
    images[::2, ..., 0] = 200  # even images red, odd green
    images[1::2, ..., 1] = 200
    found = model.predict(images)
    assert calls == [64, 6]  # a batch at a time, as tlsweep predict feeds the model
    assert found.labels() == ["red", "green"] * 35 and found.files == []
    assert np.allclose(found.probabilities.sum(axis=1), 1.0)
    assert list(found.frame().columns) == ["red", "green"]

    folder = write_class_images(tmp_path / "photos", {"red": 2, "green": 2}, size=20)
    (folder / "red" / "broken.png").write_bytes(b"not a png")
    Image.fromarray(np.full((4, 30, 3), 255, np.uint8)).save(folder / "wide.png")
    found = model.predict([folder])
    assert len(found.skipped) == 1 and found.skipped[0].path.endswith("broken.png")
    assert len(found.files) == len(found.probabilities) == 5
    assert found.frame().index.tolist() == [str(f) for f in found.files]
    labels = dict(zip([f.parent.name for f in found.files], found.labels(), strict=True))
    assert labels["red"] == "red" and labels["green"] == "green"
    assert model.predict(str(folder / "wide.png")).files == [folder / "wide.png"]


def test_predict_refuses_an_array_that_is_no_batch_of_rgb_images(tmp_path: Path) -> None:
    model, _ = stub_model(tmp_path)
    for wrong in (np.zeros((2, 8, 8, 3), np.float32), np.zeros((8, 8, 3), np.uint8),
                  np.zeros((2, 8, 8, 4), np.uint8)):
        with pytest.raises(DataError, match="uint8 array of RGB images"):
            model.predict(wrong)
    with pytest.raises(ConfigError, match="no such file"):
        model.predict([tmp_path / "absent.png"])


# ----------------------------------------------------------------------------- with training
@pytest.mark.slow
def test_a_notebook_runs_a_sweep_then_reads_and_uses_its_model(tmp_path: Path,
                                                               tiny_backbone: Path) -> None:
    # cell 1: a dataset and a sweep file, as `tlsweep init` would write them
    data = write_class_images(tmp_path / "data", {"red": 30, "green": 30}, size=16)
    space = write_yaml(tmp_path / "space.yaml", tiny_space(tiny_backbone))
    sweep = write_yaml(tmp_path / "sweep.yaml", tiny_sweep(
        data, space, budget="{trials: 3}", finalists="{k: 1, folds: 2}"))
    results = tmp_path / "notebook"

    # cell 2: run it, two trials instead of the file's three
    study = tlsweep.run(sweep, results_dir=results, trials=2)
    assert study == tlsweep.load("tiny", results_dir=results)
    with pytest.raises(StudyExists):  # the package's error, where the command would exit 2
        tlsweep.run(sweep, results_dir=results)

    # cell 3: the leaderboard
    board = study.leaderboard()
    assert sorted(board["trial"]) == [0, 1] and (board["state"] == "complete").any()

    # cell 4: the finalists' report and the headline to quote
    report = study.report()
    assert report is not None and study.headline == report.delivered.headline
    headline = study.headline
    assert headline.low <= headline.value <= headline.high
    # No test split here: the out-of-fold predictions, every train+val image once.
    assert report.n.test == 0 and headline.n == report.n.train + report.n.val
    assert "out-of-fold" in headline.source

    # cell 5: the chosen model on a few images, as files and as an array
    model = tlsweep.load_model(study)
    files = sorted((data / "red").iterdir())[:3] + sorted((data / "green").iterdir())[:3]
    found = model.predict(files)
    assert model.class_names == study.optuna_study().user_attrs["class_names"]
    assert found.files == files and np.allclose(found.probabilities.sum(axis=1), 1, atol=1e-5)
    same = predict_files(study_source(study.directory, study.name), files)  # `tlsweep predict`
    assert np.allclose(found.probabilities, same.probabilities, atol=1e-6)
    pixels = np.stack([np.asarray(Image.open(f).convert("RGB")) for f in files])
    assert np.allclose(model.predict(pixels).probabilities, found.probabilities, atol=1e-5)

    # cell 6: export it, and use the export as a model too
    with pytest.raises(ConfigError, match="unknown format"):
        study.export(tmp_path / "export", fmt="pt")
    target = study.export(tmp_path / "export")
    assert target == tmp_path / "export" / "model.keras" and target.is_file()
    exported = tlsweep.load_model(tmp_path / "export")
    assert exported.class_names == model.class_names
    assert np.allclose(exported.predict(files).probabilities, found.probabilities, atol=1e-4)
