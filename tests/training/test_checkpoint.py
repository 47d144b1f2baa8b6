"""Checkpoint arrays: every variable back, exactly, in order; older .npz checkpoints still read.
No TensorFlow: variables are stood in for by arrays with ``assign``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tlsweep.training import TrialCheckpoints
from tlsweep.training._checkpoint import (
    OPTIMIZER,
    WEIGHTS,
    CheckpointState,
    _load_arrays,
    _save_arrays,
)


class Variable:
    def __init__(self, value: np.ndarray) -> None:
        self.value = value
        self.shape = value.shape

    def __array__(self, dtype: object = None, copy: object = None) -> np.ndarray:
        return self.value

    def assign(self, value: np.ndarray) -> None:
        assert value.shape == self.shape and value.dtype == self.value.dtype
        self.value = value.copy()


def variables(seed: int) -> list[Variable]:
    rng = np.random.default_rng(seed)
    return [Variable(rng.normal(size=(3, 4)).astype(np.float32)),
            Variable(np.array(seed, dtype=np.int64)),  # an optimiser's iteration count
            Variable(rng.normal(size=(0,)).astype(np.float32)),
            Variable(rng.integers(0, 9, size=(2,)).astype(np.uint32)),  # a seed state
            Variable(rng.normal(size=(5,)).astype(np.float32))]


def test_arrays_come_back_exactly_and_in_order(tmp_path: Path) -> None:
    saved, restored = variables(1), variables(2)
    _save_arrays(tmp_path / WEIGHTS, saved)
    _load_arrays(tmp_path / WEIGHTS, restored, "model")
    for before, after in zip(saved, restored, strict=True):
        np.testing.assert_array_equal(after.value, before.value)
        assert after.value.dtype == before.value.dtype


def test_a_checkpoint_of_another_model_is_refused(tmp_path: Path) -> None:
    _save_arrays(tmp_path / WEIGHTS, variables(1))
    with pytest.raises(RuntimeError, match="does not fit this trial's model"):
        _load_arrays(tmp_path / WEIGHTS, variables(1)[:3], "model")


def test_an_older_npz_checkpoint_still_resumes(tmp_path: Path) -> None:
    saved, restored = variables(3), variables(4)
    np.savez(tmp_path / "optimizer.npz", *[v.value for v in saved])
    _load_arrays(tmp_path / OPTIMIZER, restored, "optimiser")
    for before, after in zip(saved, restored, strict=True):
        np.testing.assert_array_equal(after.value, before.value)


class Model:
    """Stands in for a Keras model: weights, and an optimiser with variables."""

    def __init__(self, seed: int) -> None:
        self.weights = variables(seed)
        self.optimizer = type("Optimizer", (), {"variables": variables(seed + 100)})()


def state(step: int, best_step: int) -> CheckpointState:
    return CheckpointState(phase="head", epoch=step, step=step, curve=[], best_step=best_step,
                           best_confusion=[[1]])


def test_the_best_epochs_weights_are_carried_from_checkpoint_to_checkpoint(
        tmp_path: Path) -> None:
    """A resumed trial keeps the weights its value describes, though later epochs were worse."""
    checkpoints = TrialCheckpoints(tmp_path)
    assert checkpoints.best_weights() is None
    best, later = Model(1), Model(2)
    checkpoints.save(best, state(step=0, best_step=0))
    checkpoints.save(later, state(step=1, best_step=0))
    checkpoints.save(later, state(step=2, best_step=0))
    carried = checkpoints.best_weights()
    assert carried is not None
    for saved, back in zip(best.weights, carried, strict=True):
        np.testing.assert_array_equal(back, saved.value)
    assert len(list(tmp_path.glob("step-*"))) == 1  # older folders are still removed
    checkpoints.save(later, state(step=3, best_step=3))
    for saved, back in zip(later.weights, checkpoints.best_weights(), strict=True):
        np.testing.assert_array_equal(back, saved.value)
