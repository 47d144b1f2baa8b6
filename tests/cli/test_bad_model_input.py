"""Bad input to the commands that use a model (export, predict, evaluate) and to init's weights,
table-driven, through the real command line (issue 38).

Each case asserts: exit 2, one short message that names the file, key or path, no traceback,
nothing of the user's changed and nothing created. Every case runs twice: from the folder that
holds the files and from another working folder, the results found through TLSWEEP_RESULTS. The
cases without TensorFlow run with a ``tensorflow`` and a ``keras`` on PYTHONPATH that end the
process with exit 99 when imported: they prove each check happens before TensorFlow is imported.
Cases that need a real model are marked slow and use a tiny one.
"""

from __future__ import annotations

import functools
import io
import json
import os
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import optuna
import pytest

from tests.cli.test_bad_input import Workspace, make_workspace, snapshot
from tests.conftest import run_cli
from tests.store.test_parquet import make_study
from tlsweep.delivery._modelcard import ModelCard
from tlsweep.finalists import DeliveredModel, FinalReport, results_rows
from tlsweep.finalists._recorded import record_report
from tlsweep.finalists._records import SplitSizes
from tlsweep.store import write_results

TF_STUB = "import sys\nsys.stderr.write('{name} imported\\n')\nsys.exit(99)\n"


