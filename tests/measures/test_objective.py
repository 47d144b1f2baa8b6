"""One Objective: every name derived from the sweep file's ``objective``."""

from __future__ import annotations

import numpy as np
import pytest

from tlsweep.measures import Objective, estimate


@pytest.mark.parametrize("name, metric, test_column, balanced", [
    ("val_accuracy", "accuracy", "test_accuracy", False),
    ("val_balanced_accuracy", "balanced_accuracy", "test_balanced_accuracy", True),
    ("test_balanced_accuracy", "balanced_accuracy", "test_balanced_accuracy", True),
    ("accuracy", "accuracy", "test_accuracy", False),
])
def test_names_derived_from_the_objective(name: str, metric: str, test_column: str,
                                          balanced: bool) -> None:
    objective = Objective.named(name)
    assert (objective.metric, objective.test_column, objective.balanced) == (
        metric, test_column, balanced)
    assert objective.name == f"val_{metric}" and objective.scorer == metric


def test_an_unknown_metric_is_refused() -> None:
    with pytest.raises(ValueError, match="f1"):
        Objective.named("val_f1")


def test_the_interval_method_follows_the_objective() -> None:
    # 90 of class 0 right, 0 of 10 of class 1: accuracy 0.9, balanced accuracy 0.5
    confusion = np.array([[90, 0], [10, 0]])
    assert estimate(confusion, "val_accuracy").value == pytest.approx(0.9)
    assert estimate(confusion, "val_balanced_accuracy").value == pytest.approx(0.5)
