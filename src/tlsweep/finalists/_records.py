"""What the finalists' stage found, as frozen records: each finalist's cross-validation and
test, each backbone's linear-probe baseline, the delivered model, and the report that holds
them. They are stored in the study as plain values (``_recorded``), read back into these types,
and read by no other package as a dict. No TensorFlow.

Every score is kept as a confusion matrix, so that intervals are computed where the numbers
are shown, with one method each (``measures``).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any

from tlsweep.measures import Headline
from tlsweep.system import Record

Confusion = list[list[int]]

# How the delivered model was made (``DeliveredModel.kind``), in words.
MADE = {"refit": "refit on train+val", "best_fold": "the best fold's model",
        "ensemble": "the average of its fold models (together trained on train+val)",
        "kept": "the trial's kept model (best epoch)", "none": "no model kept",
        "probe": "the linear probe on frozen features, refit on train+val"}


def _known(cls: type, data: dict[str, Any]) -> dict[str, Any]:
    """``data``'s entries that are fields of ``cls``: a report written by another version
    may carry more (or fewer, which take their defaults)."""
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in data.items() if k in names}


def _headline(data: dict[str, Any] | None) -> Headline | None:
    return Headline.from_dict(data) if data else None


@dataclass(frozen=True)
class FoldResult(Record):
    """One finalist's recipe trained on one fold and scored on its held-out images, recorded
    in the study as it lands (``_recorded.record_fold``), so that a resumed stage trains only
    the folds not yet recorded. ``key`` ties it to the recipe and the fold's images: a record
    whose key differs from the job's is not reused."""

    trial: int
    index: int  # 0-based
    key: str
    predicted: list[int]  # a class index per held-out image, in the fold's order
    seconds: float
    worker: str  # who trained it: host and process
    started_at: str  # ISO time
    # The process that claimed it (``FoldClaim.by``): run, resume or a tlsweep worker.
    claimed_by: str = ""

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FoldResult:
        return cls(**_known(cls, data))


@dataclass(frozen=True)
class FoldClaim(Record):
    """A process's claim on one fold (``_recorded.claim_fold``): ``by`` names the process
    (host and pid), ``at`` when it was taken or last renewed (seconds since the epoch, which
    machines share), ``key`` the fold's recipe and images (``FoldResult.key``)."""

    trial: int
    index: int
    key: str
    by: str
    at: float

    def renewed(self, now: float) -> FoldClaim:
        return replace(self, at=now)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FoldClaim:
        return cls(**_known(cls, data))


@dataclass(frozen=True)
class FinalistResult(Record):
    trial: int
    value: float  # the search's best value
    epochs: int
    anchor: bool = False
    cv_confusion: Confusion | None = None
    cv_predicted: list[int] | None = None  # out-of-fold, in train+val's order
    fold_scores: list[float] = field(default_factory=list)
    test_confusion: Confusion | None = None  # its kept model's, when one was kept

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FinalistResult:
        return cls(**_known(cls, data))


@dataclass(frozen=True)
class BaselineResult(Record):
    """The linear probe on one backbone's frozen features: fitted on train (C and class
    weighting by cross-validation there), scored on validation; on the finalists' folds; and
    on test, refit on train+val when the delivered model learnt from all of it."""

    backbone: str
    c: float
    cv_score: float
    class_weight: str
    val_confusion: Confusion
    test_confusion: Confusion | None
    test_trained_on: str  # "train" or "train+val"
    test_c: float
    test_class_weight: str
    cv_confusion: Confusion | None = None
    cv_predicted: list[int] | None = None
    headline: Headline | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BaselineResult:
        known = _known(cls, data)
        return cls(**{**known, "headline": _headline(known.get("headline"))})

    def note(self) -> str:
        note = (f"linear probe on frozen features, C={self.c:.3g}, class weighting "
                f"{self.class_weight} chosen by cross-validation on train")
        if self.test_trained_on == "train+val":  # the images the delivered model learnt
            note += (f"; test: refit on train+val, the images the delivered model learnt "
                     f"from (C={self.test_c:.3g} by cross-validation there)")
        return note


@dataclass(frozen=True)
class DeliveredModel(Record):
    """The model the user gets: a finalist's (``trial``) or the probe on ``backbone``
    (``trial`` None), how it was made, where it is, its test and its one headline estimate."""

    trial: int | None
    backbone: str
    kind: str  # a key of MADE
    path: str | None
    test_confusion: Confusion | None = None
    headline: Headline | None = None
    seconds: float = 0.0  # making it: the refit's training, the probe's fit, a copy

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DeliveredModel:
        known = _known(cls, data)
        return cls(**{**known, "headline": _headline(known.get("headline"))})

    @property
    def is_probe(self) -> bool:
        return self.kind == "probe"


@dataclass(frozen=True)
class SplitSizes(Record):
    train: int
    val: int
    test: int


@dataclass(frozen=True)
class FinalReport(Record):
    """The finalists' stage's answer, as stored in the study."""

    objective: str
    reevaluated: bool
    method: str | None  # how the finalists were cross-validated, in words
    baselines: list[BaselineResult]
    finalists: list[FinalistResult]
    chosen: int | None  # the chosen finalist's trial; None when the probe was delivered
    choice: str | None  # why, in words
    delivered: DeliveredModel
    n: SplitSizes
    seconds: float = 0.0  # the whole stage, start-up included, as the orchestrator saw it
    # Inside the stage's process: probes, folds, kept_models_test, delivery (refit and test).
    phase_seconds: dict[str, float] = field(default_factory=dict)
    cut: list[int] = field(default_factory=list)  # finalists the budget left uncross-validated

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FinalReport:
        known = _known(cls, data)
        return cls(**{
            **known,
            # "baseline": its name before the report was typed (studies run before issue 37).
            "baselines": [BaselineResult.from_dict(b)
                          for b in data.get("baselines", data.get("baseline", []))],
            "finalists": [FinalistResult.from_dict(f) for f in known.get("finalists", [])],
            "delivered": DeliveredModel.from_dict(known["delivered"]),
            "n": SplitSizes(**known["n"])})

    def timed(self, seconds: float) -> FinalReport:
        return replace(self, seconds=seconds)

    def finalist(self, trial: int | None) -> FinalistResult | None:
        return next((f for f in self.finalists if f.trial == trial), None)

    def baseline(self, backbone: str) -> BaselineResult | None:
        return next((b for b in self.baselines if b.backbone == backbone), None)

    def probe_headline(self) -> Headline | None:
        """The probe's headline on the delivered model's backbone, on the same images; None
        when the delivered model is that probe."""
        if self.delivered.is_probe:
            return None
        probe = self.baseline(self.delivered.backbone)
        return probe.headline if probe else None

    def delivered_sentence(self) -> str:
        """The delivered model in a sentence, for Optuna's tools and anyone reading the study
        without tlsweep."""
        what = (f"the linear probe on {self.delivered.backbone}" if self.delivered.is_probe
                else f"trial {self.delivered.trial}'s recipe on {self.delivered.backbone}, "
                     f"{MADE.get(self.delivered.kind)}")
        estimate = (f"; {self.delivered.headline.text()}" if self.delivered.headline else "")
        return f"tlsweep delivered {what}{estimate}. Why: {self.choice or 'the top trial'}."