# ----------------------------------------------------------------------------- model files
def fake_keras_archive(config: bytes = b"{}") -> bytes:
    """A zip that passes the archive check (config.json inside) without TensorFlow; only a
    real load would find it is no model, and the no-TF cases never get that far."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("config.json", config)
        archive.writestr("metadata.json", b"{}")
        archive.writestr("model.weights.h5", b"")
    return buffer.getvalue()


@functools.cache
def tiny_raw_model() -> bytes:
    """A real exported-style model: raw uint8 images of any size in, two probabilities out."""
    import tempfile

    import keras

    keras.utils.set_random_seed(0)
    raw = keras.Input((None, None, 3), dtype="uint8", name="image")
    x = keras.layers.GlobalAveragePooling2D()(keras.ops.cast(raw, "float32") / 255.0)
    model = keras.Model(raw, keras.layers.Dense(2, activation="softmax")(x))
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.keras"
        model.save(path)
        return path.read_bytes()


def damaged_weights(archive: bytes) -> bytes:
    """The same archive, whole as a zip, with its weights replaced by garbage."""
    source, buffer = zipfile.ZipFile(io.BytesIO(archive)), io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as target:
        for item in source.infolist():
            data = source.read(item)
            target.writestr(item, b"garbage" * 64 if item.filename.endswith(".h5") else data)
    return buffer.getvalue()


def card_for(study: str = "made", trial: int | None = 1, classes: tuple[str, ...] = ("a", "b"),
             **files: str) -> ModelCard:
    return ModelCard(class_names=list(classes), image_size=32, backbone="MobileNetV2",
                     preprocessing="MobileNetV2", study=study, trial=trial, made_by="kept",
                     params={}, metrics={}, format="keras",
                     files=files or {"keras": "model.keras"}, made_from="0" * 64)


def exported(ws: Workspace, name: str = "exported", model: bytes | None = None,
             card: ModelCard | None = None) -> Path:
    """An export folder: a card and a model file (fake unless ``model`` is given)."""
    folder = ws.root / name
    folder.mkdir()
    card = card or card_for()
    card.write(folder)
    for fmt, file in card.files.items():
        if fmt == "savedmodel":
            (folder / file).mkdir()
        else:
            (folder / file).write_bytes(model if model is not None else fake_keras_archive())
    return folder


def delivered_study(ws: Workspace, name: str = "made", model: bytes | None = None) -> Path:
    """A study whose finalists' stage delivered trial 1's kept model, made without TensorFlow;
    its model file is a fake archive unless ``model`` is given."""
    directory = ws.results / name
    directory.mkdir(parents=True)
    sweep = ws.sweep(f"{name}.yaml", study=name)
    storage = optuna.storages.RDBStorage(f"sqlite:///{directory / 'study.db'}")
    study = optuna.create_study(study_name=name, storage=storage, direction="maximize")
    for key, value in make_study().user_attrs.items():
        study.set_user_attr(key, value)
    for trial in make_study().trials:
        study.add_trial(trial)
    model_path = directory / "final" / "model.keras"
    for key, value in {
            "sweep_path": str(sweep), "sweep_text": sweep.read_text(),
            "space_text": ws.space.read_text(), "class_names": ["a", "b"]}.items():
        study.set_user_attr(key, value)
    record_report(study, FinalReport(
        "val_accuracy", False, None, [], [], 1, None,
        DeliveredModel(1, "MobileNetV2", "kept", str(model_path)), SplitSizes(0, 0, 0)))
    write_results(study, directory, results_rows(study))
    storage.engine.dispose()
    model_path.parent.mkdir()
    model_path.write_bytes(model if model is not None else fake_keras_archive())
    return directory


def hdf5_weights(path: Path, groups: bool = True) -> Path:
    with h5py.File(path, "w") as weights:
        if groups:
            weights.create_group("layers").create_dataset("kernel", data=np.ones((64, 64)))
    return path


# ----------------------------------------------------------------------------- the cases
@dataclass(frozen=True)
class Case:
    name: str
    prepare: Callable[[Workspace], list[str]]  # sets the workspace up; the CLI arguments
    expected: tuple[str, ...]  # what the message must hold (paths are made absolute first)
    tensorflow: bool = False  # needs a real model: slow, and TensorFlow may be imported


def _file(ws: Workspace, name: str, data: bytes = b"a file, not a folder") -> Path:
    path = ws.root / name
    path.write_bytes(data)
    return path


def _folder(ws: Workspace, name: str, *files: str) -> Path:
    folder = ws.root / name
    folder.mkdir()
    for file in files:
        (folder / file).write_text("the user's")
    return folder


def _predict_into_folder(ws: Workspace) -> list[str]:
    return ["predict", str(exported(ws)), str(ws.data), "--format", "csv", "--out",
            str(_folder(ws, "predictions"))]


def _predict_study_into_folder(ws: Workspace) -> list[str]:
    delivered_study(ws)
    return ["predict", "made", str(ws.data), "--format", "json", "--out",
            str(_folder(ws, "out", "notes.txt"))]


def _under_a_file(ws: Workspace, command: str) -> list[str]:
    out = _file(ws, "plain") / "x" / "result.csv"
    if command == "export":
        delivered_study(ws)
        return ["export", "made", "--out", str(out.parent)]
    if command == "evaluate":
        return ["evaluate", str(exported(ws)), str(ws.data), "--out", str(out.parent)]
    return ["predict", str(exported(ws)), str(ws.data), "--format", "csv", "--out", str(out)]


def _evaluate_over_an_evaluation(ws: Workspace) -> list[str]:
    return ["evaluate", str(exported(ws)), str(ws.data), "--out",
            str(_folder(ws, "earlier", "metrics.json"))]


def _evaluate_into_file(ws: Workspace) -> list[str]:
    return ["evaluate", str(exported(ws)), str(ws.data), "--out", str(_file(ws, "report.txt"))]


def _damaged_export(ws: Workspace, data: bytes, fmt: str = "keras") -> list[str]:
    files = {"keras": "model.keras", "tflite": "model.tflite", "savedmodel": "savedmodel"}
    folder = exported(ws, card=card_for(**{fmt: files[fmt]}), model=data)
    return ["predict", str(folder), str(ws.data)]


def _damaged_study(ws: Workspace, command: str, data: bytes) -> list[str]:
    delivered_study(ws, model=data)
    if command == "export":
        return ["export", "made", "--out", str(ws.root / "new-export")]
    if command == "evaluate":
        return ["evaluate", "made", str(ws.data)]
    return ["predict", "made", str(ws.data)]


def _bad_card(ws: Workspace, text: str) -> list[str]:
    folder = exported(ws)
    (folder / "card.json").write_text(text)
    return ["predict", str(folder), str(ws.data)]


def _card_with(ws: Workspace, without: str | None = None, **changes: object) -> list[str]:
    folder = exported(ws)
    data = {**json.loads((folder / "card.json").read_text()), **changes}
    data.pop(without or "", None)
    (folder / "card.json").write_text(json.dumps(data))
    return ["predict", str(folder), str(ws.data)]


def _export_into(ws: Workspace, prepare_out: Callable[[Workspace], Path],
                 *options: str) -> list[str]:
    delivered_study(ws)
    return ["export", "made", "--out", str(prepare_out(ws)), *options]


def _foreign_card(ws: Workspace) -> Path:
    return _folder(ws, "theirs", "card.json", "model.keras")


def _another_models_export(ws: Workspace) -> Path:
    return exported(ws, "export-a", card=card_for(trial=0))


def _same_model_with_extra_file(ws: Workspace) -> Path:
    folder = exported(ws, "export-b", card=card_for(trial=1))
    (folder / "notes.txt").write_text("the user's notes")
    return folder


def _init_weights(ws: Workspace, weights: Path) -> list[str]:
    return ["init", str(ws.data), "--weights", f"MobileNetV2={weights}", "--out",
            str(ws.root / "new-sweep.yaml")]


def _truncated_hdf5(ws: Workspace) -> Path:
    path = hdf5_weights(ws.root / "cut.weights.h5")
    path.write_bytes(path.read_bytes()[:4096])
    return path


def _mismatched_card(ws: Workspace, command: str) -> list[str]:
    folder = exported(ws, card=card_for(classes=("a", "b", "c")), model=tiny_raw_model())
    (ws.data / "c").mkdir()  # evaluate's class folders must be the card's classes
    if command == "evaluate":
        return ["evaluate", str(folder), str(ws.data)]
    return ["predict", str(folder), str(ws.data), "--top", "3"]


FOREIGN_CARD = "card.json that is not a tlsweep model card"
CASES = [
    # ---------------------------------------------------------------- outputs, before the model
    Case("predict --out an existing folder", _predict_into_folder,
         ("ROOT/predictions", "is a folder", "Give a file name")),
    Case("predict STUDY --out a folder of the user's", _predict_study_into_folder,
         ("ROOT/out", "is a folder")),
    Case("predict --out under a file", lambda ws: _under_a_file(ws, "predict"),
         ("ROOT/plain", "is a file")),
    Case("predict parquet without --out", lambda ws: [
        "predict", str(exported(ws)), str(ws.data), "--format", "parquet"],
         ("--format parquet needs --out",)),
    Case("evaluate --out an existing file", _evaluate_into_file,
         ("ROOT/report.txt", "is a file", "Give a new folder")),
    Case("evaluate --out under a file", lambda ws: _under_a_file(ws, "evaluate"),
         ("ROOT/plain", "is a file")),
    Case("evaluate --out a folder holding an earlier evaluation", _evaluate_over_an_evaluation,
         ("ROOT/earlier", "already holds an evaluation (metrics.json)")),
    # ---------------------------------------------------------------- export's folder
    Case("export --out is a file", lambda ws: _export_into(ws, lambda w: _file(w, "f")),
         ("ROOT/f", "is a file")),
    Case("export --out under a file", lambda ws: _under_a_file(ws, "export"),
         ("ROOT/plain", "is a file")),
    Case("export into a folder with a foreign card.json", lambda ws: _export_into(
        ws, _foreign_card), ("ROOT/theirs", FOREIGN_CARD)),
    Case("export --replace over a foreign card.json", lambda ws: _export_into(
        ws, _foreign_card, "--replace"), ("ROOT/theirs", FOREIGN_CARD)),
    Case("export into a folder of other files", lambda ws: _export_into(
        ws, lambda w: _folder(w, "photos", "holiday.jpg")), ("ROOT/photos", "no card.json")),
    Case("export --replace over other files", lambda ws: _export_into(
        ws, lambda w: _folder(w, "photos", "holiday.jpg"), "--replace"),
         ("ROOT/photos", "no card.json")),
    Case("export trial 1 into trial 0's export", lambda ws: _export_into(
        ws, _another_models_export), ("ROOT/export-a", "another model", "trial 0", "trial 1",
                                      "--replace")),
    Case("export beside files the card does not name", lambda ws: _export_into(
        ws, _same_model_with_extra_file, "--replace"), ("ROOT/export-b", "notes.txt")),
    # ---------------------------------------------------------------- model files
    Case("truncated model.keras, predict", lambda ws: _damaged_export(
        ws, fake_keras_archive()[:40]), ("ROOT/exported/model.keras", "not a Keras model archive",
                                         "--replace")),
    Case("text as model.keras, predict", lambda ws: _damaged_export(ws, b"just text"),
         ("ROOT/exported/model.keras", "not a Keras model archive")),
    Case("zip without config.json", lambda ws: _damaged_export(
        ws, _zip_of(("weights.h5", b""))), ("ROOT/exported/model.keras", "without config.json")),
    Case("config.json not JSON", lambda ws: _damaged_export(ws, fake_keras_archive(b"{,")),
         ("ROOT/exported/model.keras", "not a readable Keras model archive")),
    Case("text as model.tflite", lambda ws: _damaged_export(ws, b"12345678", "tflite"),
         ("ROOT/exported/model.tflite", "TFL3")),
    Case("savedmodel without its graph", lambda ws: _damaged_export(ws, b"", "savedmodel"),
         ("ROOT/exported/savedmodel", "saved_model.pb")),
    Case("truncated delivered model, export", lambda ws: _damaged_study(
        ws, "export", fake_keras_archive()[:50]),
         ("ROOT/results/made/final/model.keras", "not a Keras model archive", "--trial N")),
    Case("truncated delivered model, predict", lambda ws: _damaged_study(
        ws, "predict", b"PK\x03\x04 cut"), ("ROOT/results/made/final/model.keras", "--trial N")),
    Case("truncated delivered model, evaluate", lambda ws: _damaged_study(
        ws, "evaluate", b""), ("ROOT/results/made/final/model.keras",)),
    # ---------------------------------------------------------------- card.json
    Case("card.json not JSON", lambda ws: _bad_card(ws, "{not json"),
         ("ROOT/exported/card.json", "cannot be read as JSON")),
    Case("card.json a list", lambda ws: _bad_card(ws, "[1, 2]"),
         ("ROOT/exported/card.json", "expected a JSON object")),
    Case("card.json without class_names", lambda ws: _card_with(ws, without="class_names"),
         ("ROOT/exported/card.json", "missing key(s) class_names")),
    Case("card.json with an empty class list", lambda ws: _card_with(ws, class_names=[]),
         ("ROOT/exported/card.json", "class_names")),
    Case("card.json naming a class twice", lambda ws: _card_with(ws, class_names=["a", "a"]),
         ("ROOT/exported/card.json", "names a class twice")),
    Case("card.json image_size text", lambda ws: _card_with(ws, image_size="32"),
         ("ROOT/exported/card.json", "image_size")),
    Case("card.json files outside its folder", lambda ws: _card_with(
        ws, files={"keras": "../model.keras"}), ("ROOT/exported/card.json", "key 'files'")),
    # ---------------------------------------------------------------- init --weights
    Case("init --weights text", lambda ws: _init_weights(ws, _file(ws, "t.weights.h5", b"x")),
         ("--weights MobileNetV2=ROOT/t.weights.h5", "not an HDF5 file")),
    Case("init --weights truncated", lambda ws: _init_weights(ws, _truncated_hdf5(ws)),
         ("--weights MobileNetV2=ROOT/cut.weights.h5", "cannot be read as HDF5", "truncated")),
    Case("init --weights empty HDF5", lambda ws: _init_weights(
        ws, hdf5_weights(ws.root / "empty.weights.h5", groups=False)),
         ("ROOT/empty.weights.h5", "holds no weights")),
    # ---------------------------------------------------------------- a real model
    Case("card lists more classes than the model, predict --top 3", lambda ws: _mismatched_card(
        ws, "predict"), ("ROOT/exported/card.json", "lists 3 classes", "2 outputs"),
         tensorflow=True),
    Case("card lists more classes than the model, evaluate", lambda ws: _mismatched_card(
        ws, "evaluate"), ("ROOT/exported/card.json", "lists 3 classes", "2 outputs"),
         tensorflow=True),
    Case("damaged weights in a whole archive", lambda ws: _damaged_export(
        ws, damaged_weights(tiny_raw_model())),
         ("ROOT/exported/model.keras", "cannot be loaded as a keras model", "--replace"),
         tensorflow=True),
]


def _zip_of(*members: tuple[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members:
            archive.writestr(name, data)
    return buffer.getvalue()


def _params() -> list:
    return [pytest.param(case, where, id=f"{case.name} [{where}]",
                         marks=[pytest.mark.slow] if case.tensorflow else [])
            for case in CASES for where in ("here", "elsewhere")]


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    return make_workspace(tmp_path)


@pytest.fixture
def no_tensorflow(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder for PYTHONPATH whose tensorflow and keras end the process when imported."""
    folder = tmp_path_factory.mktemp("no-tensorflow")
    for name in ("tensorflow", "keras"):
        (folder / name).mkdir()
        (folder / name / "__init__.py").write_text(TF_STUB.format(name=name))
    return folder


