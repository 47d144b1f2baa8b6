"""Per-epoch trial checkpoints: weights, optimiser state, phase, epoch, global step and the curve.

A checkpoint is written into a fresh folder and published by an atomic rename of ``latest.json``,
so a process killed mid-write leaves the previous checkpoint intact. The JSON state is readable
without TensorFlow; only ``save`` and ``restore`` touch Keras.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tlsweep.system import write_text

LATEST = "latest.json"
FINAL_MODEL = "model.keras"
# Every variable in order, as a run of .npy records: the layout (dtype and shape of each), then one
# flat array per dtype. Per-epoch checkpoints were .npz files until 2026-11-26 (read still): a zip
# entry per variable made each checkpoint slower (RESULTS.md, "Per-trial overhead").
WEIGHTS, OPTIMIZER = "weights.arrays", "optimizer.arrays"
# The best epoch's weights, which the trial's value describes and its kept model holds: a link to
# that epoch's own weights file, carried from folder to folder.
BEST = "best.arrays"
LEGACY = {WEIGHTS: "weights.npz", OPTIMIZER: "optimizer.npz"}


def _save_arrays(path: Path, variables: list[Any]) -> None:
    arrays = [np.asarray(v) for v in variables]
    layout = [(a.dtype.str, a.shape) for a in arrays]
    with open(path, "wb") as out:
        np.save(out, np.array(json.dumps(layout)))
        for dtype in dict.fromkeys(dtype for dtype, _ in layout):
            np.save(out, np.concatenate([a.ravel() for a in arrays if a.dtype.str == dtype]))


def _read_arrays(path: Path) -> list[np.ndarray]:
    if not path.is_file() and (path.parent / LEGACY[path.name]).is_file():
        saved = np.load(path.parent / LEGACY[path.name])
        return [saved[f"arr_{i}"] for i in range(len(saved.files))]
    with open(path, "rb") as source:
        layout = [(dtype, tuple(shape)) for dtype, shape in json.loads(str(np.load(source)))]
        flat = {dtype: np.load(source) for dtype in dict.fromkeys(d for d, _ in layout)}
    offsets = dict.fromkeys(flat, 0)
    arrays = []
    for dtype, shape in layout:
        size = int(np.prod(shape))
        arrays.append(flat[dtype][offsets[dtype]:offsets[dtype] + size].reshape(shape))
        offsets[dtype] += size
    return arrays


def _load_arrays(path: Path, variables: list[Any], what: str) -> None:
    values = _read_arrays(path)
    if len(variables) != len(values) or any(
            tuple(v.shape) != value.shape for v, value in zip(variables, values, strict=False)):
        raise RuntimeError(f"checkpoint {path} does not fit this trial's {what} "
                           f"({len(values)} arrays saved, {len(variables)} expected)")
    for variable, value in zip(variables, values, strict=True):
        variable.assign(value)


@dataclass
class CheckpointState:
    phase: str
    epoch: int
    step: int
    curve: list[dict[str, Any]]
    best_step: int
    best_confusion: list[list[int]]
    extra: dict[str, Any] = field(default_factory=dict)


class TrialCheckpoints:
    """The checkpoint folder of one planned trial (shared by its retries)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def latest(self) -> CheckpointState | None:
        pointer = self.directory / LATEST
        if not pointer.is_file():
            return None
        try:
            data = json.loads(pointer.read_text())
            state = CheckpointState(**data["state"])
        except (ValueError, KeyError, TypeError):
            # Written atomically, so only damage from outside gets here: the trial then starts
            # again from its first epoch rather than failing (the storage keeps its record).
            return None
        if not (self.directory / data["folder"]).is_dir():
            return None
        return state

    def latest_folder(self) -> Path:
        return self.directory / json.loads((self.directory / LATEST).read_text())["folder"]

    def save(self, model: Any, state: CheckpointState, optimizer: Any = None) -> None:
        """The model's weights, and ``optimizer``'s state (default: the model's own; a model
        trained through another that shares its layers passes that one's)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        folder = Path(tempfile.mkdtemp(dir=self.directory, prefix=f"step-{state.step:04d}-"))
        _save_arrays(folder / WEIGHTS, model.weights)
        _save_arrays(folder / OPTIMIZER, (optimizer or model.optimizer).variables)
        previous = self.latest_folder() if (self.directory / LATEST).is_file() else None
        if state.best_step == state.step:
            os.link(folder / WEIGHTS, folder / BEST)
        elif previous is not None and (previous / BEST).is_file():
            os.link(previous / BEST, folder / BEST)
        self._publish({"folder": folder.name, "state": state.__dict__})
        if previous is not None and previous != folder:
            shutil.rmtree(previous, ignore_errors=True)

    def _publish(self, data: dict[str, Any]) -> None:
        write_text(self.directory / LATEST, json.dumps(data))

    def restore(self, model: Any, with_optimizer: bool, trained: Any = None) -> None:
        """Load the weights into ``model``, and the optimiser state into ``trained``'s
        optimiser (default: the model's) when the phase is the same as when it was saved."""
        folder = self.latest_folder()
        _load_arrays(folder / WEIGHTS, model.weights, "model")
        if not with_optimizer:
            return
        trained = trained or model
        if not trained.optimizer.built:
            trained.optimizer.build(trained.trainable_variables)
        _load_arrays(folder / OPTIMIZER, trained.optimizer.variables, "optimiser")

    def best_weights(self) -> list[np.ndarray] | None:
        """The best epoch's weights, if the latest checkpoint holds them."""
        if not (self.directory / LATEST).is_file():
            return None
        path = self.latest_folder() / BEST
        return _read_arrays(path) if path.is_file() else None

    def discard(self) -> None:
        """Drop the per-epoch checkpoints; a kept final model stays."""
        if not self.directory.is_dir():
            return
        for path in self.directory.iterdir():
            if path.name == FINAL_MODEL:
                continue
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
