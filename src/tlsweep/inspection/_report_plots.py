"""The report's plots, drawn with matplotlib's Agg backend (no browser or display needed).

History, parallel coordinates and slices are drawn here from every finished trial
(``_report_trials``), not with Optuna's plot functions, which leave pruned trials out: a pruned
trial is drawn at its best epoch up to the step it reached, marked apart from complete ones.
The confusion matrix is the delivered model's on the test split, the one figure a user's
model will be judged by; a study without the finalists' stage falls back to the best trial's
on validation, and says so in its title.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from tlsweep.inspection._report_trials import (
    TrialPoints,
    is_categorical,
    is_log,
    label,
    position,
    ticks,
)
from tlsweep.inspection._view import ClassMetrics, StudyView

if TYPE_CHECKING:
    from tlsweep.finalists import FinalReport

BLUE, ORANGE, GREY = "#2563eb", "#c2410c", "#9ca3af"
ANNOTATED = 40  # up to this many pruned trials, each is labelled with the step it reached


@dataclass(frozen=True)
class ReportData:
    """What the plots and the answer read: the view, every finished trial, and the finalists'
    report (``tlsweep.finalists.FinalReport``; None before the stage has run)."""

    view: StudyView
    points: TrialPoints
    final: FinalReport | None


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _wrapped(text: str, width: int = 80) -> str:
    return textwrap.fill(text, width)


def _delivered_trial(data: ReportData) -> int | None:
    return None if data.final is None else data.final.delivered.trial


# ----------------------------------------------------------------------------- history
def history(data: ReportData) -> Any:
    points = data.points
    if points.frame.empty:
        raise ValueError("no complete or pruned trial to draw")
    figure, axes = _plt().subplots(figsize=(8, 4.2))
    pruned, complete = points.pruned, points.complete
    axes.scatter(pruned["trial"], pruned["value"], marker="v", facecolors="none",
                 edgecolors=ORANGE, linewidths=1.3, zorder=3,
                 label="pruned: best epoch up to the step it reached (the number)")
    if len(pruned) <= ANNOTATED:
        for row in pruned.itertuples(index=False):
            axes.annotate(str(int(row.step)), (row.trial, row.value), xytext=(5, -9),
                          textcoords="offset points", fontsize=7, color=ORANGE)
    axes.scatter(complete["trial"], complete["value"], color=BLUE, zorder=4, label="complete")
    if not complete.empty:
        best = complete.sort_values("trial")
        last = int(points.frame["trial"].max())
        xs = [*best["trial"].tolist(), last]
        ys = [*best["value"].cummax().tolist(), float(best["value"].max())]
        axes.step(xs, ys, where="post", color=BLUE, alpha=0.5, label="best complete so far")
    delivered = _delivered_trial(data)
    if delivered is not None and delivered in set(points.frame["trial"]):
        row = points.frame.set_index("trial").loc[delivered]
        axes.scatter([delivered], [row["value"]], s=220, marker="*", color="#16a34a", zorder=5,
                     label=f"delivered recipe (trial {delivered})")
    axes.set_xlabel("trial")
    axes.set_ylabel(f"{data.view.objective} (validation)")
    axes.set_title(f"Optimisation history: {points.counts()}")
    # Below the axes, where it cannot hide a point; margins keep the extreme points whole.
    axes.legend(fontsize="small", loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2)
    axes.margins(x=0.04, y=0.1)
    axes.grid(alpha=0.3)
    return figure


# ----------------------------------------------------------------------------- parallel
def _colours(values: pd.Series) -> list[Any]:
    import matplotlib

    low, high = float(values.min()), float(values.max())
    scale = matplotlib.colormaps["viridis"]
    return [scale(0.15 + 0.75 * ((v - low) / ((high - low) or 1.0))) for v in values]


def parallel(data: ReportData) -> Any:
    from matplotlib.lines import Line2D

    points = data.points
    names = list(points.distributions)
    if points.frame.empty or not names:
        raise ValueError("no varied parameter or no finished trial to draw")
    frame = points.frame
    low, high = float(frame["value"].min()), float(frame["value"].max())
    span = (high - low) or 1.0
    figure, axes = _plt().subplots(figsize=(max(7.0, 1.7 * (len(names) + 1) + 1), 4.8))

    def coordinates(row: pd.Series) -> list[float]:
        spots = [position(row[n], points.distributions[n]) for n in names]
        return [*spots, (row["value"] - low) / span]

    xs = list(range(len(names) + 1))
    # Pruned trials first, so that the complete ones are drawn over them.
    for _, row in points.pruned.iterrows():
        axes.plot(xs, coordinates(row), color=GREY, linestyle="--", linewidth=1, alpha=0.8)
    complete = points.complete
    for (_, row), colour in zip(complete.iterrows(), _colours(complete["value"]), strict=True):
        axes.plot(xs, coordinates(row), color=colour, linewidth=2)
    axis_ticks = [ticks(points.distributions[n]) for n in names]
    axis_ticks.append([((v - low) / span, f"{v:.3g}") for v in np.linspace(low, high, 3)])
    for x, marks in zip(xs, axis_ticks, strict=True):
        axes.axvline(x, color="#374151", linewidth=0.8)
        for y, text in marks:
            axes.text(x - 0.04, y, text, ha="right", va="center", fontsize=7.5, color="#374151",
                      bbox={"facecolor": "white", "edgecolor": "none", "pad": 0.5, "alpha": 0.8})
    axes.set_xticks(xs, [label(n) for n in names] + [f"{data.view.objective}\n(validation)"])
    axes.set_yticks([])
    axes.set_xlim(-0.45, len(names) + 0.1)
    axes.set_ylim(-0.06, 1.06)
    for side in ("top", "right", "left", "bottom"):
        axes.spines[side].set_visible(False)
    logs = [n for n, d in points.distributions.items() if is_log(d)]
    axes.set_title(_wrapped(f"Parallel coordinates: {points.counts()}"
                            + (f" ({', '.join(logs)} on a log scale)" if logs else ""), 90))
    handles = [Line2D([], [], color=_colours(pd.Series([0.0, 1.0]))[1], linewidth=2,
                      label="complete (colour: its value, yellow high, purple low)"),
               Line2D([], [], color=GREY, linestyle="--",
                      label="pruned, at its best up to the step it reached")]
    figure.legend(handles=handles, loc="lower center", ncol=2, fontsize="small",
                  bbox_to_anchor=(0.5, -0.02))
    figure.subplots_adjust(bottom=0.22)
    return figure


# ----------------------------------------------------------------------------- slices
def slices(data: ReportData) -> Any:
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    points = data.points
    names = list(points.distributions)
    if points.frame.empty or not names:
        raise ValueError("no varied parameter or no finished trial to draw")
    columns = 2 if len(names) in (2, 4) else min(3, len(names))
    rows = -(-len(names) // columns)
    figure, grid = _plt().subplots(rows, columns, figsize=(3.6 * columns, 3.0 * rows + 0.9),
                                   sharey=True, squeeze=False)
    for index, axes in enumerate(grid.flat):
        if index >= len(names):
            axes.set_visible(False)
            continue
        name = names[index]
        distribution = points.distributions[name]
        for part, style in ((points.pruned, {"marker": "v", "facecolors": "none",
                                             "edgecolors": ORANGE, "label": "pruned"}),
                            (points.complete, {"color": BLUE, "label": "complete"})):
            if part.empty:
                continue
            if is_categorical(distribution):
                marks = ticks(distribution)
                xs = [position(v, distribution) for v in part[name]]
                axes.set_xticks([m for m, _ in marks], [t for _, t in marks])
            else:
                xs = part[name].astype(float)
            axes.scatter(xs, part["value"], linewidths=1.2, **style)
        if is_log(distribution):
            axes.set_xscale("log")
            # Matplotlib labels the minor ticks of a range of a decade or two (2x10^-5,
            # 3x10^-5, ...), which overlap; 1 and 3 of each decade are enough to read a rate.
            axes.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 3.0)))
            axes.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:.0e}"))
            axes.xaxis.set_minor_formatter(NullFormatter())
        axes.margins(y=0.1)
        axes.set_xlabel(name)
        axes.grid(alpha=0.3)
        if index % columns == 0:
            axes.set_ylabel(f"{data.view.objective} (validation)")
    handles, labels = grid.flat[0].get_legend_handles_labels()
    figure.suptitle(_wrapped(f"Slices: {points.counts()}; a pruned trial at its best epoch up "
                             f"to the step it reached", 25 * columns + 10))
    figure.tight_layout(rect=(0, 0.06, 1, 1))  # room below for the legend, clear of the title
    figure.legend(handles, labels, loc="lower center", ncol=2, fontsize="small")
    return figure


# ----------------------------------------------------------------------------- importance
def importance_words(frame: pd.DataFrame, finished: int) -> str:
    """Which trials the importance rests on, in the words of the issue that asked for them:
    "12 trials: 3 complete, 9 pruned", not "12 complete trials"."""
    first = frame.iloc[0]
    counted = int(first["n_trials"])
    if "n_pruned_counted" not in frame or pd.isna(first.get("n_pruned_counted")):
        return f"{counted} trials"  # an importance file written before pruned trials counted
    pruned = int(first["n_pruned_counted"])
    text = f"{counted} trials: {counted - pruned} complete, {pruned} pruned"
    if pd.notna(first.get("step")):
        text += f", each at its best epoch up to step {int(first['step'])}"
    left = finished - counted
    return text + (f"; {left} that stopped earlier left out" if left > 0 else "")


def importances(data: ReportData) -> Any:
    frame = pd.read_parquet(data.view.directory / "importance.parquet")
    if frame.empty:
        raise ValueError("importance.parquet is empty: too few trials differed")
    evaluator = frame["evaluator"].iloc[0]
    frame = frame[frame["evaluator"] == evaluator].sort_values("importance")
    figure, axes = _plt().subplots(figsize=(8, 0.5 * len(frame) + 1.8))
    axes.barh(frame["param"], frame["importance"], color="#3b82f6")
    words = importance_words(frame, len(data.points.frame))
    axes.set_xlabel(_wrapped(f"importance ({evaluator}) over {words}", 90))
    axes.set_title("Hyperparameter importance")
    figure.tight_layout()
    return figure


# ----------------------------------------------------------------------------- curves
def learning_curves(data: ReportData) -> Any:
    view = data.view
    top = view.complete.sort_values("value", ascending=False)["trial"].head(5).tolist()
    delivered = _delivered_trial(data)
    if delivered is not None and delivered not in top:
        top.append(delivered)  # the recipe the user gets is always among the curves
    if view.curves.empty or not top:
        raise ValueError("no per-epoch curve recorded")
    figure, axes = _plt().subplots(figsize=(8, 4.5))
    for number in top:
        curve = view.curve(int(number))
        tag = " (delivered recipe)" if number == delivered else ""
        axes.plot(curve["step"], curve["val_accuracy"], marker="o", label=f"trial {number}{tag}")
    boundary = view.head_epochs()
    if boundary is not None:
        axes.axvline(boundary - 0.5, color="grey", linestyle="--", label="fine-tuning starts")
    axes.set_xlabel("global epoch (head, then fine-tune)")
    axes.set_ylabel("validation accuracy")
    axes.set_title("Learning curves of the top 5 complete trials")
    axes.legend(fontsize="small")
    axes.grid(alpha=0.3)
    figure.tight_layout()
    return figure


# ----------------------------------------------------------------------------- confusion
def confusion_source(data: ReportData) -> tuple[ClassMetrics, str]:
    """The delivered model's test confusion matrix and its title; without one, the best
    trial's on validation, titled as such."""
    names = data.view.attrs.get("class_names")
    final = data.final
    if final is not None and final.delivered.test_confusion is not None:
        matrix = np.asarray(final.delivered.test_confusion)
        names = list(names or [str(i) for i in range(len(matrix))])
        return (ClassMetrics(names, matrix),
                f"the delivered model ({delivered_name(final)}) on the test split, "
                f"{int(matrix.sum())} images")
    best = data.view.best_trial_number()
    metrics = data.view.class_metrics(best) if best is not None else None
    if metrics is None:
        raise ValueError("no confusion matrix recorded")
    why = "no model delivered yet" if final is None else "no test split scored"
    return metrics, (f"the best trial ({best}) on validation, {int(metrics.confusion.sum())} "
                     f"images: {why}")