def tree(root: Path) -> tuple[set[str], dict[str, str]]:
    """Every path under ``root`` (folders too) and every file's hash."""
    return {str(p.relative_to(root)) for p in root.rglob("*")}, snapshot(root)


@pytest.mark.parametrize("case,where", _params())
def test_bad_model_input_is_one_clear_error_and_touches_nothing(
        ws: Workspace, tmp_path_factory: pytest.TempPathFactory, no_tensorflow: Path,
        case: Case, where: str) -> None:
    elsewhere = ws.root / "elsewhere"
    elsewhere.mkdir()
    args = case.prepare(ws)
    before = tree(ws.root)
    # tlsweep's own log and Keras's settings go outside the tree compared.
    outside = tmp_path_factory.mktemp("outside")
    env = {"TLSWEEP_RESULTS": str(ws.results), "TLSWEEP_CACHE": str(outside / "cache"),
           "KERAS_HOME": str(outside / "keras")}
    if not case.tensorflow:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(no_tensorflow),
                                                          os.environ.get("PYTHONPATH")]))
    done = run_cli(*args, cwd=ws.root if where == "here" else elsewhere, env=env, timeout=300)
    message = " ".join(done.stderr.split())
    assert done.returncode == 2, (done.returncode, done.stdout[-500:], done.stderr[-2000:])
    assert "Traceback" not in done.stderr + done.stdout
    for expected in case.expected:
        assert expected.replace("ROOT", str(ws.root)) in message, (expected, message)
    assert len(done.stderr.strip().splitlines()) <= 8, done.stderr  # one message, wrapped
    assert tree(ws.root) == before, "something of the user's changed, or was created"
