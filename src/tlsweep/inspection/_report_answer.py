"""The report's first section: the answer, in plain words, before any plot or table.

Which model the user gets, its one headline estimate with its interval and the interval's
method, and the baseline, the linear probe on the same backbone's frozen features, with the
gap between them on the same images: the three facts a reader came for, read from the
finalists' report (``tlsweep.finalists.FinalReport``) rather than from the leaderboard's rows,
whose 40 columns and long notes buried them. No TensorFlow.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any

import numpy as np

from tlsweep.errors import ConfigError
from tlsweep.finalists import MADE, BaselineResult, FinalReport
from tlsweep.inspection._report_plots import delivered_name
from tlsweep.inspection._view import StudyView
from tlsweep.measures import BRODERSEN, WILSON, Estimate, Objective, estimate

DASH = "–"  # a missing value, never <NA>


def _span(found: Any) -> str:
    return f"{found.value:.3f} [{found.low:.3f}{DASH}{found.high:.3f}]"


def _metric_words(objective: str) -> str:
    return Objective.named(objective).metric.replace("_", " ")


def _score(confusion: Any, objective: str) -> Estimate | None:
    return None if confusion is None else estimate(np.asarray(confusion), objective)


def _probe_words(probe: BaselineResult) -> str:
    return (f"the linear probe on {probe.backbone}'s frozen features (a logistic regression, "
            f"C={probe.c:.3g}, class weighting {probe.class_weight}, both chosen by "
            f"cross-validation on train)")


@dataclass(frozen=True)
class Gap:
    """The delivered model (or, when the probe is delivered, the best fine-tuned finalist)
    against the probe, each scored on the same images (``where``)."""

    model: str
    mine: Any  # an Estimate or a Headline: value, low, high
    probe: Any
    where: str

    @property
    def gap(self) -> float:
        return float(self.mine.value - self.probe.value)

    def words(self) -> str:
        points = abs(self.gap) * 100
        if points < 0.05:
            return "the same"
        return f"{points:.1f} points {'higher' if self.gap > 0 else 'lower'} ({self.gap:+.3f})"


def _cv_or_test(model: str, mine: Any, probe: BaselineResult, objective: str,
                n_test: int) -> Gap | None:
    """The two on cross-validation's out-of-fold images when both have them (the images the
    choice was made on), else on the test split."""
    cv = _score(mine.cv_confusion, objective), _score(probe.cv_confusion, objective)
    if None not in cv:
        return Gap(model, cv[0], cv[1], f"the same {cv[0].n} out-of-fold images of the "
                                        f"finalists' cross-validation")
    test = _score(mine.test_confusion, objective), _score(probe.test_confusion, objective)
    if None not in test:
        return Gap(model, test[0], test[1], f"the same {n_test} test images")
    return None


def baseline_gap(final: FinalReport) -> tuple[BaselineResult | None, Gap | None]:
    """(the probe on the delivered model's backbone, or None; how far apart they are)."""
    delivered = final.delivered
    probe = final.baseline(delivered.backbone) or (final.baselines[0] if final.baselines
                                                   else None)
    if probe is None:
        return None, None
    if delivered.is_probe:
        # The probe is the answer: what it beat is the best fine-tuned finalist.
        scored = [(f, _score(f.cv_confusion, final.objective)) for f in final.finalists]
        scored = [(f, s) for f, s in scored if s is not None] or [
            (f, _score(f.test_confusion, final.objective)) for f in final.finalists
            if f.test_confusion is not None]
        if not scored:
            return probe, None
        best = max(scored, key=lambda pair: pair[1].value)[0]
        return probe, _cv_or_test(f"trial {best.trial}, the best fine-tuned finalist,", best,
                                  probe, final.objective, final.n.test)
    if delivered.headline is not None and probe.headline is not None:
        return probe, Gap("the delivered model", delivered.headline, probe.headline,
                          f"the same {delivered.headline.n} images")
    finalist = final.finalist(delivered.trial)
    if finalist is None:
        return probe, None
    return probe, _cv_or_test("the delivered model's recipe", finalist, probe, final.objective,
                              final.n.test)


# ----------------------------------------------------------------------------- html
def _recipe(view: StudyView, trial: int | None) -> str:
    if trial is None:
        return ""
    try:
        params = view.trial(trial).params
    except ConfigError:  # a report must not fail on a trial missing from storage
        return ""
    shown = ", ".join(f"{name} {value:.3g}" if isinstance(value, float) else f"{name} {value}"
                      for name, value in params.items())
    return f'<p id="answer-recipe" class="small">Recipe: {html.escape(shown)}.</p>'


def _delivered_html(final: FinalReport, view: StudyView) -> str:
    delivered = final.delivered
    where = f", saved at <code>{html.escape(delivered.path)}</code>" if delivered.path else ""
    if delivered.is_probe:
        probe = final.baseline(delivered.backbone)
        fitted = "refit on train+val" if probe is None or probe.test_trained_on == "train+val" \
            else f"fitted on {probe.test_trained_on}"
        how = f"a logistic regression on its frozen features, {fitted}"
    else:
        how = MADE.get(delivered.kind, delivered.kind)
    return (f'<p id="answer-delivered" class="lead">tlsweep delivers '
            f"<strong>{html.escape(delivered_name(final))}</strong>: "
            f"{html.escape(how)}{where}.</p>{_recipe(view, delivered.trial)}")


def _headline_html(final: FinalReport) -> str:
    headline = final.delivered.headline
    if headline is None:
        return ('<p id="answer-estimate">No headline estimate: the finalists\' stage scored '
                'the delivered model on neither cross-validation folds nor a test split.</p>')
    test = _score(final.delivered.test_confusion, final.objective)
    alone = (f" On the test split alone ({test.n} images): {_span(test)}." if test is not None
             and test.n != headline.n else "")
    return (f'<p id="answer-estimate">Its estimate: <strong class="figure">'
            f"{html.escape(headline.metric.replace('_', ' '))} {headline.value:.3f}</strong>, "
            f"95% interval <strong>{headline.low:.3f}{DASH}{headline.high:.3f}</strong> "
            f"({html.escape(headline.interval)}), on {headline.n} images: "
            f"{html.escape(headline.source)}.{html.escape(alone)}</p>")


def _baseline_html(final: FinalReport) -> str:
    probe, gap = baseline_gap(final)
    if probe is None:
        return ('<p id="answer-baseline">No baseline: the finalists\' stage fitted no linear '
                'probe for this study.</p>')
    metric = _metric_words(final.objective)
    if final.delivered.is_probe:
        text = (f"the delivered model is the baseline itself, {_probe_words(probe)}: the "
                f"fine-tuned finalist put up against it did not lead it clearly enough to pay "
                f"for fine-tuning (why, below).")
        if gap is not None:
            text += (f" On {gap.where}, {gap.model} scored {metric} {_span(gap.mine)}, "
                     f"{gap.words()} than the probe's {_span(gap.probe)}.")
    else:
        text = f"{_probe_words(probe)}."
        if gap is not None:
            text += (f" On {gap.where} it scores {metric} {_span(gap.probe)}; "
                     f"{gap.model} scores {gap.words()}.")
        else:
            text += " It was not scored on the same images as the delivered model."
    return f'<p id="answer-baseline">Baseline: {html.escape(text)}</p>'


def _candidates_html(final: FinalReport) -> str:
    """Each finalist and each probe, scored on cross-validation and test: the figures the
    choice was made on, one row each, so that the answer's sentences can be checked."""
    objective = final.objective
    rows = []
    delivered = final.delivered
    for finalist in final.finalists:
        tags = [t for t, on in (("anchor recipe", finalist.anchor),
                                ("delivered recipe", finalist.trial == delivered.trial
                                 and not delivered.is_probe)) if on]
        rows.append((f"trial {finalist.trial}", tags, finalist.cv_confusion,
                     finalist.test_confusion, "kept model, trained on train"))
    for probe in final.baselines:
        is_delivered = delivered.is_probe and probe.backbone == delivered.backbone
        rows.append((f"linear probe on {probe.backbone}",
                     ["baseline", *(["delivered"] if is_delivered else [])],
                     probe.cv_confusion, probe.test_confusion,
                     f"trained on {probe.test_trained_on}"))
    scored = [(name, tags, _score(cv, objective), _score(test, objective), trained)
              for name, tags, cv, test, trained in rows]
    # A column that no row has (no cross-validation, or no test split) is left out.
    cv_n = next((cv.n for _, _, cv, _, _ in scored if cv is not None), None)
    has_test = any(test is not None for _, _, _, test, _ in scored)
    body = []
    for name, tags, cv, test, trained in scored:
        label = html.escape(name) + "".join(f' <span class="tag">{html.escape(t)}</span>'
                                            for t in tags)
        cells = [f'<td class="name">{label}</td>']
        if cv_n is not None:
            cells.append(f"<td>{_span(cv) if cv else DASH}</td>")
        if has_test:
            cells.append(f'<td>{_span(test)} <span class="small">({html.escape(trained)})'
                         f"</span></td>" if test else f"<td>{DASH}</td>")
        marked = ' class="delivered"' if any(t.startswith("delivered") for t in tags) else ""
        body.append(f"<tr{marked}>{''.join(cells)}</tr>")
    heads = ['<th class="name">model</th>']
    if cv_n is not None:
        heads.append(f"<th>cross-validated ({cv_n} out-of-fold images)</th>")
    if has_test:
        heads.append(f"<th>test ({final.n.test} images)</th>")
    method = BRODERSEN if Objective.named(objective).balanced else WILSON
    return (f'<table id="candidates"><caption>The finalists and the baseline: '
            f"{html.escape(_metric_words(objective))} with its 95% interval "
            f"({html.escape(method)})</caption><thead><tr>{''.join(heads)}</tr></thead>"
            f"<tbody>{''.join(body)}</tbody></table>")


def _no_stage_html(view: StudyView) -> str:
    best = view.best_trial_number()
    text = ("No finalists' stage has run for this study, so no model has been delivered yet "
            "(it runs at the end of <code>tlsweep run</code>; <code>tlsweep resume</code> "
            "finishes it).")
    if best is not None:
        row = view.complete.set_index("trial").loc[best]
        count = len(view.complete)
        text += html.escape(
            f" The best trial so far is trial {best}: {view.objective} {row['value']:.3f} on "
            f"validation, " + ("the only complete trial's score, not yet checked on any other "
                               "image." if count == 1 else
                               f"the best of {count} complete trials' noisy scores, so an "
                               f"optimistic figure."))
    return f'<p id="answer-delivered" class="lead">{text}</p>'


def answer_html(final: FinalReport | None, view: StudyView, figure: str = "") -> str:
    """The answer section; ``figure``: the delivered model's confusion matrix, as HTML."""
    if final is None:
        inner = _no_stage_html(view)
    else:
        why = html.escape(final.choice or "the top trial")
        inner = (_delivered_html(final, view) + _headline_html(final) + _baseline_html(final)
                 + f'<p id="answer-why">Why this model: {why}.</p>' + _candidates_html(final))
    return f'<section id="answer"><h2>The answer</h2>{inner}{figure}</section>'
