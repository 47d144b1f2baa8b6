"""Where export writes (issue 38): one folder holds one model's export, never mixed; and a study
is used from any working folder. The folder rule's moves are tested without TensorFlow; the
end-to-end cases run a tiny study from one folder and use it from another (marked slow).

The refusals themselves (exit 2, nothing touched) are cases of tests/cli/test_bad_model_input.py.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import replace
from pathlib import Path

import optuna
import pandas as pd
import pytest

from tests.cli.test_bad_input import snapshot
from tests.conftest import run_cli, tiny_space, tiny_sweep, write_class_images, write_yaml
from tlsweep.delivery._export_folder import Action, plan_folder, staged
from tlsweep.delivery._modelcard import ModelCard
from tlsweep.errors import ConfigError


def card(trial: int | None = 1, made_from: str | None = "f" * 64, **files: str) -> ModelCard:
    return ModelCard(class_names=["a", "b"], image_size=16, backbone="Tiny",
                     preprocessing="unit", study="tiny", trial=trial, made_by="kept", params={},
                     metrics={}, format="keras", files=files or {"keras": "model.keras"},
                     made_from=made_from)


def export_folder(path: Path, written: ModelCard) -> Path:
    path.mkdir(parents=True)
    written.write(path)
    for name in written.files.values():
        (path / name).write_text(f"model of trial {written.trial}")
    return path


def build(folder: Path, written: ModelCard, fmt: str = "keras") -> None:
    """What export writes into its staging folder: the format's file and the card."""
    (folder / written.files[fmt]).write_text(f"model of trial {written.trial}, new")
    written.write(folder)


def siblings(path: Path) -> list[str]:
    return sorted(p.name for p in path.parent.iterdir())


# ----------------------------------------------------------------------------- the rule's moves
def test_a_new_folder_is_built_beside_and_renamed_in(tmp_path: Path) -> None:
    out = tmp_path / "a" / "b" / "model"
    plan = plan_folder(out, card(), "keras", replace=False)
    assert plan.action is Action.CREATE and not out.parent.exists()  # nothing made yet
    with staged(plan) as staging:
        assert staging.parent == out.parent and not out.exists()
        build(staging, card())
    assert sorted(p.name for p in out.iterdir()) == ["card.json", "model.keras"]
    assert siblings(out) == ["model"]


def test_the_export_folder_is_shared_like_any_folder(tmp_path: Path) -> None:
    """Made with the umask, as mkdir makes a folder: a staging folder from tempfile.mkdtemp
    (0700) once made every export folder unreadable to the owner's colleagues."""
    out = tmp_path / "model"
    previous = os.umask(0o022)
    try:
        with staged(plan_folder(out, card(), "keras", replace=False)) as staging:
            build(staging, card())
    finally:
        os.umask(previous)
    assert out.stat().st_mode & 0o777 == 0o755
    assert (out / "card.json").stat().st_mode & 0o777 == 0o644


def test_a_failed_export_creates_nothing(tmp_path: Path) -> None:
    out = tmp_path / "a" / "b" / "model"
    plan = plan_folder(out, card(), "keras", replace=False)
    with pytest.raises(RuntimeError), staged(plan) as staging:
        build(staging, card())
        raise RuntimeError("the conversion failed")
    assert list(tmp_path.iterdir()) == []


def test_the_same_models_export_gains_a_format_and_keeps_the_others(tmp_path: Path) -> None:
    before = card(keras="model.keras", tflite="model.tflite")
    out = export_folder(tmp_path / "model", before)
    plan = plan_folder(out, card(), "keras", replace=False)
    assert plan.action is Action.ADD and plan.kept_files == {"tflite": "model.tflite"}
    after = replace(card(), files={**plan.kept_files, "keras": "model.keras"})
    with staged(plan) as staging:
        build(staging, after)
    assert (out / "model.keras").read_text() == "model of trial 1, new"
    assert (out / "model.tflite").read_text() == "model of trial 1"  # untouched
    assert ModelCard.read(out / "card.json").files == after.files
    assert siblings(out) == ["model"]


def test_a_savedmodel_folder_is_replaced_whole(tmp_path: Path) -> None:
    out = export_folder(tmp_path / "model", card(savedmodel="savedmodel"))
    (out / "savedmodel").unlink()
    (out / "savedmodel").mkdir()
    (out / "savedmodel" / "old-variable").write_text("old")
    plan = plan_folder(out, card(), "savedmodel", replace=False)
    with staged(plan) as staging:
        (staging / "savedmodel").mkdir()
        (staging / "savedmodel" / "saved_model.pb").write_text("new")
        card(savedmodel="savedmodel").write(staging)
    assert sorted(p.name for p in (out / "savedmodel").iterdir()) == ["saved_model.pb"]


def test_another_models_export_is_refused_then_replaced_whole(tmp_path: Path) -> None:
    out = export_folder(tmp_path / "model", card(trial=0, keras="model.keras",
                                                 tflite="model.tflite"))
    with pytest.raises(ConfigError, match="another model"):
        plan_folder(out, card(trial=1), "keras", replace=False)
    plan = plan_folder(out, card(trial=1), "keras", replace=True)
    assert plan.action is Action.REPLACE and plan.kept_files == {}
    with staged(plan) as staging:
        build(staging, card(trial=1))
    # trial 0's tflite is gone with its folder: nothing of it stays under trial 1's card
    assert sorted(p.name for p in out.iterdir()) == ["card.json", "model.keras"]
    assert ModelCard.read(out / "card.json").trial == 1
    assert siblings(out) == ["model"]


