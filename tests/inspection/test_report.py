"""``report.html``: the answer first (delivered model, headline estimate, baseline and gap),
plots that count pruned trials, the delivered model's confusion matrix on test, no ``<NA>``,
and an answer that fits an 800-px window in Chromium. The unit tests need no TensorFlow; the
others share one real tiny study with a pruner and a finalists' stage."""

from __future__ import annotations

import html
import re
from pathlib import Path

import optuna
import pandas as pd
import pytest

from tests.conftest import run_cli, tiny_space, tiny_sweep, write_class_images, write_yaml
from tests.inspection.browser import chromium_page
from tlsweep.finalists import (
    BaselineResult,
    DeliveredModel,
    FinalistResult,
    FinalReport,
    study_report,
)
from tlsweep.finalists._records import SplitSizes
from tlsweep.inspection._html_report import cell
from tlsweep.inspection._report_answer import answer_html, baseline_gap
from tlsweep.inspection._report_plots import importance_words
from tlsweep.inspection._report_trials import trial_points
from tlsweep.measures import WILSON, Headline, estimate
from tlsweep.store._paths import sqlite_url

MISSING = ("<NA>", "&lt;NA&gt;", ">nan<", ">NaN<", ">None<")


# ----------------------------------------------------------------------------- no TensorFlow
def test_pruned_trials_count_at_their_best_up_to_the_step_they_reached() -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize")
    space = {"head_lr": optuna.distributions.FloatDistribution(1e-4, 1e-1, log=True),
             "class_weighting": optuna.distributions.CategoricalDistribution(["none"])}
    for number, (state, curve) in enumerate([
            ("COMPLETE", {0: 0.5, 1: 0.7, 2: 0.6}), ("PRUNED", {0: 0.4, 1: 0.45}),
            ("PRUNED", {0: 0.6}), ("FAIL", {})]):
        study.add_trial(optuna.trial.create_trial(
            params={"head_lr": 10 ** -(number + 1), "class_weighting": "none"},
            distributions=space, intermediate_values=curve,
            state=getattr(optuna.trial.TrialState, state),
            value=max(curve.values()) if state == "COMPLETE" else None))
    points = trial_points(study)
    frame = points.frame.set_index("trial")
    assert frame["state"].tolist() == ["complete", "pruned", "pruned"]
    assert frame["value"].tolist() == [0.7, 0.45, 0.6]
    assert frame["step"].tolist() == [2, 1, 0]
    assert list(points.distributions) == ["head_lr"]  # a fixed parameter has nothing to plot
    assert points.counts() == "3 trials: 1 complete, 2 pruned (1 failed, not drawn)"


def test_the_importance_axis_counts_complete_and_pruned_trials() -> None:
    frame = pd.DataFrame({"n_trials": [12], "n_pruned_counted": [9], "step": [5]})
    assert importance_words(frame, finished=13) == (
        "12 trials: 3 complete, 9 pruned, each at its best epoch up to step 5; "
        "1 that stopped earlier left out")
    older = pd.DataFrame({"n_trials": [7]})  # written before pruned trials counted
    assert importance_words(older, finished=7) == "7 trials"


def test_a_missing_value_is_an_en_dash() -> None:
    assert [cell(v) for v in (pd.NA, None, float("nan"), 0.12345, 3)] == [
        "–", "–", "–", "0.123", "3"]


def probe_delivered() -> FinalReport:
    """A report whose stage delivered the probe: the fine-tuned finalists did not beat it."""
    probe_cv, best_cv, other_cv = [[45, 5], [6, 44]], [[46, 4], [5, 45]], [[40, 10], [9, 41]]
    headline = Headline("accuracy", 0.9, 0.85, 0.94, 140, "pooled words", WILSON)
    return FinalReport(
        objective="val_accuracy", reevaluated=True, method="3-fold", chosen=None,
        baselines=[BaselineResult("Net", 0.01, 0.9, "balanced", [[9, 1], [1, 9]],
                                  [[18, 2], [2, 18]], "train+val", 0.01, "balanced",
                                  cv_confusion=probe_cv, headline=headline)],
        finalists=[FinalistResult(4, 0.9, 5, cv_confusion=best_cv),
                   FinalistResult(0, 0.88, 5, anchor=True, cv_confusion=other_cv)],
        choice="the probe scored within 1 SE", n=SplitSizes(80, 20, 40),
        delivered=DeliveredModel(None, "Net", "probe", None, [[18, 2], [2, 18]], headline))


