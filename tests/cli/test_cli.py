"""The command line: bad input exits 2 with one message; inspection never imports TensorFlow."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import optuna
import pytest

from tests.conftest import run_cli, tiny_space, tiny_sweep, write_class_images, write_yaml
from tests.store.test_parquet import make_study
from tlsweep.store import write_results
from tlsweep.store._paths import sqlite_url


def existing_study(results: Path, name: str = "tiny") -> Path:
    """A study with a storage file and a leaderboard, as a finished run leaves them."""
    directory = results / name
    directory.mkdir(parents=True)
    stored = optuna.create_study(study_name=name, storage=sqlite_url(directory),
                                 direction="maximize")
    for trial in make_study().trials:
        stored.add_trial(trial)
    write_results(stored, directory)
    return directory


def snapshot(directory: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in directory.iterdir()}


@pytest.fixture
def workspace(tmp_path: Path) -> dict[str, Path]:
    data = write_class_images(tmp_path / "data", {"a": 5, "b": 5})
    space = write_yaml(tmp_path / "space.yaml", tiny_space(
        None, backbone="{choices: {MobileNetV2: {weights: none}}}"))
    sweep = write_yaml(tmp_path / "sweep.yaml", tiny_sweep(data, space).replace(
        "image_size: 16", "image_size: 32"))
    return {"data": data, "space": space, "sweep": sweep,
            "study": existing_study(tmp_path / "results")}


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


CASES = {
    "unknown key in sweep": ("sweep", "seed: 0", "seed: 0\nsed: 1", "unknown key 'sed'"),
    "wrong type in sweep": ("sweep", "batch_size: 16", "batch_size: big", "training.batch_size"),
    "unknown key in space": ("space", "backbone:", "bakbone: x\nbackbone:", "'bakbone'"),
    "wrong type in space": ("space", "{low: 0.2, high: 1.0}", "{low: deep, high: 1.0}",
                            "unfreeze_depth.low"),
    "missing data directory": ("sweep", "/data,", "/nowhere,", "does not exist"),
    "empty class folder": ("mkdir", "c", "", "class folder"),
    "single class": ("rmtree", "b", "", "single class"),
    "image size below minimum": ("sweep", "image_size: 32", "image_size: 16",
                                 "needs images of at least 32 px"),
    "missing weights file": ("space", "weights: none", "weights: gone.weights.h5",
                             "gone.weights.h5 does not exist"),
    "imagenet with no network": ("space", "weights: none", "weights: imagenet",
                                 "network is unreachable"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_exits_2_with_one_message_and_writes_nothing(
        workspace: dict[str, Path], case: str) -> None:
    import shutil

    target, old, new, expected = CASES[case]
    if target == "mkdir":
        (workspace["data"] / old).mkdir()
    elif target == "rmtree":
        shutil.rmtree(workspace["data"] / old)
    else:
        edit(workspace[target], old, new)
    before = snapshot(workspace["study"])
    done = run_cli("run", str(workspace["sweep"]), env={"TLSWEEP_OFFLINE": "1"})
    assert done.returncode == 2, done.stderr
    assert expected in done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    assert done.stderr.count("error:") == 1 and done.stderr.strip().count("\n") == 0
    assert snapshot(workspace["study"]) == before


def test_run_on_an_existing_study_refuses_and_names_resume(workspace: dict[str, Path]) -> None:
    before = snapshot(workspace["study"])
    done = run_cli("run", str(workspace["sweep"]))
    assert done.returncode == 2
    assert "already exists" in done.stderr and "tlsweep resume tiny" in done.stderr
    assert snapshot(workspace["study"]) == before


def test_leaderboard_formats(workspace: dict[str, Path]) -> None:
    table = run_cli("leaderboard", "tiny")
    assert table.returncode == 0 and "complete" in table.stdout and "pruned" in table.stdout
    rows = json.loads(run_cli("leaderboard", "tiny", "--format", "json", "--top", "2").stdout)
    assert [r["trial"] for r in rows] == [1, 0]
    csv = run_cli("leaderboard", "tiny", "--format", "csv", "--state", "pruned,fail").stdout
    assert csv.splitlines()[0].startswith("trial,state,value,rank") and len(csv.splitlines()) == 3
    markdown = run_cli("leaderboard", "tiny", "--format", "markdown", "--sort", "trial").stdout
    assert markdown.splitlines()[2].startswith("| 0 | complete")
    # --sort takes the headers the table shows as well as the column names.
    for shown, column in (("ft_lr", "finetune_lr"), ("secs", "duration_s")):
        by_header = run_cli("leaderboard", "tiny", "--format", "json", "--sort", shown)
        by_column = run_cli("leaderboard", "tiny", "--format", "json", "--sort", column)
        assert by_header.returncode == 0, by_header.stderr
        assert json.loads(by_header.stdout) == json.loads(by_column.stdout)


@pytest.mark.parametrize("args, expected", [
    (["leaderboard", "nosuch"], "no leaderboard for study 'nosuch'"),
    (["leaderboard", "tiny", "--sort", "speed"], "unknown column 'speed'"),
    (["leaderboard", "tiny", "--format", "xml"], "unknown format 'xml'"),
    (["leaderboard", "tiny", "--state", "done"], "unknown state 'done'"),
])
def test_leaderboard_usage_errors(workspace: dict[str, Path], args: list[str],
                                  expected: str) -> None:
    done = run_cli(*args)
    assert done.returncode == 2 and expected in done.stderr and "Traceback" not in done.stderr


def test_the_command_line_starts_without_heavy_imports() -> None:
    """Loading the dispatcher (every command, ``--help``) imports none of the libraries that
    only some commands need: each command imports them when it runs."""
    code = ("import sys, tlsweep.cli\n"
            "print(sorted(m for m in ('pandas', 'pyarrow', 'optuna', 'tensorflow', 'keras')"
            " if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip() == "[]", done.stdout


def test_leaderboard_never_imports_tensorflow(workspace: dict[str, Path]) -> None:
    done = run_cli("leaderboard", "tiny", env={"PYTHONPROFILEIMPORTTIME": "1"})
    assert done.returncode == 0
    imported = {line.split("|")[-1].strip() for line in done.stderr.splitlines()
                if line.startswith("import time:")}
    assert "tlsweep.inspection._tables" in imported
    assert not {m for m in imported if m.split(".")[0] in ("tensorflow", "keras")}


def test_version_short_help_and_no_library_warnings(workspace: dict[str, Path]) -> None:
    from tlsweep import __version__

    version = run_cli("--version")
    assert version.returncode == 0 and version.stdout.strip() == f"tlsweep {__version__}"
    short = run_cli("leaderboard", "-h")
    assert short.returncode == 0 and "--sort" in short.stdout
    # Optuna's note that heartbeats are experimental is for its developers, not a terminal.
    results = workspace["study"].parent
    for command in (["diagnose", "tiny"], ["show", "tiny", "0"]):
        done = run_cli(*command, "--results-dir", str(results))
        assert done.returncode == 0, done.stderr[-2000:]
        assert "Warning" not in done.stderr, (command, done.stderr[-2000:])