@pytest.mark.parametrize("previous", [card(made_from="0" * 64), card(made_from=None)])
def test_one_trial_from_another_model_file_is_another_model(tmp_path: Path,
                                                          previous: ModelCard) -> None:
    """A study run again reuses trial numbers; an export made before fingerprints cannot
    prove it is of the same file."""
    out = export_folder(tmp_path / "model", previous)
    with pytest.raises(ConfigError, match="another model"):
        plan_folder(out, card(), "keras", replace=False)


# ----------------------------------------------------------------------------- a real study
def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory, tiny_backbone: Path) -> dict[str, Path]:
    """A tiny study run from its own folder, its results under the default ./results."""
    work = tmp_path_factory.mktemp("work")
    data = write_class_images(work / "data", {"a": 16, "b": 16})
    space = write_yaml(work / "space.yaml", tiny_space(tiny_backbone))
    write_yaml(work / "sweep.yaml", tiny_sweep(
        data, space, budget="{trials: 2}", finalists="{k: 1, reevaluate: off}",
        execution="{keep_top: 2}"))
    env = {"TLSWEEP_RESULTS": "results", "TLSWEEP_CACHE": str(work / "cache")}
    done = run_cli("run", "sweep.yaml", cwd=work, env=env)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    return {"work": work, "data": data, "results": work / "results",
            "elsewhere": elsewhere, "cache": work / "cache"}


def from_elsewhere(study: dict[str, Path], *args: str,
                   results: Path | None = None) -> tuple[int, str, str]:
    """The command run from another folder, the results named by TLSWEEP_RESULTS."""
    done = run_cli(*args, cwd=study["elsewhere"], env={
        "TLSWEEP_RESULTS": str(results or study["results"]),
        "TLSWEEP_CACHE": str(study["cache"])})
    return done.returncode, done.stdout, done.stderr


@pytest.mark.slow
def test_a_study_is_used_from_another_folder(study: dict[str, Path]) -> None:
    storage = f"sqlite:///{study['results'] / 'tiny' / 'study.db'}"
    from tlsweep.finalists import study_report

    report = study_report(optuna.load_study(study_name="tiny", storage=storage))
    assert Path(report.delivered.path).is_absolute()
    code, out, err = from_elsewhere(study, "export", "tiny", "--out", "model", "--results-dir",
                                    str(study["results"]))
    assert code == 0, err[-2000:]
    assert (study["elsewhere"] / "model" / "model.keras").is_file()
    code, out, err = from_elsewhere(study, "predict", "tiny", str(study["data"]), "--format",
                                    "json")
    assert code == 0, err[-2000:]
    assert len(json.loads(out)) == 32
    code, out, err = from_elsewhere(study, "evaluate", "tiny", str(study["data"]))
    assert code == 0 and "balanced accuracy" in out, err[-2000:]


@pytest.mark.slow
def test_an_old_study_with_a_relative_model_path_is_read(study: dict[str, Path],
                                                         tmp_path: Path) -> None:
    """Studies made before issue 38 stored the delivered model's path relative to the folder
    the run started in; from anywhere else it named nothing."""
    import shutil

    results = shutil.copytree(study["results"], tmp_path / "old-results")
    storage = f"sqlite:///{results / 'tiny' / 'study.db'}"
    stored = optuna.load_study(study_name="tiny", storage=storage)
    final = stored.user_attrs["final"]
    final["delivered"]["path"] = os.path.join("results", "tiny", "final", "model.keras")
    stored.set_user_attr("final", final)
    code, out, err = from_elsewhere(study, "predict", "tiny", str(study["data"]), "--format",
                                    "csv", results=results)
    assert code == 0, err[-2000:]
    assert len(pd.read_csv(pd.io.common.StringIO(out))) == 32


@pytest.mark.slow
def test_one_folder_holds_one_model(study: dict[str, Path]) -> None:
    out = study["elsewhere"] / "one-model"
    trials = study["results"] / "tiny" / "trials"
    code, _, err = from_elsewhere(study, "export", "tiny", "--trial", "0", "--out", str(out))
    assert code == 0, err[-2000:]
    first = snapshot(out)

    code, _, err = from_elsewhere(study, "export", "tiny", "--trial", "1", "--out", str(out))
    assert code == 2 and "another model" in err and "Traceback" not in err, err[-2000:]
    assert snapshot(out) == first  # refused before anything was written

    code, _, err = from_elsewhere(study, "export", "tiny", "--trial", "1", "--out", str(out),
                                  "--replace")
    assert code == 0, err[-2000:]
    written = json.loads((out / "card.json").read_text())
    assert written["trial"] == 1 and written["made_from"] == sha256(trials / "1" / "model.keras")
    assert not [name for name in siblings(out) if name.startswith(".")]  # no staging left

    keras_file = snapshot(out)["model.keras"]
    code, _, err = from_elsewhere(study, "export", "tiny", "--trial", "1", "--out", str(out),
                                  "--format", "savedmodel")
    assert code == 0, err[-2000:]
    written = json.loads((out / "card.json").read_text())
    assert written["files"] == {"keras": "model.keras", "savedmodel": "savedmodel"}
    assert snapshot(out)["model.keras"] == keras_file  # the same model's other format: kept

    code, text, err = from_elsewhere(study, "predict", str(out / "savedmodel"),
                                     str(study["data"]), "--top", "5", "--format", "json")
    assert code == 0, err[-2000:]
    assert "--top 5: the model has 2 classes" in err
    assert set(json.loads(text)[0]) == {"file", "class_1", "p_1", "class_2", "p_2"}
