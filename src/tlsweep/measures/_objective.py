"""The objective a study maximises, as one object: every name derived from it (the validation
column a trial reports, the test column it is measured on, scikit-learn's scorer, the interval
method) comes from here, instead of string surgery where each is needed."""

from __future__ import annotations

from dataclasses import dataclass

METRICS = ("accuracy", "balanced_accuracy")


@dataclass(frozen=True)
class Objective:
    metric: str  # one of METRICS

    def __post_init__(self) -> None:
        if self.metric not in METRICS:
            raise ValueError(f"no objective metric {self.metric!r}; use one of {METRICS}")

    @classmethod
    def named(cls, name: str) -> Objective:
        """From the sweep file's ``objective`` (``val_accuracy``), a column (``test_...``) or a
        bare metric name."""
        return cls(name.removeprefix("val_").removeprefix("test_"))

    @property
    def name(self) -> str:
        """The study's objective: the metric on the validation images."""
        return f"val_{self.metric}"

    @property
    def test_column(self) -> str:
        return f"test_{self.metric}"

    @property
    def balanced(self) -> bool:
        return self.metric == "balanced_accuracy"

    @property
    def scorer(self) -> str:
        """scikit-learn's scorer of the same metric (it uses the same names)."""
        return self.metric
