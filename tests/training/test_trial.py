"""The trial's mechanics, pinned on tiny real Keras models."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import optuna
import pytest

from tests.conftest import needs_shared, tiny_space, tiny_sweep, write_class_images, write_yaml
from tlsweep.config import TrialParams, load_sweep
from tlsweep.store._paths import sqlite_url
from tlsweep.sweep._study import prepare
from tlsweep.training import EpochRecord, TrialSettings
from tlsweep.training._classifier import (
    backbone_layers,
    build_classifier,
    compile_for,
    unfreeze_top,
)
from tlsweep.training._trial import run_trial
from tlsweep.training.backbones import Backbone, block_starts, preprocessor

pytestmark = pytest.mark.slow


class Quiet:
    def trial_started(self, *args: object) -> None: ...
    def epoch_started(self, *args: object) -> None: ...
    def epoch_finished(self, record: EpochRecord) -> None: ...
    def trial_finished(self, *args: object) -> None: ...


def tiny_plan(tmp_path: Path, backbone: Path, **space: str):
    data = write_class_images(tmp_path / "data", {"red": 24, "green": 24, "blue": 24})
    space_file = write_yaml(tmp_path / "space.yaml", tiny_space(backbone, **space))
    sweep = write_yaml(tmp_path / "sweep.yaml", tiny_sweep(data, space_file))
    return prepare(load_sweep(sweep))


def test_pruner_receives_one_step_per_epoch_across_both_phases(tmp_path: Path,
                                                               tiny_backbone: Path) -> None:
    from tlsweep.sweep import SweepRunner, create_study

    plan = tiny_plan(tmp_path, tiny_backbone, unfreeze_depth="0.5")
    seen: list[int] = []

    class SpyPruner(optuna.pruners.BasePruner):
        def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
            seen.append(trial.last_step)
            return False

    study = create_study(plan, sqlite_url(plan.directory))
    study.pruner = SpyPruner()
    study.set_user_attr("budget_trials", 1)
    SweepRunner(plan, study, Quiet(), sqlite_url(plan.directory)).run()  # a real worker
    h, f = 2, 2
    assert seen == list(range(h + f))
    trial = study.trials[0]
    assert trial.state == optuna.trial.TrialState.COMPLETE
    assert sorted(trial.intermediate_values) == list(range(h + f))
    phases = [r["phase"] for r in trial.user_attrs["curve"]]
    assert phases == ["head"] * h + ["finetune"] * f


def _tiny_backbone(path: Path, weights: str = "saved") -> Backbone:
    return Backbone("Tiny", weights, path, "unit", 1)


def test_phase_two_unfreezes_exactly_the_top_fraction_and_keeps_batchnorm(
        tiny_backbone: Path) -> None:
    model, base = build_classifier(_tiny_backbone(tiny_backbone), 16, 3, 0.0)
    assert unfreeze_top(base, 0.5, pretrained=True) == 3
    flags = {layer.name: layer.trainable for layer in backbone_layers(base)}
    assert flags == {"conv1": False, "bn1": False, "relu1": False,
                     "conv2": True, "bn2": False, "relu2": True}

    before = {w.path: np.array(w) for w in base.weights}
    compile_for(model, 1e-2)
    rng = np.random.default_rng(0)
    model.fit(rng.uniform(0, 1, (32, 16, 16, 3)), rng.integers(0, 3, 32), epochs=2, verbose=0)
    after = {w.path: np.array(w) for w in base.weights}
    changed = {path for path in before if not np.array_equal(before[path], after[path])}
    assert changed == {p for p in before if p.startswith("conv2")}, changed


def test_unfreeze_fraction_on_a_real_architecture() -> None:
    import keras

    base = keras.applications.MobileNetV2(include_top=False, weights=None, alpha=0.35,
                                          input_shape=(32, 32, 3))
    layers = backbone_layers(base)
    cuts = {len(layers) - start for start in block_starts(
        [layer.name for layer in layers], [hasattr(layer, "kernel") for layer in layers])}
    for depth in (0.0, 0.1, 0.37, 1.0):
        n_top = unfreeze_top(base, depth, pretrained=True)
        # The nearest block boundary: no block is split, and no boundary is closer.
        assert n_top in cuts
        assert all(abs(n_top - depth * len(layers)) <= abs(c - depth * len(layers)) for c in cuts)
        top = layers[len(layers) - n_top:]
        for layer in layers:
            is_bn = isinstance(layer, keras.layers.BatchNormalization)
            assert layer.trainable == (layer in top and not is_bn), (depth, layer.name)


def test_batchnorm_statistics_frozen_in_finetuning_but_trained_from_scratch(
        tmp_path: Path, tiny_backbone: Path) -> None:
    plan = tiny_plan(tmp_path, tiny_backbone)
    settings = TrialSettings(16, 1, 2, 16, 0.0, "val_accuracy", 0)
    params = TrialParams("Tiny", 1.0, 1e-2, 1e-2, 0.0, "none")

    def moving_means(backbone: Backbone) -> tuple[np.ndarray, np.ndarray]:
        import keras

        captured: dict[str, np.ndarray] = {}
        original = build_classifier

        def spy(*args: object, **kwargs: object):
            model, base = original(*args, **kwargs)
            captured["before"] = np.array(base.get_layer("bn2").moving_mean)
            captured["base"] = base
            return model, base

        from tlsweep.training import _classifier as classifier_module

        classifier_module.build_classifier = spy
        try:
            run_trial(params, backbone, plan.dataset, settings, Quiet())
        finally:
            classifier_module.build_classifier = original
        after = np.array(captured["base"].get_layer("bn2").moving_mean)
        keras.backend.clear_session()
        return captured["before"], after

    before, after = moving_means(_tiny_backbone(tiny_backbone))
    np.testing.assert_array_equal(before, after)
    before, after = moving_means(_tiny_backbone(tiny_backbone, weights="none"))
    assert not np.allclose(before, after), "with weights: none BatchNorm must train"


def test_strength_zero_changes_no_pixel_and_validation_is_never_augmented(
        tmp_path: Path, tiny_backbone: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tlsweep.training._batches import TrainingBatches, eval_inputs

    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (20, 16, 16, 3)).astype(np.uint8)
    y = np.arange(20, dtype=np.int32)  # the label identifies the image through the shuffle

    def outputs(strength: float) -> np.ndarray:
        source = TrainingBatches(x, y, 8, lambda images: images)
        source.start(strength, seed=1)
        batches = [(np.asarray(a), np.asarray(b)) for a, b, _ in
                   (source.next_batch() for _ in range(source.steps_per_epoch))]
        images = np.concatenate([a for a, _ in batches])
        labels = np.concatenate([b for _, b in batches])
        return images[np.argsort(labels)]

    np.testing.assert_array_equal(outputs(0.0), x.astype(np.float32))
    assert not np.allclose(outputs(1.0), x.astype(np.float32))

    # In a real trial with full augmentation, validation sees the plain preprocessed images.
    from tlsweep.training import _trial as trial_module

    plan = tiny_plan(tmp_path, tiny_backbone)
    seen: list[np.ndarray] = []
    original = trial_module.EpochTracker.__init__

    def spy(self, x_val, *args, **kwargs):
        seen.append(np.array(x_val))
        original(self, x_val, *args, **kwargs)

    monkeypatch.setattr(trial_module.EpochTracker, "__init__", spy)
    run_trial(TrialParams("Tiny", 0.5, 1e-2, 1e-3, 1.0, "none"), plan.backbones["Tiny"],
              plan.dataset, TrialSettings(16, 1, 1, 16, 0.0, "val_accuracy", 0), Quiet())
    expected = eval_inputs(plan.dataset.x_val, preprocessor(plan.backbones["Tiny"]))
    np.testing.assert_array_equal(seen[0], expected)
    np.testing.assert_allclose(seen[0], plan.dataset.x_val / 255.0, atol=1e-6)


def test_balanced_accuracy_objective(tmp_path: Path, tiny_backbone: Path) -> None:
    plan = tiny_plan(tmp_path, tiny_backbone)
    result = run_trial(TrialParams("Tiny", 0.5, 1e-1, 1e-3, 0.0, "balanced"),
                       plan.backbones["Tiny"], plan.dataset,
                       TrialSettings(16, 4, 1, 16, 0.0, "val_balanced_accuracy", 0), Quiet())
    assert result.value == max(r.val_balanced_accuracy for r in result.curve)
    assert result.value > 0.9, "three colour classes are trivially separable"
    confusion = np.array(result.confusion)
    assert confusion.sum() == len(plan.dataset.y_val)


def test_hymenoptera_one_trial_with_shared_mobilenetv2() -> None:
    shared = needs_shared()
    repo = Path(__file__).resolve().parents[2]
    plan = prepare(load_sweep(repo / "sweeps" / "hymenoptera.yaml"))
    assert str(shared.resolve()) in str(plan.backbones["MobileNetV2"].weights)
    result = run_trial(TrialParams("MobileNetV2", 0.3, 3e-3, 1e-5, 0.3, "none"),
                       plan.backbones["MobileNetV2"], plan.dataset,
                       TrialSettings(plan.sweep.config.data.image_size, 3, 2, 32, 0.2,
                                     "val_accuracy", 0), Quiet())
    print(f"hymenoptera val_accuracy {result.value:.4f} at step {result.best_step}")
    assert result.value >= 0.88
