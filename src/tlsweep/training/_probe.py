"""The baseline every study records: a linear probe on frozen pooled backbone features.

A logistic regression on standardised features, its regularisation chosen by stratified
cross-validation on the training images only (validation and test never choose it), scored by the
study's objective. It is the simplest thing that works, so a fine-tuning sweep has to beat it to
earn its cost. scikit-learn only; the features come from the warm models' cache.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from tlsweep.measures import Objective

# Inverse regularisation strengths tried, a decade apart, by 3-fold CV. Every fit is paid inside
# the user's budget, in each trial's first probe and in the finalists' stage: on flowers' 2,000
# training images the grid before (half-decades, 5 folds) took 349 s of a 10-minute run's first
# trial, and the score it chose was no better (benchmarks/RESULTS.md, "The probe's cost").
C_GRID = np.logspace(-4, 2, 7)
CV_FOLDS = 3
Folds = list[tuple[np.ndarray, np.ndarray]]


# The study's baseline chooses its class weighting by cross-validation among these, as a user's
# probe would (sklearn's names: None is unweighted, "balanced" is n / (k * n_c)).
WEIGHTINGS: tuple[str | None, ...] = (None, "balanced")
ClassWeight = dict[int, float] | str | None


@dataclass(frozen=True)
class ProbeFit:
    model: object  # a fitted sklearn Pipeline
    c: float
    cv_score: float  # mean cross-validated objective on the training images at ``c``
    class_weight: ClassWeight = None  # the weighting it was fitted with (chosen or given)

    def predict(self, features: np.ndarray) -> np.ndarray:
        return self.model.predict(features)  # type: ignore[attr-defined]

    @property
    def weighting(self) -> str:
        """The weighting in the sweep file's words: none, balanced, or per-class weights."""
        if self.class_weight is None or isinstance(self.class_weight, str):
            return self.class_weight or "none"
        return "per-class weights"


def probe_fits(folds: int = CV_FOLDS, weightings: int = 1) -> int:
    """The logistic regressions one probe search fits: each setting on every fold, then the
    refit. ``probe_fits()``: a trial's probe (``fit_probe``), the unit the finalists' stage's probes
    are costed in."""
    return len(C_GRID) * weightings * folds + 1


def fit_baseline(features: np.ndarray, labels: np.ndarray, objective: str,
                 seed: int) -> ProbeFit:
    """The study's baseline: C and the class weighting (none or balanced) chosen together by
    cross-validated ``objective``, so that with a balanced-accuracy objective the probe is
    unweighted only when the user's data chose that (DESIGN.md §3b: imbalance end to end)."""
    return fit_probe(features, labels, objective, seed, weightings=WEIGHTINGS)


def fit_probe(features: np.ndarray, labels: np.ndarray, objective: str, seed: int,
              class_weight: ClassWeight = None,
              weightings: tuple[str | None, ...] | None = None) -> ProbeFit:
    """Fit on training features; C by ``CV_FOLDS``-fold stratified CV (fewer folds when the
    smallest class is smaller than that). ``class_weight``: per-class loss weights (a trial's
    class weighting); ``weightings``: choose among these by the same CV instead."""
    from sklearn.model_selection import StratifiedKFold

    folds = int(min(CV_FOLDS, np.bincount(labels).min()))
    if folds < 2:  # a class of one image: no CV possible, the middle of the grid
        pipeline = _pipeline(class_weight).set_params(logisticregression__C=1.0)
        return ProbeFit(pipeline.fit(features, labels), 1.0, float("nan"), class_weight)
    splits = StratifiedKFold(folds, shuffle=True, random_state=seed)
    return _searched(features, labels, objective, splits, class_weight, weightings)[0]


def cross_validate_probe(features: np.ndarray, labels: np.ndarray, objective: str,
                         folds: Folds) -> tuple[ProbeFit, np.ndarray]:
    """The probe on given ``folds`` (the finalists'): C and the class weighting chosen by their
    mean ``objective``, then (the probe refit on all of ``features``, the out-of-fold
    predictions at the chosen settings). One search serves both, where a search per fold and
    another for the refit cost twice the fits. The out-of-fold score is then that of the
    best of ``len(C_GRID) * 2`` settings on the same folds: slightly optimistic, which favours
    the probe, the cheaper and safer model, when the finalists' choice is close."""
    from sklearn.base import clone
    from sklearn.model_selection import cross_val_predict

    fit, search = _searched(features, labels, objective, folds, None, WEIGHTINGS)
    chosen = clone(search.estimator).set_params(**search.best_params_)
    return fit, cross_val_predict(chosen, features, labels, cv=folds)


def _pipeline(class_weight: ClassWeight) -> Any:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(),
                         LogisticRegression(max_iter=3000, class_weight=class_weight))


def _searched(features: np.ndarray, labels: np.ndarray, objective: str, splits: Any,
              class_weight: ClassWeight,
              weightings: tuple[str | None, ...] | None) -> tuple[ProbeFit, Any]:
    """(the probe refit with the settings the grid search chose on ``splits``, the search)."""
    from sklearn.model_selection import GridSearchCV

    grid: dict[str, Any] = {"logisticregression__C": C_GRID}
    if weightings is not None:
        grid["logisticregression__class_weight"] = list(weightings)
    search = GridSearchCV(_pipeline(class_weight), grid,
                          scoring=Objective.named(objective).scorer, cv=splits)
    search.fit(features, labels)
    chosen = search.best_params_.get("logisticregression__class_weight", class_weight)
    return ProbeFit(search.best_estimator_, float(search.best_params_["logisticregression__C"]),
                    float(search.best_score_), chosen), search


def head_weights(fit: ProbeFit, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """The fitted probe as a softmax head's (kernel (features, classes), bias) on raw features:
    the standardisation folded in, so that ``softmax(x @ kernel + bias)`` gives the probe's
    probabilities. A two-class probe has one logit z; the head's logits (-z/2, z/2) give the
    same softmax. Classes absent from training have no logit in the probe: theirs is -inf-like
    (a large negative bias) so the head never predicts them, as the probe never does."""
    scaler, logistic = fit.model.steps[0][1], fit.model.steps[1][1]  # type: ignore[attr-defined]
    coef = logistic.coef_ / scaler.scale_
    intercept = logistic.intercept_ - coef @ scaler.mean_
    if coef.shape[0] == 1:  # binary
        coef, intercept = np.vstack([-coef / 2, coef / 2]), np.array([-intercept[0] / 2,
                                                                       intercept[0] / 2])
    kernel = np.zeros((coef.shape[1], n_classes), dtype=np.float32)
    bias = np.full(n_classes, -30.0, dtype=np.float32)
    seen = logistic.classes_.astype(int)
    kernel[:, seen], bias[seen] = coef.T, intercept
    return kernel, bias
