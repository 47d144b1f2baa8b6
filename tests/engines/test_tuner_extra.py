"""The keras-tuner engine without the ``tuner`` extra: a new sweep file is refused when loaded
(tests/config/test_extras.py); a study resumed on a machine without it is refused by the engine
before its search starts. No TensorFlow: the missing module is ``None`` in ``sys.modules``."""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from tlsweep.engines import engine_named
from tlsweep.errors import ConfigError


@pytest.mark.parametrize("module", ["keras_tuner", "tensorboard"])
def test_the_engine_refuses_to_search_without_its_extra(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, module: str) -> None:
    monkeypatch.setitem(sys.modules, module, None)
    if module == "tensorboard":  # keras_tuner itself would import TensorFlow: stand in for it
        monkeypatch.setitem(sys.modules, "keras_tuner", SimpleNamespace())
    sweep_path = tmp_path / "sweep.yaml"
    # Only the sweep's path is read before the refusal: nothing else of the search is touched.
    search = SimpleNamespace(plan=SimpleNamespace(sweep=SimpleNamespace(path=sweep_path)))
    with pytest.raises(ConfigError) as caught:
        engine_named("keras-tuner").search(search)  # type: ignore[arg-type]
    message = str(caught.value)
    assert message.startswith(f"{sweep_path}: engine: keras-tuner")
    assert f"{module} is missing" in message and "pip install 'tlsweep[tuner]'" in message
