"""Which cross-validated candidate the finalists' stage delivers. No TensorFlow.

On a few hundred images the finalists' pooled out-of-fold scores lie within a few images of each
other, and the best of several of them is biased upward. So a default stands unless a challenger
leads it clearly: by more than ``finalists.margin_se`` standard errors of their paired gap on
the same out-of-fold images (``measures.paired_gap``). The anchor recipe, fixed before the
search saw the data, is the default among the finalists (without an anchor, the top cv score
wins). The probe, cheaper than any of them, is then the default that the finalist so chosen must
beat clearly to be delivered (``finalists.probe_competes``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from tlsweep.finalists._records import BaselineResult, FinalistResult
from tlsweep.measures import PairedGap, estimate, paired_gap

Candidate = FinalistResult | BaselineResult  # each with its pooled out-of-fold predictions


@dataclass(frozen=True)
class Choice:
    """The candidate chosen (a trial number, or a backbone for the probe) and why, in a line."""

    chosen: Any
    reason: str


def score(confusion: list[list[int]], objective: str) -> float:
    """The objective's value of a confusion matrix (the finalists' and the probe's scores)."""
    return estimate(np.asarray(confusion), objective).value


def cv_score(candidate: Candidate, objective: str) -> float:
    assert candidate.cv_confusion is not None  # only cross-validated candidates compete here
    return score(candidate.cv_confusion, objective)


def gap(challenger: Candidate, default: Candidate, labels: np.ndarray,
        objective: str, seed: int) -> PairedGap:
    return paired_gap(labels, np.asarray(challenger.cv_predicted),
                      np.asarray(default.cv_predicted), objective, seed=seed)


def _verdict(name: str, against: str, lead: PairedGap, margin: float) -> str:
    cleared = "a clear lead" if lead.clear_lead(margin) else "not a clear lead"
    return (f"{name} cross-validated {lead.gap:+.3f} ± {lead.se:.3f} (1 SE, paired) against "
            f"{against}: {cleared} at {margin:g} SE")


def choose_finalist(rows: dict[int, FinalistResult], anchor: int | None, labels: np.ndarray,
                    objective: str, margin: float, seed: int) -> Choice:
    """``rows``: each finalist's result by trial number, cross-validated (``cv_predicted``
    out-of-fold, in ``labels``' order)."""
    ranked = sorted(rows, key=lambda n: (cv_score(rows[n], objective), rows[n].value),
                    reverse=True)
    searched = [n for n in ranked if n != anchor]
    if anchor is None or anchor not in rows:
        return Choice(ranked[0], f"trial {ranked[0]}: the top cross-validated score")
    if not searched:
        return Choice(anchor, f"trial {anchor}: the anchor recipe, the only finalist")
    best = searched[0]
    lead = gap(rows[best], rows[anchor], labels, objective, seed)
    verdict = _verdict(f"trial {best}", f"the anchor recipe (trial {anchor})", lead, margin)
    winner = best if lead.clear_lead(margin) else anchor
    return Choice(winner, f"{verdict}, so trial {winner} is chosen")


def probe_challenge(baselines: list[BaselineResult], chosen: FinalistResult,
                    labels: np.ndarray, objective: str, margin: float, seed: int) -> Choice | None:
    """Whether the probe is delivered instead of the chosen finalist: a choice of the probe's
    backbone, or of None to keep the finalist, with the reason in words; None without probes.

    The probe is the cheaper model, so it is the default here: the fine-tuned finalist is
    delivered only when it leads the best probe by more than ``margin`` standard errors of
    their paired gap on the same out-of-fold images. When the data cannot tell them apart,
    the probe is as good as far as anyone can measure, and cheaper."""
    probes = [b for b in baselines if b.cv_predicted is not None]
    if not probes:
        return None
    best = max(probes, key=lambda b: cv_score(b, objective))
    lead = gap(chosen, best, labels, objective, seed)
    finalist = f"the fine-tuned finalist (trial {chosen.trial})"
    probe = f"the linear probe on {best.backbone}"
    verdict = _verdict(finalist, probe, lead, margin)
    if lead.clear_lead(margin):
        return Choice(None, f"{verdict}, so the fine-tuned model is delivered")
    why = ("the probe scored higher" if lead.gap < 0 else
           "these images cannot tell fine-tuning from the probe")
    return Choice(best.backbone, f"{verdict}: {why}, so the cheaper model, the probe, is "
                                    f"delivered")
