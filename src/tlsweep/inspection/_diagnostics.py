"""Why is validation accuracy low? Statements derived from the study's own numbers.

Each finding names the numbers it rests on, so a reader can check it. Thresholds are stated in the
text rather than hidden.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise

import numpy as np
import pandas as pd

from tlsweep.inspection._importance import edge
from tlsweep.inspection._view import StudyView
from tlsweep.measures import Objective, headline_text

OVERFIT_GAP = 0.20
IMBALANCE_RATIO = 3.0
CHANCE_MARGIN = 0.10


@dataclass(frozen=True)
class Finding:
    topic: str
    level: str  # "problem", "note" or "ok"
    text: str


def overfitting(view: StudyView) -> Finding | None:
    best = view.best_trial_number()
    if best is None:
        return None
    row = view.leaderboard.set_index("trial").loc[best]
    gap = float(row["gap"])
    numbers = (f"best trial {best}: train accuracy {row['train_accuracy']:.3f}, validation "
               f"{row['val_accuracy']:.3f} at epoch {row['best_epoch']} (gap {gap:+.3f}; "
               f"threshold {OVERFIT_GAP:.2f})")
    if gap > OVERFIT_GAP:
        return Finding("overfitting", "problem",
                       f"Overfitting: {numbers}. Try stronger augmentation, more dropout or a "
                       f"shallower unfreeze depth.")
    return Finding("overfitting", "ok", f"No large train-validation gap: {numbers}.")


def _weighting_effect(view: StudyView) -> str:
    """Over complete and pruned trials alike, compared at one step (``StudyView.comparable``):
    complete trials alone are often two or three."""
    trials, step = view.comparable()
    groups = trials.groupby("class_weighting")["value"].agg(["mean", "count"])
    if len(groups) < 2:
        return "Class weighting was not varied across the trials that reached a common step."
    parts = [f"{mode} {row['mean']:.3f} (n={int(row['count'])})" for mode, row in
             groups.iterrows()]
    baseline = groups["mean"].get("none")
    best_mode = groups["mean"].idxmax()
    verdict = ""
    if baseline is not None and best_mode != "none":
        verdict = f"; {best_mode} beat none by {groups['mean'][best_mode] - baseline:+.3f}"
    elif best_mode == "none":
        verdict = "; weighting did not help"
    return (f"Mean value by class weighting, each trial's best up to step {step} (complete and "
            f"pruned trials): {', '.join(parts)}{verdict}.")


def imbalance(view: StudyView) -> Finding | None:
    counts = (view.attrs.get("class_counts") or {}).get("train")
    names = view.attrs.get("class_names")
    best = view.best_trial_number()
    if not counts or not names or best is None:
        return None
    counts = np.asarray(counts)
    ratio = counts.max() / max(counts.min(), 1)
    largest, smallest = names[int(counts.argmax())], names[int(counts.argmin())]
    metrics = view.class_metrics(best)
    worst = ""
    if metrics is not None:
        name, recall = metrics.worst()
        worst = f" Worst class recall at the best trial ({best}): {name} {recall:.3f}."
    text = (f"class {largest!r} has {counts.max()} training images, {smallest!r} {counts.min()} "
            f"(ratio {ratio:.1f}; threshold {IMBALANCE_RATIO:.0f}).{worst} "
            f"{_weighting_effect(view)}")
    if ratio >= IMBALANCE_RATIO:
        return Finding("class imbalance", "problem", "Class imbalance: " + text)
    return Finding("class imbalance", "ok", "Classes are roughly balanced: " + text)


def finetune_gain(view: StudyView) -> Finding | None:
    if view.curves.empty:
        return None
    curves = view.curves[view.curves["trial"].isin(view.complete["trial"])]
    best = curves.groupby(["trial", "phase"])["val_accuracy"].max().unstack()
    if "finetune" not in best or "head" not in best:
        return Finding("fine-tuning", "note", "No complete trial ran phase 2 (fine-tuning).")
    gain = (best["finetune"] - best["head"]).dropna().rename("gain").to_frame()
    depth = view.complete.set_index("trial")["unfreeze_depth"]
    edges = [0, 0.2, 0.4, 0.6, 0.8, 1.0]
    gain["depth"] = pd.cut(depth.reindex(gain.index), edges, include_lowest=True,
                           labels=[f"{a:.1f}-{b:.1f}" for a, b in pairwise(edges)])
    table = gain.groupby("depth", observed=True)["gain"].agg(["mean", "count"])
    parts = [f"depth {interval}: {row['mean']:+.3f} (n={int(row['count'])})"
             for interval, row in table.iterrows()]
    level = "problem" if (table["mean"] < 0).all() else "ok"
    return Finding("fine-tuning", level, "Phase-2 gain in best validation accuracy over phase 1, "
                   f"by unfreeze depth: {'; '.join(parts)}.")


def learning_rate_edges(view: StudyView) -> Finding | None:
    best = view.best_trial_number()
    if best is None:
        return None
    trial = view.trial(best)
    hits = []
    for param in ("head_lr", "finetune_lr"):
        if param in trial.params:
            where = edge(trial.params[param], trial.distributions[param])
            if where:
                d = trial.distributions[param]
                hits.append(f"{param} = {trial.params[param]:.3g} sits at the {where} edge of "
                            f"[{d.low:.3g}, {d.high:.3g}]: widen the range {where}er")
    if hits:
        return Finding("learning rate", "problem", f"Best trial {best}: " + "; ".join(hits) + ".")
    return Finding("learning rate", "ok",
                   f"The best trial's learning rates ({best}) lie inside their ranges.")


def backbone_ranking(view: StudyView) -> Finding | None:
    complete = view.complete
    if complete.empty:
        return None
    stats = complete.groupby("backbone")["value"].agg(["mean", "std", "max", "count"])
    stats = stats.sort_values("mean", ascending=False)
    parts = [f"{name}: mean {row['mean']:.3f} ± {0 if np.isnan(row['std']) else row['std']:.3f}"
             f" (best {row['max']:.3f}, n={int(row['count'])})" for name, row in stats.iterrows()]
    return Finding("backbones", "note", "Backbones by mean value (± spread across trials): "
                   + "; ".join(parts) + ".")


def near_chance(view: StudyView) -> Finding | None:
    names = view.attrs.get("class_names") or []
    counts = (view.attrs.get("class_counts") or {}).get("val")
    finished = view.leaderboard["value"].dropna()
    if not names or finished.empty:
        return None
    chance = 1 / len(names)
    if counts and not Objective.named(view.objective).balanced:
        chance = max(chance, max(counts) / max(sum(counts), 1))  # always guessing the majority
    best = float(finished.max())
    if best > chance + CHANCE_MARGIN:
        return None
    return Finding("near chance", "problem",
                   f"Every trial is near chance: best {best:.3f} against chance {chance:.3f}. "
                   f"Likely causes: preprocessing that does not match the backbone (each needs its "
                   f"own preprocess_input, not a generic rescale); labels (check the class "
                   f"folders); BatchNorm (a pretrained backbone must keep it in inference mode, "
                   f"while weights: none must let it train).")


def _scored(row: pd.Series, metric: str) -> str:
    low, high = row[_bound(metric, "low")], row[_bound(metric, "high")]
    return f"{row[metric]:.3f} [{low:.3f}, {high:.3f}]"


def separation(view: StudyView) -> Finding | None:
    """Whether the validation set can tell the top trials apart."""
    complete = view.complete
    n_val = sum((view.attrs.get("class_counts") or {}).get("val", []))
    if complete.empty or not n_val or "tied" not in complete:
        return None
    tied = int(complete["tied"].fillna(False).sum())
    per_point = n_val / 100
    text = (f"{tied} of {len(complete)} complete trials are tied with the best: the best value "
            f"lies inside their 95% interval. On {n_val} validation images one point of "
            f"accuracy is {per_point:.2g} images (one image moves it {100 / n_val:.2g} "
            f"points).")
    if tied > 1:
        return Finding("validation size", "problem", text + " The validation set is too small "
                       "to separate them: their order is noise. Use more validation images, "
                       "or rely on the finalists' cross-validation (finalists.reevaluate).")
    return Finding("validation size", "ok", text)


def test_estimate(view: StudyView) -> Finding:
    headline = headline_text(view.meta.get("headline"), view.meta.get("baseline_headline"))
    if headline:
        return Finding("honest estimate", "ok", f"Chosen model's {headline}")
    chosen = view.reference("chosen")
    metric = Objective.named(view.objective).test_column
    if chosen.empty or metric not in chosen or chosen[metric].isna().all():
        return Finding("honest estimate", "note",
                       "No test set: the leaderboard's best value is the maximum of many noisy "
                       "validation scores, an optimistic estimate from selection. Add "
                       "data.test_dir or data.test_split to measure the chosen model.")
    row = chosen.iloc[0]
    what = "the linear probe" if pd.isna(row["trial"]) else f"trial {row['trial']}"
    return Finding("honest estimate", "ok",
                   f"Chosen model ({what}): {metric} {_scored(row, metric)} on "
                   f"held-out images, against its estimate {row['value']:.3f} "
                   f"[{row['value_low']:.3f}, {row['value_high']:.3f}] before the test.")


def _bound(metric: str, side: str) -> str:
    return f"cv_{side}" if metric == "cv_value" else f"{metric}_{side}"


def _common_measure(view: StudyView, row: pd.Series, probe: pd.Series) -> tuple[str, str]:
    """(column, where): test when both have it, else the finalists' cross-validation when
    both have it (the same folds), else validation."""
    test = Objective.named(view.objective).test_column
    if pd.notna(row.get(test)) and pd.notna(probe.get(test)):
        return test, "test"
    if pd.notna(row.get("cv_value")) and pd.notna(probe.get("cv_value")):
        return "cv_value", "the finalists' cross-validation folds"
    return view.objective, "validation"


def probe_comparison(view: StudyView) -> Finding | None:
    """Did fine-tuning beat the linear probe, and beyond the intervals?"""
    probes, chosen = view.reference("baseline"), view.reference("chosen")
    if probes.empty or chosen.empty:
        return None
    row = chosen.iloc[0]
    if pd.isna(row["trial"]):
        return Finding("baseline", "note", f"On the finalists' cross-validation folds the linear "
                       f"probe on {row['backbone']}'s frozen features was not clearly beaten: "
                       f"the chosen fine-tuned finalist did not lead it by more than "
                       f"finalists.margin_se standard errors, so the cheaper probe is the "
                       f"delivered model: fine-tuning did not earn its cost on this data. More "
                       f"images, or other backbones or ranges, may change that.")
    probe = probes[probes["backbone"] == row["backbone"]]
    probe = (probe if not probe.empty else probes).iloc[0]
    metric, where = _common_measure(view, row, probe)
    difference = row[metric] - probe[metric]
    beyond = row[_bound(metric, "low")] > probe[_bound(metric, "high")] or \
        row[_bound(metric, "high")] < probe[_bound(metric, "low")]
    verdict = "beyond" if beyond else "within"
    text = (f"On {where}, the chosen model {_scored(row, metric)} against the linear probe on "
            f"{probe['backbone']}'s frozen features {_scored(probe, metric)}: "
            f"{difference:+.3f}, {verdict} the 95% intervals.")
    if difference < 0:
        return Finding("baseline", "problem", text + " Fine-tuning did worse than a logistic "
                       "regression on frozen features: the probe is the better model here.")
    return Finding("baseline", "ok" if beyond else "note", text)


def duplicates(view: StudyView) -> Finding | None:
    report = view.attrs.get("duplicates")
    if not report or not report.get("groups"):
        return None
    groups = report["groups"]
    across = [g for g in groups if len({m["split"] for m in g["members"]}) > 1]
    dropped = {split: len(items) for split, items in (report.get("dropped") or {}).items()
               if items}
    text = (f"{len(groups)} groups of duplicate images, {len(across)} across splits; policy "
            f"{report.get('policy')!r}" + (f": {_taken_out(report.get('policy'))} {dropped}"
                                           if dropped else "") + ".")
    return Finding("duplicates", "problem" if across and not dropped else "note", text)


def _taken_out(policy: str | None) -> str:
    return "moved to training" if policy == "move" else "dropped"


CHECKS = (near_chance, test_estimate, probe_comparison, separation, duplicates, overfitting,
          imbalance, finetune_gain, learning_rate_edges, backbone_ranking)


def diagnose(view: StudyView) -> list[Finding]:
    if view.complete.empty:
        return [Finding("no result", "problem", f"Study {view.name!r} has no complete trial "
                        f"yet, so there is nothing to diagnose. `tlsweep show {view.name} N` "
                        f"gives a failed or pruned trial's reason.")]
    return [finding for check in CHECKS if (finding := check(view)) is not None]
