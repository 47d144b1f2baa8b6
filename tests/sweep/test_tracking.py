"""MLflow tracking of finished trials (``tracking: {mlflow: ...}``), read back with MLflow's own
client from a local SQLite store: one run per complete or pruned trial, with its parameters,
value, curve and state; a failing tracker warns once and never fails the sweep. The slow test
runs a tiny sweep end to end through the real command line."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import mlflow  # the tracking extra, which `.[test]` installs: missing, a failure, not a skip
import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.trial import TrialState

from tests.conftest import run_cli, tiny_space, tiny_sweep, write_class_images, write_yaml
from tlsweep.config._extras import MLflowConfig, TrackingConfig
from tlsweep.sweep._tracking import TrialTracking

# MLflow's SQLite store, read back here, warns of SQLAlchemy's deprecations: not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:mlflow")


@pytest.fixture(autouse=True)
def no_telemetry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")


def tracking(uri: str, experiment: str | None = None) -> TrackingConfig:
    return TrackingConfig(mlflow=MLflowConfig(tracking_uri=uri, experiment=experiment))


def add_trial(study: optuna.Study, state: TrialState, value: float | None,
              head_lr: float, **attrs: Any) -> optuna.trial.FrozenTrial:
    """A finished trial as SweepRunner leaves it: params, curve and user attributes."""
    start = datetime(2026, 12, 1, 12, 0, 0)
    curve = [{"phase": "head", "epoch": i, "step": i, "loss": 1.0 - i / 10, "accuracy": 0.5,
              "val_loss": 0.9, "val_accuracy": 0.6 + i / 10, "val_balanced_accuracy": 0.6,
              "lr": head_lr, "duration_s": 2.0} for i in range(3)]
    params = {"backbone": "Tiny", "head_lr": head_lr}
    frozen = optuna.trial.create_trial(
        state=state, value=value, params=params,
        distributions={"backbone": CategoricalDistribution(["Tiny"]),
                       "head_lr": FloatDistribution(1e-4, 1e-1, log=True)},
        user_attrs={"curve": curve, "params": {**params, "unfreeze_depth": 0.3},
                    "duration_s": 7.5, **attrs},
        intermediate_values={r["step"]: r["val_accuracy"] for r in curve})
    frozen.datetime_start, frozen.datetime_complete = start, start + timedelta(seconds=8)
    study.add_trial(frozen)
    return study.get_trials(deepcopy=False)[-1]


def runs_of(uri: str, experiment: str) -> dict[str, Any]:
    client = mlflow.MlflowClient(tracking_uri=uri)
    found = client.get_experiment_by_name(experiment)
    assert found is not None, f"no experiment {experiment!r}"
    return {run.info.run_name: run for run in client.search_runs([found.experiment_id])}


def test_each_complete_and_pruned_trial_is_one_run_with_its_params_and_value(
        tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    study = optuna.create_study(study_name="flowers", direction="maximize")
    study.set_user_attr("objective", "val_accuracy")
    warnings: list[str] = []
    track = TrialTracking(tracking(uri), "sweep.yaml", warn=warnings.append)
    complete = add_trial(study, TrialState.COMPLETE, 0.8, head_lr=0.01)
    pruned = add_trial(study, TrialState.PRUNED, None, head_lr=0.02, pruned_at=2)
    failed = add_trial(study, TrialState.FAIL, None, head_lr=0.03, error="boom")
    for trial in (complete, pruned, failed):
        track(study, trial)
    track.close()  # the runs are logged on the tracking thread: wait for them
    assert warnings == []

    runs = runs_of(uri, "flowers")  # experiment: null takes the study's name
    assert set(runs) == {"trial 0", "trial 1"}  # a failed trial is no result: not tracked
    done = runs["trial 0"]
    assert done.data.params == {"backbone": "Tiny", "head_lr": "0.01", "unfreeze_depth": "0.3"}
    assert done.data.metrics["value"] == pytest.approx(0.8)
    assert done.data.metrics["val_accuracy"] == pytest.approx(0.8)  # the last epoch's
    assert done.data.metrics["epochs_run"] == 3
    assert done.data.tags["state"] == "COMPLETE" and done.data.tags["tlsweep.trial"] == "0"
    assert done.data.tags["tlsweep.study"] == "flowers" and done.info.status == "FINISHED"
    assert done.info.end_time - done.info.start_time == 8000  # the trial's own times
    history = mlflow.MlflowClient(tracking_uri=uri).get_metric_history(
        done.info.run_id, "val_accuracy")
    assert [(m.step, round(m.value, 3)) for m in history] == [(0, 0.6), (1, 0.7), (2, 0.8)]

    cut = runs["trial 1"]
    assert cut.data.tags["state"] == "PRUNED" and cut.data.tags["pruned_at"] == "2"
    assert "value" not in cut.data.metrics and cut.data.params["head_lr"] == "0.02"


def test_runs_go_to_the_named_experiment_shared_by_every_orchestrator(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    study = optuna.create_study(study_name="flowers", direction="maximize")
    first = TrialTracking(tracking(uri, "team-runs"), "sweep.yaml")
    second = TrialTracking(tracking(uri, "team-runs"), "sweep.yaml")  # another --workers one
    first(study, add_trial(study, TrialState.COMPLETE, 0.7, head_lr=0.01))
    second(study, add_trial(study, TrialState.COMPLETE, 0.9, head_lr=0.02))
    first.close()
    second.close()
    assert set(runs_of(uri, "team-runs")) == {"trial 0", "trial 1"}


def test_a_failing_tracker_warns_once_and_the_sweep_goes_on(tmp_path: Path) -> None:
    uri = "nosuchscheme://tracker:Secret42@host/x"  # MLflow knows no such store
    study = optuna.create_study(study_name="flowers", direction="maximize")
    warnings: list[str] = []
    track = TrialTracking(tracking(uri), "/work/sweep.yaml", warn=warnings.append)
    for head_lr in (0.01, 0.02):
        track(study, add_trial(study, TrialState.COMPLETE, 0.8, head_lr=head_lr))
    track.close()
    assert len(warnings) == 1, warnings
    line = warnings[0]
    assert line.startswith("[yellow]tracking[/] MLflow failed on trial 0")
    assert "/work/sweep.yaml: tracking.mlflow" in line and "Secret42" not in line
    assert "\n" not in line


def test_no_tracking_section_tracks_nothing() -> None:
    study = optuna.create_study(direction="maximize")
    track = TrialTracking(None, "sweep.yaml", warn=pytest.fail)
    assert track.trackers == []
    track(study, add_trial(study, TrialState.COMPLETE, 0.5, head_lr=0.01))
    assert track.thread is None  # nothing to log: no thread either


def test_the_sweep_never_waits_for_the_tracker(tmp_path: Path) -> None:
    """A tracker that hangs (a server that never answers) holds the tracking thread only; the
    process's end waits for it CLOSE_S at most, then says what was not logged."""
    study = optuna.create_study(study_name="flowers", direction="maximize")
    release = threading.Event()
    warnings: list[str] = []
    track = TrialTracking(None, "sweep.yaml", warn=warnings.append)
    track.trackers.append(Hanging(release))
    began = time.monotonic()
    for head_lr in (0.01, 0.02):
        track(study, add_trial(study, TrialState.COMPLETE, 0.8, head_lr=head_lr))
    assert time.monotonic() - began < 5
    track.close(timeout=0.2)
    assert len(warnings) == 1 and "about 2 finished trial(s) not logged" in warnings[0]
    release.set()