def delivered_name(final: FinalReport) -> str:
    """The delivered model in a few words: "the linear probe on X" or "trial N's recipe"."""
    delivered = final.delivered
    if delivered.is_probe:
        return f"the linear probe on {delivered.backbone}"
    return f"trial {delivered.trial}'s recipe on {delivered.backbone}"


def confusion(data: ReportData) -> Any:
    metrics, title = confusion_source(data)
    count = len(metrics.names)
    # Big enough to read a cell, small enough that its labels stay legible once the page
    # scales it down to its width (a 14-inch figure of 39 classes showed 4-pixel labels).
    size = min(10.0, max(4.5, 0.3 * count + 2.5))
    figure, axes = _plt().subplots(figsize=(size, size))
    axes.imshow(metrics.confusion, cmap="Blues")
    positions = range(count)
    font = 9 if count <= 12 else 7 if count <= 40 else 5.5
    axes.set_xticks(positions, metrics.names, rotation=45, ha="right", fontsize=font)
    axes.set_yticks(positions, metrics.names, fontsize=font)
    if count <= 20:  # beyond that the numbers no longer fit their cells
        top = metrics.confusion.max() or 1
        for (i, j), value in np.ndenumerate(metrics.confusion):
            axes.text(j, i, int(value), ha="center", va="center", fontsize=font,
                      color="white" if value > 0.6 * top else "black")
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    axes.set_title(_wrapped(title[0].upper() + title[1:], 60))
    figure.tight_layout()
    return figure
