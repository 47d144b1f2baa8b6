"""The linear-probe side of the finalists' stage: the baseline per backbone, fitted on train (its
validation score), cross-validated on the finalists' folds, and tested; and, when it leads the
chosen finalist clearly on those folds (``finalists.probe_competes``, ``_choice``), the probe
itself delivered as a Keras model. ``_run.FinalRun`` holds one, and hands it the stage's data,
pool and folds."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tlsweep.finalists._protocol import FinalTask
from tlsweep.finalists._records import BaselineResult

Folds = list[tuple[np.ndarray, np.ndarray]]

PROBE = "probe"  # how the delivered model was made when the probe beat every finalist
# What these deliver learnt from every train+val image, so its baseline is the probe fitted there.
TRAINED_ON_ALL = ("refit", "ensemble")


def _confusion(labels: np.ndarray, predicted: np.ndarray, n_classes: int) -> list[list[int]]:
    from tlsweep.training import confusion_matrix

    return confusion_matrix(np.asarray(labels), np.asarray(predicted), n_classes).tolist()


@dataclass
class Baselines:
    """The probes of one stage: ``say`` prints a progress line, ``folds`` splits train+val's
    labels into the finalists' folds."""

    task: FinalTask
    data: Any  # datasets.Dataset
    pool: Any  # training.ModelPool
    say: Callable[[str], None]
    folds: Callable[[np.ndarray], Folds]
    # The probe refit on train+val, by backbone: fitted once, for the baseline's test and for
    # delivery alike.
    refit_probes: dict[str, Any] = field(default_factory=dict)

    @property
    def config(self) -> Any:
        return self.task.spec.sweep.config

    @property
    def objective(self) -> str:
        return self.config.objective

    def fit(self) -> list[BaselineResult]:
        """A probe per backbone: fitted on train (its validation score), and, cross-validated,
        on the finalists' folds of train+val (``_probe.cross_validate_probe``): that one search
        chooses C and the class weighting for the folds' out-of-fold predictions and for the
        probe refit on train+val, which is tested when the delivered model is a refit on
        train+val too, so that both are tested after training on the same images (a probe on
        train alone would give the refit 25-50% more data to win by), and delivered when the
        probe is."""
        from tlsweep.training import fit_baseline

        rows = []
        for name in self.task.spec.backbones:
            self.say(f"baseline: linear probe on {name}'s frozen features")
            _, features = self._frozen(name)
            fit = fit_baseline(features["train"], self.data.y_train, self.objective,
                               self.config.seed)
            cv_confusion, cv_predicted = self._probe_cv(name, features) \
                if self.task.reevaluate else (None, None)
            rows.append(BaselineResult(backbone=name, **self._probe(name, features, fit),
                                       cv_confusion=cv_confusion, cv_predicted=cv_predicted))
        return rows

    def _frozen(self, name: str) -> tuple[Any, dict[str, np.ndarray]]:
        """(the warm models of backbone ``name``, reset to its loaded weights; their frozen
        features of each split)."""
        from tlsweep.training import Structure, frozen_features
        from tlsweep.training.backbones import preprocessor

        backbone = self.task.spec.backbones[name]
        structure = Structure(backbone, self.config.data.image_size, self.data.n_classes,
                              self.config.training.dropout)
        warm, _ = self.pool.get(structure, self.config.seed)
        warm.reset(self.config.seed)
        preprocess = preprocessor(backbone)
        return warm, {split: frozen_features(warm, x, preprocess) for split, x in
                      (("train", self.data.x_train), ("val", self.data.x_val),
                       ("test", self.data.x_test)) if x is not None and len(x)}

    def deliver_probe(self, name: str, target: Path) -> tuple[str, Path]:
        """The probe on ``name``'s frozen features, refit on train+val, as a Keras model: the
        backbone and a softmax head holding the probe's weights (``_probe.head_weights``)."""
        from tlsweep.training import head_weights

        warm, features = self._frozen(name)
        kernel, bias = head_weights(self._refit_probe(name, features), self.data.n_classes)
        head = warm.model.get_layer("head")
        head.kernel.assign(kernel)
        head.bias.assign(bias)
        warm.model.save(target)
        return PROBE, target

    def _train_and_val_features(self, features: dict[str, np.ndarray]) -> tuple[np.ndarray,
                                                                                 np.ndarray]:
        """Features and labels of train+val, in ``train_and_val``'s order (the folds' order)."""
        return (np.concatenate([features["train"], features["val"]]),
                np.concatenate([self.data.y_train, self.data.y_val]))

    def _probe_cv(self, name: str, features: dict[str, np.ndarray]) -> tuple[list[list[int]],
                                                                               list[int]]:
        """The probe cross-validated on the finalists' folds, so that fine-tuning's estimate
        has its baseline on the same images, test set or none: (the pooled out-of-fold
        confusion, the out-of-fold predictions in train+val's order). Its refit on train+val
        is kept for the test and for delivery."""
        from tlsweep.training import cross_validate_probe

        x, y = self._train_and_val_features(features)
        refit, out_of_fold = cross_validate_probe(x, y, self.objective, self.folds(y))
        self.refit_probes[name] = refit
        return _confusion(y, out_of_fold, self.data.n_classes), out_of_fold.tolist()

    def _refit_probe(self, name: str, features: dict[str, np.ndarray]) -> Any:
        """The probe on backbone ``name``'s features, fitted on train+val (once: by
        ``_probe_cv`` when the stage cross-validates)."""
        from tlsweep.training import fit_baseline

        if name not in self.refit_probes:
            self.refit_probes[name] = fit_baseline(*self._train_and_val_features(features),
                                                   self.objective, self.config.seed)
        return self.refit_probes[name]

    def _probe(self, name: str, features: dict[str, np.ndarray], probe: Any) -> dict[str, Any]:
        tested, trained_on = probe, "train"
        if self.task.reevaluate and self.task.deliver in TRAINED_ON_ALL and "test" in features:
            tested = self._refit_probe(name, features)
            trained_on = "train+val"
        test = features.get("test")
        return {"c": probe.c, "cv_score": probe.cv_score,
                "val_confusion": _confusion(self.data.y_val, probe.predict(features["val"]),
                                            self.data.n_classes),
                "test_confusion": None if test is None else _confusion(
                    self.data.y_test, tested.predict(test), self.data.n_classes),
                "test_trained_on": trained_on, "test_c": tested.c,
                "class_weight": probe.weighting, "test_class_weight": tested.weighting}