class Hanging:
    name, key = "Hanging", "tracking.hanging"

    def __init__(self, release: threading.Event) -> None:
        self.release = release

    def __call__(self, study: object, trial: object) -> None:
        self.release.wait(30)


def test_tracking_imports_no_tensorflow(tmp_path: Path) -> None:
    """The orchestrator logs the runs: MLflow's client, never TensorFlow."""
    code = (
        "import sys, optuna\n"
        "from tlsweep.config._extras import MLflowConfig, TrackingConfig\n"
        "from tlsweep.sweep._tracking import TrialTracking\n"
        "study = optuna.create_study(study_name='s', direction='maximize')\n"
        "study.add_trial(optuna.trial.create_trial(value=0.5))\n"
        f"uri = {'sqlite:///' + str(tmp_path / 'm.db')!r}\n"
        "config = TrackingConfig(mlflow=MLflowConfig(tracking_uri=uri))\n"
        "track = TrialTracking(config, 'sweep.yaml', warn=print)\n"
        "track(study, study.trials[0])\n"
        "track.close()\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras')))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]"  # and no warning printed


@pytest.mark.slow
def test_a_tracked_sweep_logs_every_trial_to_mlflow(tmp_path: Path, tiny_backbone: Path) -> None:
    data = write_class_images(tmp_path / "data", {"a": 12, "b": 12})
    space = write_yaml(tmp_path / "space.yaml", tiny_space(tiny_backbone))
    sweep = write_yaml(tmp_path / "sweep.yaml", tiny_sweep(
        data, space, budget="{trials: 2}", finalists="{reevaluate: off, k: 1}",
        tracking="{mlflow: {tracking_uri: 'sqlite:///mlruns/mlflow.db', experiment: tiny-x}}"))
    done = run_cli("run", str(sweep), env={"MLFLOW_DISABLE_TELEMETRY": "true"})
    assert done.returncode == 0, done.stderr[-3000:]
    assert "tracking" not in done.stderr  # no warning: every trial was logged
    assert "mlflow" not in done.stderr.lower()  # nor MLflow's INFO lines on the terminal
    uri = f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"  # relative to the sweep file
    runs = runs_of(uri, "tiny-x")
    assert set(runs) == {"trial 0", "trial 1"}
    study = optuna.load_study(study_name="tiny",
                              storage=f"sqlite:///{tmp_path / 'results' / 'tiny' / 'study.db'}")
    for trial in study.trials:
        run = runs[f"trial {trial.number}"]
        assert run.data.tags["state"] == trial.state.name
        assert run.data.params["backbone"] == "Tiny"
        assert float(run.data.params["head_lr"]) == pytest.approx(trial.params["head_lr"])
        if trial.state is TrialState.COMPLETE:
            assert run.data.metrics["value"] == pytest.approx(trial.value)
