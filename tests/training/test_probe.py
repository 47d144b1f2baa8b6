"""The linear probe, and the head a trial starts from (``training.head_init: probe``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tlsweep.training._probe import (
    C_GRID,
    WEIGHTINGS,
    cross_validate_probe,
    fit_baseline,
    fit_probe,
    head_weights,
)


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def features(n_classes: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(n_classes), 15)
    centres = rng.normal(0.0, 1.0, (n_classes, 12)) * 2.0
    x = centres[labels] + rng.normal(0.0, 1.5, (len(labels), 12)) + rng.uniform(0, 5, 12)
    return x * rng.uniform(0.2, 8.0, 12), labels  # uneven scales: the folded scaler matters


@pytest.mark.parametrize("n_classes", [2, 4])
def test_head_weights_give_the_probes_probabilities(n_classes: int) -> None:
    x, y = features(n_classes)
    fit = fit_probe(x, y, "val_balanced_accuracy", seed=0)
    kernel, bias = head_weights(fit, n_classes)
    assert kernel.shape == (12, n_classes) and bias.shape == (n_classes,)
    expected = fit.model.predict_proba(x)  # type: ignore[attr-defined]
    np.testing.assert_allclose(softmax(x @ kernel + bias), expected, atol=1e-5)


def test_a_class_absent_from_training_is_never_predicted() -> None:
    x, y = features(3)
    kept = y != 1
    fit = fit_probe(x[kept], y[kept], "val_accuracy", seed=0)
    kernel, bias = head_weights(fit, 3)
    probabilities = softmax(x @ kernel + bias)
    assert probabilities[:, 1].max() < 1e-9
    np.testing.assert_allclose(probabilities[:, [0, 2]],
                               fit.model.predict_proba(x), atol=1e-5)  # type: ignore[attr-defined]


def test_class_weights_move_the_probe_toward_the_rare_class() -> None:
    x, y = features(2, seed=3)
    rare = np.concatenate([np.flatnonzero(y == 0), np.flatnonzero(y == 1)[:4]])
    plain = fit_probe(x[rare], y[rare], "val_accuracy", seed=0)
    weighted = fit_probe(x[rare], y[rare], "val_accuracy", seed=0,
                         class_weight={0: 1.0, 1: 15 / 4})
    # Same C grid and folds; the rare class's mean probability can only rise with its weight.
    p_plain = plain.model.predict_proba(x)[:, 1].mean()  # type: ignore[attr-defined]
    p_weighted = weighted.model.predict_proba(x)[:, 1].mean()  # type: ignore[attr-defined]
    assert p_weighted > p_plain


def test_the_baseline_weighs_a_rare_class_when_the_objective_is_balanced() -> None:
    """A 1:9 toy set with overlapping classes: the baseline chooses its class weighting by
    cross-validated balanced accuracy, and on fresh images of the same two classes it beats
    the unweighted probe on that metric."""
    from sklearn.metrics import balanced_accuracy_score

    rng = np.random.default_rng(0)

    def draw(n_common: int, n_rare: int) -> tuple[np.ndarray, np.ndarray]:
        labels = np.repeat([0, 1], [n_common, n_rare])
        return rng.normal(0.0, 1.0, (len(labels), 6)) + 0.9 * labels[:, None], labels

    x, y = draw(270, 30)
    fresh_x, fresh_y = draw(2000, 2000)
    baseline = fit_baseline(x, y, "val_balanced_accuracy", seed=0)
    plain = fit_probe(x, y, "val_balanced_accuracy", seed=0)
    assert (baseline.weighting, plain.weighting) == ("balanced", "none")
    weighted_score = balanced_accuracy_score(fresh_y, baseline.predict(fresh_x))
    plain_score = balanced_accuracy_score(fresh_y, plain.predict(fresh_x))
    assert weighted_score > plain_score + 0.05


def test_one_search_over_given_folds_serves_the_out_of_fold_predictions_and_the_refit() -> None:
    """The settings that score best over the folds (mean balanced accuracy) are those of both
    the out-of-fold predictions, each fold's model fitted on the others, and the refit on
    every image."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import balanced_accuracy_score
    from sklearn.model_selection import StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x, y = features(3, seed=1)
    y = np.where((y == 2) & (np.arange(len(y)) % 3 > 0), 0, y)  # class 2 rare: weighting matters
    folds = list(StratifiedKFold(3, shuffle=True, random_state=0).split(x, y))
    refit, out_of_fold = cross_validate_probe(x, y, "val_balanced_accuracy", folds)

    def model(c: float, weighting: str | None) -> object:
        return make_pipeline(StandardScaler(), LogisticRegression(
            C=c, class_weight=weighting, max_iter=3000))

    def mean_score(c: float, weighting: str | None) -> float:
        return float(np.mean([balanced_accuracy_score(y[held], model(c, weighting).fit(
            x[train], y[train]).predict(x[held])) for train, held in folds]))

    # In the search's order, whose first best wins a tie.
    scores = {(c, w): mean_score(c, w) for c in C_GRID for w in WEIGHTINGS}
    best = max(scores, key=scores.__getitem__)
    assert (refit.c, refit.class_weight) == best
    assert refit.cv_score == pytest.approx(scores[best])
    expected = np.empty(len(y), np.int64)
    for train, held in folds:
        expected[held] = model(*best).fit(x[train], y[train]).predict(x[held])
    np.testing.assert_array_equal(out_of_fold, expected)
    np.testing.assert_array_equal(refit.predict(x), model(*best).fit(x, y).predict(x))


@pytest.mark.slow
def test_a_trial_starts_from_the_studys_probe(tmp_path: Path, tiny_backbone: Path) -> None:
    """Before any epoch, the classifier's probabilities are the probe's on the same frozen
    features (float32 against float64: 1e-4); with ``head_init: random`` they are not."""
    from tests.training.test_trial import Quiet, tiny_plan
    from tlsweep.config import TrialParams
    from tlsweep.training import TrialSettings, TwoPhaseTrial
    from tlsweep.training._batches import eval_inputs
    from tlsweep.training._classifier import predict
    from tlsweep.training._warm import ModelPool, frozen_features
    from tlsweep.training.backbones import preprocessor

    plan = tiny_plan(tmp_path, tiny_backbone)
    backbone, data = plan.backbones["Tiny"], plan.dataset
    params = TrialParams("Tiny", 0.5, 1e-3, 1e-4, 0.3, "none")
    gaps = {}
    for init in ("probe", "random"):
        settings = TrialSettings(16, 1, 1, 16, 0.2, "val_accuracy", seed=5, head_init=init,
                                 probe_seed=0)
        trial = TwoPhaseTrial(params, backbone, data, settings, Quiet(), pool=ModelPool())
        if trial.starts_from_probe:
            trial._head_from_probe()
        preprocess = preprocessor(backbone)
        fit = fit_probe(frozen_features(trial.warm, data.x_train, preprocess), data.y_train,
                        "val_accuracy", seed=0)
        expected = fit.model.predict_proba(  # type: ignore[attr-defined]
            frozen_features(trial.warm, data.x_val, preprocess))
        found = predict(trial.model, eval_inputs(data.x_val, preprocess))
        gaps[init] = float(np.abs(found - expected).max())
    assert gaps["probe"] <= 1e-4, gaps
    assert gaps["random"] > 1e-2, gaps
