from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import tiny_space, tiny_sweep, write_yaml
from tlsweep.config import load_sweep, parse_duration
from tlsweep.config._space import FloatRange
from tlsweep.errors import ConfigError


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    space = write_yaml(tmp_path / "space.yaml", tiny_space(None))
    sweep = write_yaml(tmp_path / "sweep.yaml", tiny_sweep(tmp_path / "data", space))
    return sweep, space


def error_of(path: Path) -> str:
    with pytest.raises(ConfigError) as caught:
        load_sweep(path)
    return str(caught.value)


def test_valid_files_load_with_paths_resolved(files: tuple[Path, Path]) -> None:
    sweep, space = files
    loaded = load_sweep(sweep)
    assert loaded.config.search_space == space.resolve()
    assert isinstance(loaded.space.head_lr, FloatRange) and loaded.space.head_lr.log
    assert loaded.config.pruner.kind == "none"
    assert len(loaded.sha256) == 64


def test_relative_paths_resolve_against_the_file(tmp_path: Path) -> None:
    write_yaml(tmp_path / "spaces" / "s.yaml", tiny_space(None))
    sweep = write_yaml(tmp_path / "sweeps" / "a.yaml", tiny_sweep(
        Path("../data"), Path("../spaces/s.yaml")))
    loaded = load_sweep(sweep)
    assert loaded.config.data.dir == (tmp_path / "data").resolve()


def test_unknown_key_in_sweep_names_file_key_and_allowed(files: tuple[Path, Path]) -> None:
    sweep, _ = files
    sweep.write_text(sweep.read_text() + "trainig: {head_epochs: 2}\n")
    message = error_of(sweep)
    assert str(sweep) in message and "'trainig'" in message
    assert "allowed keys here: study, data, search_space" in message


def test_unknown_nested_key_names_its_path(files: tuple[Path, Path]) -> None:
    sweep, _ = files
    sweep.write_text(sweep.read_text().replace("batch_size: 16", "batch_sise: 16"))
    message = error_of(sweep)
    assert "key 'training'" in message and "'batch_sise'" in message
    assert "head_epochs, finetune_epochs, batch_size, dropout" in message


def test_unknown_key_in_space(files: tuple[Path, Path]) -> None:
    sweep, space = files
    space.write_text(space.read_text() + "learning_rate: 0.1\n")
    message = error_of(sweep)
    assert str(space) in message and "'learning_rate'" in message and "head_lr" in message


def test_wrong_type_in_sweep(files: tuple[Path, Path]) -> None:
    sweep, _ = files
    sweep.write_text(sweep.read_text().replace("batch_size: 16", "batch_size: many"))
    message = error_of(sweep)
    assert "training.batch_size" in message and "integer" in message and "'many'" in message


def test_wrong_type_in_space(files: tuple[Path, Path]) -> None:
    sweep, space = files
    space.write_text(space.read_text().replace("{low: 1.0e-3, high: 3.0e-2, log: true}",
                                               "{low: fast, high: 3.0e-2}"))
    message = error_of(sweep)
    assert str(space) in message and "head_lr.low" in message and "'fast'" in message


@pytest.mark.parametrize("replacement, expected", [
    ("head_lr: {low: 0.1, high: 0.01}", "low (0.1) must not exceed high (0.01)"),
    ("head_lr: {low: 0.0, high: 0.01, log: true}", "log range needs low > 0"),
    ("unfreeze_depth: {low: 0.0, high: 1.5}", "unfreeze_depth must lie within [0.0, 1.0]"),
    ("class_weighting: {choices: [none, inverse]}", "'none', 'balanced' or 'sqrt'"),
])
def test_impossible_ranges(files: tuple[Path, Path], replacement: str, expected: str) -> None:
    sweep, space = files
    key = replacement.split(":")[0]
    lines = [replacement if line.startswith(key + ":") else line
             for line in space.read_text().splitlines()]
    space.write_text("\n".join(lines) + "\n")
    message = error_of(sweep)
    assert str(space) in message and key in message and expected in message


@pytest.mark.parametrize("line, expected", [
    ("pruner: {kind: asha}", "'median', 'successive_halving', 'hyperband' or 'none'"),
    ("objective: accuracy", "'val_accuracy' or 'val_balanced_accuracy'"),
    ("data: {dir: x, val_split: 1.5}", "data.val_split"),
    ("data: {dir: x, train_dir: y, val_dir: z}", "not both"),
    ("budget: {trials: 0}", "budget.trials"),
    ("budget: {timeout: soon}", "not a duration"),
    ("finalists: {fold_workers: 0}", "finalists.fold_workers"),
    ("finalists: {fold_workers: many}", "finalists.fold_workers"),
])
def test_sweep_values_out_of_range(files: tuple[Path, Path], line: str, expected: str) -> None:
    sweep, _ = files
    key = line.split(":")[0]
    lines = [ln for ln in sweep.read_text().splitlines() if not ln.startswith(key + ":")]
    sweep.write_text("\n".join([*lines, line]) + "\n")
    assert expected in error_of(sweep)


def test_missing_and_malformed_files(tmp_path: Path) -> None:
    assert "not found" in error_of(tmp_path / "nope.yaml")
    bad = write_yaml(tmp_path / "bad.yaml", "study: [unclosed\n")
    assert "not valid YAML" in error_of(bad) and "line" in error_of(bad)


def test_durations() -> None:
    assert parse_duration("2h") == 7200
    assert parse_duration("1h30m") == 5400
    assert parse_duration("45s") == 45
    assert parse_duration(90) == 90
    with pytest.raises(ValueError):
        parse_duration("two hours")


@pytest.mark.parametrize("lines, expected", [
    (["tuner: {kind: hyperband}"], "set engine: keras-tuner"),
    (["engine: keras-tuner"], "'pruner' configures the optuna engine"),
    (["engine: keras-tuner", "sampler: {kind: tpe}"], "'pruner' configures the optuna engine"),
    (["engine: ray"], "'optuna' or 'keras-tuner'"),
    (["tuner: {kind: grid}", "engine: keras-tuner"], "'hyperband', 'bayesian' or 'random'"),
    (["budget: {epochs: 0}"], "budget.epochs"),
])
def test_engine_options_must_match_the_engine(files: tuple[Path, Path], lines: list[str],
                                              expected: str) -> None:
    sweep, _ = files
    keys = {line.split(":")[0] for line in lines}
    kept = [ln for ln in sweep.read_text().splitlines() if ln.split(":")[0] not in keys]
    sweep.write_text("\n".join([*kept, *lines]) + "\n")
    assert expected in error_of(sweep)


def test_keras_tuner_engine_loads_with_its_tuner(tmp_path: Path) -> None:
    space = write_yaml(tmp_path / "space.yaml", tiny_space(None))
    sweep = write_yaml(tmp_path / "sweep.yaml", tiny_sweep(
        tmp_path / "data", space, engine="keras-tuner", pruner=None,
        tuner="{kind: bayesian}", budget="{trials: 4, epochs: 10}"))
    config = load_sweep(sweep).config
    assert (config.engine, config.tuner_or_default.kind, config.budget.epochs) == (
        "keras-tuner", "bayesian", 10)
