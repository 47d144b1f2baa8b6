"""Options that need an extra (``pip install 'tlsweep[EXTRA]'``): a sweep file asking for one
that is not installed is refused when it is loaded, naming the key and the extra; a study's
recorded sweep file replayed is not. A missing package is simulated by ``None`` in
``sys.modules``, which ``import`` and ``find_spec`` both read as absent: no TensorFlow here."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.conftest import tiny_space, tiny_sweep, write_yaml
from tlsweep.config import load_sweep
from tlsweep.config._extras import installed
from tlsweep.errors import ConfigError

NO_TF_SPACE = "{choices: {MobileNetV2: {weights: none}}}"
TUNER = {"pruner": None, "tuner": "{kind: random}"}


def sweep_file(tmp_path: Path, **overrides: str | None) -> Path:
    space = write_yaml(tmp_path / "space.yaml", tiny_space(None, backbone=NO_TF_SPACE))
    return write_yaml(tmp_path / "sweep.yaml", tiny_sweep(tmp_path / "data", space, **overrides))


def absent(monkeypatch: pytest.MonkeyPatch, *modules: str) -> None:
    for module in modules:
        monkeypatch.setitem(sys.modules, module, None)


def test_a_module_set_to_none_counts_as_absent(monkeypatch: pytest.MonkeyPatch) -> None:
    assert installed("json")
    absent(monkeypatch, "json")
    assert not installed("json")
    assert not installed("no_such_module_here")


@pytest.mark.parametrize("module", ["keras_tuner", "tensorboard"])
def test_the_keras_tuner_engine_without_its_extra_is_refused(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, module: str) -> None:
    path = sweep_file(tmp_path, engine="keras-tuner", **TUNER)
    absent(monkeypatch, module)
    with pytest.raises(ConfigError) as caught:
        load_sweep(path)
    message = str(caught.value)
    assert str(path) in message and "engine: keras-tuner" in message
    assert "pip install 'tlsweep[tuner]'" in message


def test_the_optuna_engine_needs_no_tuner(tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    absent(monkeypatch, "keras_tuner", "tensorboard", "mlflow")
    assert load_sweep(sweep_file(tmp_path)).config.engine == "optuna"


def test_a_recorded_sweep_replays_without_the_extra(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """``show`` or ``resume`` of a keras-tuner study, tracked by MLflow, on a machine with
    neither: reading the study never needs them (the engine refuses to search: engines)."""
    tuner = sweep_file(tmp_path, engine="keras-tuner", **TUNER)
    tracked = write_yaml(tmp_path / "tracked.yaml", tiny_sweep(
        tmp_path / "data", tmp_path / "space.yaml", tracking="{mlflow: true}"))
    recorded = [load_sweep(path) for path in (tuner, tracked)]  # accepted where it ran
    absent(monkeypatch, "keras_tuner", "mlflow")
    for sweep in recorded:
        replayed = load_sweep(sweep.path, text=sweep.text, space_text=sweep.space_text)
        assert replayed.config == sweep.config
        with pytest.raises(ConfigError, match="not installed here"):
            load_sweep(sweep.path)  # the same file, given anew, is refused


def test_mlflow_tracking_without_its_extra_is_refused(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    path = sweep_file(tmp_path, tracking="{mlflow: {tracking_uri: 'sqlite:///m.db'}}")
    absent(monkeypatch, "mlflow")
    with pytest.raises(ConfigError) as caught:
        load_sweep(path)
    message = str(caught.value)
    assert str(path) in message and "tracking.mlflow" in message
    assert "pip install 'tlsweep[tracking]'" in message


def test_tracking_is_off_by_default_and_mlflow_true_takes_its_defaults(tmp_path: Path) -> None:
    assert load_sweep(sweep_file(tmp_path)).config.tracking is None
    mlflow = load_sweep(sweep_file(tmp_path, tracking="{mlflow: true}")).config.tracking.mlflow
    assert mlflow is not None and mlflow.tracking_uri is None and mlflow.experiment is None


@pytest.mark.parametrize(("tracking", "expected"), [
    ("{}", "names no tracker"),
    ("{mlflow: false}", "names no tracker"),
    ("{mlflow: {uri: x}}", "unknown key 'uri'"),
])
def test_a_tracking_section_that_cannot_act_is_refused(tmp_path: Path, tracking: str,
                                                       expected: str) -> None:
    with pytest.raises(ConfigError, match=expected):
        load_sweep(sweep_file(tmp_path, tracking=tracking))


def test_tracking_with_the_keras_tuner_engine_is_refused(tmp_path: Path) -> None:
    """keras-tuner's trials end in its own loop, which does not call the tracker: refused
    rather than silently untracked."""
    path = sweep_file(tmp_path, engine="keras-tuner", tracking="{mlflow: true}", **TUNER)
    with pytest.raises(ConfigError, match="set engine: optuna, or remove tracking"):
        load_sweep(path)


def test_a_relative_sqlite_tracking_uri_is_read_against_the_sweep_file(tmp_path: Path) -> None:
    config = {
        "sqlite:///runs/mlflow.db": f"sqlite:///{tmp_path / 'runs' / 'mlflow.db'}",
        "sqlite:////abs/mlflow.db": "sqlite:////abs/mlflow.db",
        "sqlite:///m.db?timeout=5": f"sqlite:///{tmp_path / 'm.db'}?timeout=5",
        "http://mlflow.example:5000": "http://mlflow.example:5000",
    }
    for written, expected in config.items():
        sweep = load_sweep(sweep_file(tmp_path, tracking=f"{{mlflow: {{tracking_uri: "
                                                         f"'{written}'}}}}"))
        assert sweep.config.tracking.mlflow.tracking_uri == expected
