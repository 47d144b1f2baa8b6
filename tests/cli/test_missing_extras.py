"""Through the real command line, on a machine without an extra: ``tlsweep run`` of a sweep that
needs it exits 2 with one line naming the key (or --storage) and ``pip install
'tlsweep[EXTRA]'``, no traceback, and no study created. The extra's modules are made absent
(``None`` in ``sys.modules``) in the command's own process; no TensorFlow is imported."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import tiny_space, tiny_sweep, write_class_images, write_yaml

NO_TF_SPACE = "{choices: {MobileNetV2: {weights: none}}}"
# `tlsweep ARGS` with MODULES absent: python -c LAUNCH MODULES ARGS...
LAUNCH = ("import sys; [sys.modules.__setitem__(m, None) for m in sys.argv[1].split(',')]; "
          "sys.argv = ['tlsweep', *sys.argv[2:]]; from tlsweep.cli import main; main()")


def run_without(modules: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", LAUNCH, modules, *args], capture_output=True,
                          text=True, env=dict(os.environ), timeout=300)


def sweep_file(tmp_path: Path, **overrides: str | None) -> Path:
    data = write_class_images(tmp_path / "data", {"a": 6, "b": 6}, size=32)
    space = write_yaml(tmp_path / "space.yaml", tiny_space(None, backbone=NO_TF_SPACE))
    overrides.setdefault("data", f"{{dir: {data}, val_split: 0.3, image_size: 32}}")
    return write_yaml(tmp_path / "sweep.yaml", tiny_sweep(data, space, **overrides))


@pytest.mark.parametrize(("modules", "overrides", "args", "names"), [
    ("keras_tuner", {"engine": "keras-tuner", "pruner": None, "tuner": "{kind: random}"}, [],
     ["engine: keras-tuner", "pip install 'tlsweep[tuner]'"]),
    ("mlflow", {"tracking": "{mlflow: {tracking_uri: 'sqlite:///mlflow.db'}}"}, [],
     ["tracking.mlflow", "pip install 'tlsweep[tracking]'"]),
    ("psycopg", {"execution": "{checkpoint_dir: shared}"},
     ["--storage", "postgresql://tlsweep:Secret42@127.0.0.1:9/tl"],
     ["--storage postgresql://tlsweep:***@", "pip install 'tlsweep[postgres]'"]),
], ids=["tuner", "tracking", "postgres"])
def test_run_without_the_extra_exits_2_naming_it(
        tmp_path: Path, modules: str, overrides: dict[str, str | None], args: list[str],
        names: list[str]) -> None:
    sweep = sweep_file(tmp_path, **overrides)
    done = run_without(modules, "run", str(sweep), *args)
    assert done.returncode == 2, done.stderr[-2000:]
    assert "Traceback" not in done.stderr and "Secret42" not in done.stderr + done.stdout
    message = " ".join(done.stderr.split())  # rich wraps long lines
    for name in names:
        assert name in message, message
    assert not (tmp_path / "results" / "tiny").exists()
    assert not (tmp_path / "mlflow.db").exists()
