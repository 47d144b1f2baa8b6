"""The baseline every study records: a linear probe on frozen pooled backbone features.

A logistic regression on standardised features, its regularisation chosen by stratified
cross-validation on the training images only (validation and test never choose it), scored by the
study's objective. It is the simplest thing that works, so a fine-tuning sweep has to beat it to
earn its cost. scikit-learn only; the features come from the warm models' cache.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

C_GRID = np.logspace(-4, 2, 13)  # inverse regularisation strengths tried
CV_FOLDS = 5


@dataclass(frozen=True)
class ProbeFit:
    model: object  # a fitted sklearn Pipeline
    c: float
    cv_score: float  # mean cross-validated objective on the training images at ``c``

    def predict(self, features: np.ndarray) -> np.ndarray:
        return self.model.predict(features)  # type: ignore[attr-defined]


def _scoring(objective: str) -> str:
    return "balanced_accuracy" if objective.endswith("balanced_accuracy") else "accuracy"


def fit_probe(features: np.ndarray, labels: np.ndarray, objective: str, seed: int) -> ProbeFit:
    """Fit on training features; C by ``CV_FOLDS``-fold stratified CV (fewer folds when the
    smallest class is smaller than that)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV, StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    folds = int(min(CV_FOLDS, np.bincount(labels).min()))
    pipeline = make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000))
    if folds < 2:  # a class of one image: no CV possible, the middle of the grid
        pipeline.set_params(logisticregression__C=1.0).fit(features, labels)
        return ProbeFit(pipeline, 1.0, float("nan"))
    search = GridSearchCV(pipeline, {"logisticregression__C": C_GRID},
                          scoring=_scoring(objective),
                          cv=StratifiedKFold(folds, shuffle=True, random_state=seed))
    search.fit(features, labels)
    return ProbeFit(search.best_estimator_, float(search.best_params_["logisticregression__C"]),
                    float(search.best_score_))
