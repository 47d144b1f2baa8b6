"""The baseline every study records: a linear probe on frozen pooled backbone features.

A logistic regression on standardised features, its regularisation chosen by stratified
cross-validation on the training images only (validation and test never choose it), scored by the
study's objective. It is the simplest thing that works, so a fine-tuning sweep has to beat it to
earn its cost. scikit-learn only; the features come from the warm models' cache.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tlsweep.measures import Objective

C_GRID = np.logspace(-4, 2, 13)  # inverse regularisation strengths tried
CV_FOLDS = 5


@dataclass(frozen=True)
class ProbeFit:
    model: object  # a fitted sklearn Pipeline
    c: float
    cv_score: float  # mean cross-validated objective on the training images at ``c``

    def predict(self, features: np.ndarray) -> np.ndarray:
        return self.model.predict(features)  # type: ignore[attr-defined]




def fit_probe(features: np.ndarray, labels: np.ndarray, objective: str, seed: int,
              class_weight: dict[int, float] | None = None) -> ProbeFit:
    """Fit on training features; C by ``CV_FOLDS``-fold stratified CV (fewer folds when the
    smallest class is smaller than that). ``class_weight``: per-class loss weights (a trial's
    class weighting), none for the study's baseline."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV, StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    folds = int(min(CV_FOLDS, np.bincount(labels).min()))
    pipeline = make_pipeline(StandardScaler(),
                             LogisticRegression(max_iter=3000, class_weight=class_weight))
    if folds < 2:  # a class of one image: no CV possible, the middle of the grid
        pipeline.set_params(logisticregression__C=1.0).fit(features, labels)
        return ProbeFit(pipeline, 1.0, float("nan"))
    search = GridSearchCV(pipeline, {"logisticregression__C": C_GRID},
                          scoring=Objective.named(objective).scorer,
                          cv=StratifiedKFold(folds, shuffle=True, random_state=seed))
    search.fit(features, labels)
    return ProbeFit(search.best_estimator_, float(search.best_params_["logisticregression__C"]),
                    float(search.best_score_))


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
