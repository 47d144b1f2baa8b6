"""Shared fixtures. Unit tests need no TensorFlow; tests marked ``slow`` build tiny Keras models."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]


def shared_dir() -> Path | None:
    candidate = Path(os.environ.get("TLSWEEP_SHARED", REPO.parent / "shared"))
    return candidate if (candidate / "data").is_dir() else None


def needs_shared() -> Path:
    found = shared_dir()
    if found is None:
        pytest.skip("../shared (or $TLSWEEP_SHARED) is absent: no real images or weights here")
    return found


def postgres_url_or_skip() -> str:
    """The test server's URL; without one a skip with its reason, or a failure where CI
    requires the server (.ci/postgres.sh starts it and sets both variables)."""
    url = os.environ.get("TLSWEEP_TEST_POSTGRES_URL")
    if not url:
        reason = "no PostgreSQL server: set TLSWEEP_TEST_POSTGRES_URL (.ci/postgres.sh does)"
        if os.environ.get("TLSWEEP_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"PostgreSQL is required here: {reason}")
        pytest.skip(reason)
    return url


@pytest.fixture(autouse=True)
def isolated_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test gets its own results, dataset cache and Keras home."""
    monkeypatch.setenv("TLSWEEP_RESULTS", str(tmp_path / "results"))
    monkeypatch.setenv("TLSWEEP_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
    return tmp_path


def write_class_images(root: Path, per_class: dict[str, int], size: int = 16,
                       seed: int = 0, noise: float = 30.0) -> Path:
    """Class folders of PNGs that a small CNN can tell apart: each class has its own colour,
    under Gaussian noise of ``noise`` levels (more noise: harder to tell apart)."""
    rng = np.random.default_rng(seed)
    palette = [(220, 40, 40), (40, 200, 60), (40, 60, 220), (200, 200, 40), (200, 40, 200)]
    for index, (name, count) in enumerate(per_class.items()):
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        colour = np.array(palette[index % len(palette)], dtype=float)
        for i in range(count):
            jitter = rng.normal(0, noise, (size, size, 3))
            pixels = np.clip(colour + jitter, 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(folder / f"{name}_{i:03d}.png")
    return root


def write_yaml(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def tiny_space(backbone_path: Path | None, **overrides: str) -> str:
    lines = {
        "backbone": (f"{{choices: {{Tiny: {{model: {backbone_path}, preprocessing: unit}}}}}}"
                     if backbone_path else "MobileNetV2"),
        "unfreeze_depth": "{low: 0.2, high: 1.0}",
        "head_lr": "{low: 1.0e-3, high: 3.0e-2, log: true}",
        "finetune_lr": "{low: 1.0e-4, high: 1.0e-2, log: true}",
        "augmentation_strength": "{low: 0.0, high: 0.3}",
        "class_weighting": "{choices: [none, balanced, sqrt]}",
    }
    lines.update(overrides)
    return "".join(f"{k}: {v}\n" for k, v in lines.items())


def tiny_sweep(data_dir: Path, space: Path, study: str = "tiny",
               **overrides: str | None) -> str:
    """A sweep file's text; an override of None leaves that key out."""
    lines = {
        "study": study,
        "data": f"{{dir: {data_dir}, val_split: 0.3, image_size: 16}}",
        "search_space": str(space),
        "seed": "0",
        "budget": "{trials: 3}",
        "training": "{head_epochs: 2, finetune_epochs: 2, batch_size: 16}",
        "pruner": "{kind: none, min_finetune_epochs: 0}",  # a pruner set later sees every step
    }
    lines.update(overrides)
    return "".join(f"{k}: {v}\n" for k, v in lines.items() if v is not None)


def run_cli(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None,
            timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tlsweep", *args], capture_output=True,
                          text=True, cwd=cwd, env={**os.environ, **(env or {})},
                          timeout=timeout)


@pytest.fixture(scope="session")
def tiny_backbone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small conv backbone with BatchNorm, saved as .keras: a stand-in for a pretrained one."""
    import keras

    keras.utils.set_random_seed(0)
    layers = keras.layers
    inputs = keras.Input((16, 16, 3))
    x = layers.Conv2D(8, 3, padding="same", use_bias=False, name="conv1")(inputs)
    x = layers.BatchNormalization(name="bn1")(x)
    x = layers.ReLU(name="relu1")(x)
    x = layers.Conv2D(8, 3, padding="same", use_bias=False, name="conv2")(x)
    x = layers.BatchNormalization(name="bn2")(x)
    x = layers.ReLU(name="relu2")(x)
    model = keras.Model(inputs, x, name="tiny")
    # Non-trivial moving statistics, as a pretrained network would have.
    for bn in (model.get_layer("bn1"), model.get_layer("bn2")):
        bn.moving_mean.assign(np.full(8, -0.05, np.float32))
        bn.moving_variance.assign(np.full(8, 0.5, np.float32))
    path = tmp_path_factory.mktemp("backbone") / "tiny.keras"
    model.save(path)
    return path
