"""Warm workers: reused models leak nothing into the next trial; cached features train the head
as the full model does."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import needs_shared, write_yaml
from tests.training.test_trial import Quiet, tiny_plan
from tlsweep.config import TrialParams
from tlsweep.training import TrialSettings
from tlsweep.training._trial import run_trial
from tlsweep.training._warm import ModelPool

pytestmark = pytest.mark.slow

# A warm trial repeats the cold one exactly, with augmentation too: its draws are keyed by
# (seed, epoch, batch), not by a generator's state. 1e-6 allows float
# summation noise only; state leaking from an earlier trial (weights, optimiser moments, rates,
# dropout or augmentation draws) moves these curves by orders of magnitude more.
EXACT = 1e-6


def curve(result: object) -> np.ndarray:
    return np.array([[r.loss, r.accuracy, r.val_loss, r.val_accuracy]
                     for r in result.curve])  # type: ignore[attr-defined]


@pytest.mark.parametrize("augmentation", [0.0, 0.4])
def test_a_warm_worker_gives_the_cold_curve(tmp_path: Path, tiny_backbone: Path,
                                            augmentation: float,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    plan = tiny_plan(tmp_path, tiny_backbone)
    backbone = plan.backbones["Tiny"]
    settings = TrialSettings(16, 2, 2, 16, 0.3, "val_accuracy", seed=7)
    target = TrialParams("Tiny", 0.5, 2e-2, 3e-3, augmentation, "sqrt")

    cold = run_trial(target, backbone, plan.dataset, settings, Quiet(), pool=ModelPool())
    assert cold.timings["reused_model"] is False

    pool = ModelPool()
    for number, params in enumerate([  # same structure, other rates, depths and weighting
            TrialParams("Tiny", 0.5, 9e-2, 1e-2, 0.0, "none"),
            TrialParams("Tiny", 1.0, 1e-3, 1e-4, 1.0, "balanced"),
            TrialParams("Tiny", 0.5, 1e-3, 1e-4, 0.7, "none")]):
        run_trial(params, backbone, plan.dataset,
                  TrialSettings(16, 2, 2, 16, 0.3, "val_accuracy", seed=number), Quiet(),
                  pool=pool)
    import keras

    seeded: list[int] = []
    monkeypatch.setattr(keras.utils, "set_random_seed", seeded.append)
    warm = run_trial(target, backbone, plan.dataset, settings, Quiet(), pool=pool)
    assert warm.timings["reused_model"] is True
    # Nor was TensorFlow's global seed set: that empties its kernel cache (0.1 s a fit).
    assert seeded == []
    # No epoch traced anew: the phase models of the earlier trials were reused.
    assert not any(traced for _, _, traced, _ in warm.timings["epochs"])
    np.testing.assert_allclose(curve(warm), curve(cold), atol=EXACT)
    for before, after in zip(cold.model.weights, warm.model.weights, strict=True):
        np.testing.assert_allclose(np.asarray(after), np.asarray(before), atol=EXACT)


def test_a_new_training_model_traces_its_step_once(tmp_path: Path, tiny_backbone: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Its optimiser and metrics are built before the first step: tf.function traces a step
    a second time when the first trace creates variables."""
    from tlsweep.training._batches_in_step import BatchesInStep

    traces: list[str] = []
    original = BatchesInStep.train_step

    def counted(self: BatchesInStep, data: object) -> object:
        traces.append(self.name)  # Python runs here only while a step is traced
        return original(self, data)

    monkeypatch.setattr(BatchesInStep, "train_step", counted)
    plan = tiny_plan(tmp_path, tiny_backbone)
    result = run_trial(TrialParams("Tiny", 0.5, 2e-2, 3e-3, 0.4, "sqrt"), plan.backbones["Tiny"],
                       plan.dataset, TrialSettings(16, 2, 2, 16, 0.3, "val_accuracy", seed=1),
                       Quiet(), pool=ModelPool())
    assert [phase for phase, _, traced, _ in result.timings["epochs"] if traced] == [
        "head", "finetune"]
    assert len(traces) == 2, traces
    # Each epoch's CPU seconds are the worker's own, counted over that epoch alone: positive,
    # and under the wall seconds times the cores (more is impossible in one epoch).
    cores = os.cpu_count() or 1
    assert all(0 < cpu_s <= seconds * cores + 0.05
               for _, seconds, _, cpu_s in result.timings["epochs"]), result.timings["epochs"]


def test_head_on_cached_features_matches_the_full_model(tmp_path: Path) -> None:
    """Real images and weights: hymenoptera at 96 px through the shared MobileNetV2."""
    shared = needs_shared()
    from tlsweep.config import load_sweep
    from tlsweep.sweep._study import prepare

    space = write_yaml(tmp_path / "space.yaml", (
        f"backbone: {{choices: {{MobileNetV2: {{weights: "
        f"{shared / 'weights' / 'mobilenet_v2_1.0_notop.weights.h5'}}}}}}}\n"
        "unfreeze_depth: 0.0\nhead_lr: 1.0e-3\nfinetune_lr: 1.0e-5\n"
        "augmentation_strength: 0.0\nclass_weighting: none\n"))
    data = shared / "data" / "hymenoptera_data"
    sweep = write_yaml(tmp_path / "sweep.yaml", (
        f"study: features\ndata: {{train_dir: {data / 'train'}, val_dir: {data / 'val'}, "
        f"image_size: 96}}\nsearch_space: {space}\n"))
    plan = prepare(load_sweep(sweep))
    params = TrialParams("MobileNetV2", 0.0, 1e-3, 1e-5, 0.0, "none")
    results = {}
    for cached in (True, False):
        settings = TrialSettings(96, 5, 0, 32, 0.2, "val_accuracy", seed=0,
                                 cache_features=cached)
        results[cached] = run_trial(params, plan.backbones["MobileNetV2"], plan.dataset,
                                    settings, Quiet(), pool=ModelPool(keep=False))
    assert results[True].timings["features_s"] > 0 and results[False].timings["features_s"] == 0
    assert abs(results[True].value - results[False].value) <= 0.02, (
        results[True].value, results[False].value)
    assert results[True].value > 0.8, "the shared weights transfer to ants and bees"