def test_the_answer_when_the_probe_is_delivered_names_what_it_beat() -> None:
    final = probe_delivered()
    probe, gap = baseline_gap(final)
    assert probe is final.baselines[0]
    best, mine = estimate([[46, 4], [5, 45]], "accuracy"), estimate([[45, 5], [6, 44]],
                                                                    "accuracy")
    assert (gap.mine.value, gap.probe.value) == (best.value, mine.value)
    text = text_of(answer_html(final, view=None))
    assert "tlsweep delivers the linear probe on Net" in text
    assert "accuracy 0.900, 95% interval 0.850–0.940 (Wilson score interval)" in text
    assert "the delivered model is the baseline itself" in text
    assert (f"trial 4, the best fine-tuned finalist, scored accuracy {best.value:.3f}" in text
            and f"{(best.value - mine.value) * 100:.1f} points higher" in text)
    assert "Why this model: the probe scored within 1 SE." in text


# ----------------------------------------------------------------------------- a real study

@pytest.fixture(scope="module")
def study_dir(tmp_path_factory: pytest.TempPathFactory, tiny_backbone: Path) -> Path:
    """One tiny study for this module: a successive-halving pruner that may stop a trial from
    its first epoch, learning rates high enough that trials differ (so that some are pruned),
    a test split, and a finalists' stage that delivers a fine-tuned model and scores the
    probe on the same images. Then ``tlsweep report``."""
    root = tmp_path_factory.mktemp("report")
    data = write_class_images(root / "data", {"a": 30, "b": 30, "c": 20})
    space = write_yaml(root / "space.yaml", tiny_space(
        tiny_backbone, head_lr="{low: 0.1, high: 3.0, log: true}",
        finetune_lr="{low: 0.03, high: 1.0, log: true}"))
    sweep = write_yaml(root / "sweep.yaml", tiny_sweep(
        data, space, data=f"{{dir: {data}, val_split: 0.3, test_split: 0.2, image_size: 16}}",
        budget="{trials: 6}", sampler="{kind: random}",
        training="{head_epochs: 2, finetune_epochs: 3, batch_size: 16}",
        pruner="{kind: successive_halving, min_finetune_epochs: 0, min_resource: 1, "
               "reduction_factor: 2}",
        finalists="{k: 2, reevaluate: on, folds: 2, probe_competes: false, fold_workers: 1, "
                  "anchor: {head_epochs: 1, finetune_epochs: 2}}"))
    env = {"TLSWEEP_RESULTS": str(root / "results"), "TLSWEEP_CACHE": str(root / "cache")}
    done = run_cli("run", str(sweep), env=env, timeout=900)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    report = run_cli("report", "tiny", "--results-dir", str(root / "results"))
    assert report.returncode == 0, report.stderr[-2000:]
    return root / "results" / "tiny"


def load(directory: Path) -> optuna.Study:
    return optuna.load_study(study_name="tiny", storage=sqlite_url(directory))


def text_of(fragment: str) -> str:
    """The words a reader sees in an HTML fragment."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", "", fragment)).split())


def section(page: str, element_id: str) -> str:
    found = re.search(rf'<(\w+) id="{element_id}"[^>]*>(.*?)</\1>', page, re.DOTALL)
    assert found is not None, element_id
    return text_of(found.group(2))


@pytest.mark.slow
def test_the_answer_comes_first_with_the_delivered_model_estimate_and_baseline(
        study_dir: Path) -> None:
    page = (study_dir / "report.html").read_text(encoding="utf-8")
    final = study_report(load(study_dir))
    assert final is not None and not final.delivered.is_probe
    body = page[page.index("<body>"):]
    assert body.index('id="answer"') < body.index("Diagnostics") < body.index("Leaderboard")

    delivered = section(page, "answer-delivered")
    assert f"tlsweep delivers trial {final.delivered.trial}'s recipe on Tiny" in delivered

    headline = final.delivered.headline
    estimate_text = section(page, "answer-estimate")
    assert (f"accuracy {headline.value:.3f}, 95% interval {headline.low:.3f}–"
            f"{headline.high:.3f} ({headline.interval}), on {headline.n} images") \
        in estimate_text

    probe = final.probe_headline()
    baseline = section(page, "answer-baseline")
    assert "the linear probe on Tiny's frozen features" in baseline
    assert f"class weighting {final.baseline('Tiny').class_weight}" in baseline
    assert f"{probe.value:.3f} [{probe.low:.3f}–{probe.high:.3f}]" in baseline
    gap = (headline.value - probe.value) * 100
    words = "the same" if abs(gap) < 0.05 else \
        f"{abs(gap):.1f} points {'higher' if gap > 0 else 'lower'}"
    assert f"the delivered model scores {words}" in baseline


@pytest.mark.slow
def test_every_trial_is_counted_and_nothing_is_na(study_dir: Path) -> None:
    page = (study_dir / "report.html").read_text(encoding="utf-8")
    for missing in MISSING:
        assert missing not in page, missing
    states = [t.state.name for t in load(study_dir).trials]
    complete, pruned = states.count("COMPLETE"), states.count("PRUNED")
    assert pruned >= 1, "the tiny sweep must prune a trial for this test to mean anything"
    counts = f"{complete + pruned} trials: {complete} complete, {pruned} pruned"
    assert counts in text_of(page[:page.index('id="answer"')])  # the report's first line
    assert "Optimisation history, every trial" in page
    pngs = sorted(p.name for p in (study_dir / "report").glob("*.png"))
    assert pngs == ["confusion.png", "curves.png", "history.png", "importance.png",
                    "parallel.png", "slices.png"]
    # Notes are listed under the table, never inside it.
    assert "anchor recipe" not in section(page, "leaderboard")


@pytest.mark.slow
def test_the_confusion_matrix_is_the_delivered_models_on_test(study_dir: Path) -> None:
    page = (study_dir / "report.html").read_text(encoding="utf-8")
    final = study_report(load(study_dir))
    images = sum(map(sum, final.delivered.test_confusion))
    assert images == final.n.test
    figure = page[page.index('id="plot-confusion"'):]
    caption = text_of(figure[:figure.index("</h3>")])
    assert caption.endswith(f"the delivered model (trial {final.delivered.trial}'s recipe "
                            f"on Tiny) on the test split, {images} images")
    assert page.index('id="plot-confusion"') < page.index("Diagnostics")  # in the answer


@pytest.mark.slow
def test_the_answer_fits_800_pixels_in_chromium(study_dir: Path, tmp_path: Path) -> None:
    with chromium_page(800) as page:
        page.goto((study_dir / "report.html").as_uri())
        page.wait_for_load_state("load")
        # Each element of the answer: inside the section's box, and not wider than its own
        # box (text or a table cut off, or a scroll bar inside the answer).
        overflowing = page.evaluate("""() => {
            const answer = document.querySelector('#answer');
            const box = answer.getBoundingClientRect();
            return [...answer.querySelectorAll('*')].filter(e => {
                const r = e.getBoundingClientRect();
                return r.right > box.right + 1 || r.left < box.left - 1
                    || e.scrollWidth > e.clientWidth + 1 && e.clientWidth > 0;
            }).map(e => e.tagName + (e.id ? '#' + e.id : '') + ' ' + e.textContent.slice(0, 60));
        }""")
        page_width = page.evaluate("document.documentElement.scrollWidth")
        loaded = page.eval_on_selector("#answer img.plot", "e => e.complete && e.naturalWidth")
        page.screenshot(path=str(tmp_path / "report-800.png"), full_page=True)
    assert overflowing == []
    assert page_width <= 800
    assert loaded
