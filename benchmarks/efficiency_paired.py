"""Search efficiency, paired: are the arms' best models different on the validation images?

    python benchmarks/efficiency_paired.py benchmarks/runs/search_efficiency \
        benchmarks/runs/search_efficiency_kt benchmarks/runs/search_efficiency_kt12

Reads finished runs of ``search_efficiency.py`` (each (arm, seed) from the first run that has it,
as ``efficiency_merge.py`` does) and trains nothing. For each arm and seed it takes the model
behind "best at the epoch budget" (a kept trial's model; for keras-tuner, its best epoch's
checkpoint), predicts every validation image, checks that the prediction reproduces the score
the sweep recorded, and compares the arms of a seed on the same images.

Why paired: one accuracy on 3,817 images has a binomial standard error near 0.76 points, so a
one-point gap between two independent scores is not two standard errors. Two models scored on
the *same* images share most of their right and wrong answers, and only the images where they
disagree carry the gap's noise (McNemar 1947): the paired, class-stratified bootstrap of
``tlsweep.measures.paired_gap`` measures that standard error directly.

Writes paired.parquet (each model's predicted class per image) under the first run's folder,
and replaces its section of benchmarks/RESULTS.md. ``--reuse`` reports again from that file,
without TensorFlow (the scores the sweeps recorded are still checked against it).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from search_efficiency import END as EFFICIENCY_END
from search_efficiency import FULL, SHARED, arm_key, arm_seed, finished_trials, update_results

from tlsweep.measures import paired_gap

if TYPE_CHECKING:
    from tlsweep.delivery._modelcard import ModelCard, ModelSource

BEGIN, END = "<!-- efficiency_paired:begin -->", "<!-- efficiency_paired:end -->"
PAIRS = (("tlsweep", "reference"), ("tlsweep", "kt-hyperband"), ("kt-hyperband", "reference"))


@dataclass(frozen=True)
class Study:
    arm: str
    seed: int
    folder: Path  # results-*/ARM-sSEED

    @property
    def name(self) -> str:
        return self.folder.name


def studies(runs: list[Path]) -> dict[tuple[str, int], Study]:
    """Each (arm, seed)'s study folder, from the first run that has it."""
    found: dict[tuple[str, int], Study] = {}
    for run in runs:
        for folder in sorted(run.glob("results-*/*-s*")):
            arm, seed = arm_seed(folder.name)
            found.setdefault((arm, seed), Study(arm, seed, folder))
    return found


def chosen_trial(board: pd.DataFrame, budget_epochs: int) -> pd.Series:
    """The trial behind ``search_efficiency.best_at(..., budget)``: the best value among the
    trials finished within the epoch budget, in trial order (the first of equals)."""
    trials = finished_trials(board)
    within = trials[trials["epochs_run"].cumsum() <= budget_epochs]
    return within.loc[within["value"].idxmax()]


# ----------------------------------------------------------------------------- models (TF)
def kt_source(study: Study, trial: int, card: ModelCard, scratch: Path) -> ModelSource:
    """keras-tuner keeps only weights (its best epoch's checkpoint): they go into the same
    classifier, under the card of a tlsweep trial on the same data and backbone."""
    from tlsweep.delivery._modelcard import ModelSource
    from tlsweep.engines._keras_tuner import KT_TRIAL_ATTR
    from tlsweep.store import load_study, recorded_sweep
    from tlsweep.training._classifier import build_classifier
    from tlsweep.training.backbones import resolve

    recorded = load_study(study.folder, study.name)
    sweep = recorded_sweep(recorded)
    choice = sweep.space.backbone_choices()[card.backbone]
    backbone = resolve(card.backbone, choice, card.image_size, str(sweep.path))
    model, _ = build_classifier(backbone, card.image_size, len(card.class_names),
                                sweep.config.training.dropout)
    kt_id = recorded.trials[trial].user_attrs[KT_TRIAL_ATTR]
    model.load_weights(study.folder / "keras-tuner" / f"trial_{kt_id}" / "checkpoint.weights.h5")
    path = scratch / f"{study.name}.keras"
    model.save(path)
    return ModelSource(path, "keras", card)


def predicted_classes(chosen: dict[tuple[str, int], tuple[Study, int]], val: Path,
                      ) -> tuple[np.ndarray, list[str], dict[tuple[str, int], np.ndarray]]:
    """Labels of the validation images (decoded once) and each chosen model's predictions."""
    from tlsweep.delivery._evaluate import labelled_files
    from tlsweep.delivery._modelcard import study_source
    from tlsweep.delivery._predict import decode_batches, load_model

    with tempfile.TemporaryDirectory() as scratch:
        sources = {key: study_source(study.folder, study.name, trial)
                   for key, (study, trial) in chosen.items() if study.arm != "kt-hyperband"}
        card = next(iter(sources.values())).card
        sources |= {key: kt_source(study, trial, card, Path(scratch))
                    for key, (study, trial) in chosen.items() if study.arm == "kt-hyperband"}
        files, labels = labelled_files(val, card.class_names)
        label_of = dict(zip(map(str, files), labels, strict=True))
        batches = [b for b in decode_batches(files, card.image_size) if len(b.paths)]
        kept = [str(p) for b in batches for p in b.paths]
        predictions = {}
        for key in sorted(sources):
            model = load_model(sources[key])
            predictions[key] = np.concatenate([model(b.images).argmax(axis=1) for b in batches])
            print(f"{key[0]} s{key[1]}: predicted {len(kept)} images", flush=True)
    return np.asarray([label_of[p] for p in kept]), kept, predictions


# ----------------------------------------------------------------------------- report
def gaps(labels: np.ndarray, predictions: dict[tuple[str, int], np.ndarray]) -> pd.DataFrame:
    """Each pair's gap per seed, then on the mean of its seeds: every seed's models predicted
    the same validation images, so the mean's bootstrap resamples them once for all seeds."""
    rows = []
    seeds = sorted({s for _, s in predictions})
    for a, b in PAIRS:
        both = [s for s in seeds if (a, s) in predictions and (b, s) in predictions]
        runs = [(str(s), [s]) for s in both] + ([("mean", both)] if len(both) > 1 else [])
        for label, chosen in runs:
            first = np.stack([predictions[(a, s)] for s in chosen])
            second = np.stack([predictions[(b, s)] for s in chosen])
            gap = paired_gap(labels, first, second, "accuracy", seed=chosen[0])
            rows.append({"seed": label, "pair": f"{a} − {b}", "gap": 100 * gap.gap,
                         "se": 100 * gap.se, "disagree": float(np.mean(first != second))})
    return pd.DataFrame(rows)


def checks(chosen: dict[tuple[str, int], tuple[Study, int]], boards: dict, labels: np.ndarray,
           predictions: dict[tuple[str, int], np.ndarray]) -> list[str]:
    """Each model's right answers from these predictions against those its sweep recorded."""
    lines = []
    for key, (_, trial) in chosen.items():
        recorded = round(float(boards[key].set_index("trial").loc[trial, "value"]) * len(labels))
        again = int(np.sum(predictions[key] == labels))
        lines.append(f"| {key[0]} | {key[1]} | {trial} | {recorded} | {again} | "
                     f"{again - recorded:+d} |")
    return lines


def report(table: pd.DataFrame, check_rows: list[str], accuracy: float, images: int,
           command: str) -> str:
    """``accuracy``: the reference's mean, near which the unpaired standard error is taken."""
    unpaired = 100 * np.sqrt(accuracy * (1 - accuracy) / images)
    lines = [
        f"### Search efficiency, paired on the validation images ({datetime.now(UTC).date()})",
        "",
        f"Command: `{command}` (no training: the kept models of the runs above predict the "
        f"{images} validation images; with `--reuse`, as saved in paired.parquet). Gap: the "
        f"first arm's accuracy minus the second's, in points, on the same images; SE: its "
        f"standard error from a paired, class-stratified bootstrap over the images (2,000 "
        f"draws). For comparison, one accuracy alone has a "
        f"binomial SE of {unpaired:.2f} points, and two independent ones a gap SE of "
        f"{unpaired * np.sqrt(2):.2f}.", "",
        "| seed | pair | gap (points) | paired SE | gap / SE | images they disagree on |",
        "| --- | --- | --- | --- | --- | --- |"]
    for row in table.itertuples():
        lines.append(f"| {row.seed} | {row.pair} | {row.gap:+.2f} | {row.se:.2f} | "
                     f"{row.gap / row.se:+.1f} | {row.disagree:.1%} |")
    each, mean = table[table["seed"] != "mean"], table[table["seed"] == "mean"]
    lines += ["", f"Paired SE of one seed's gap, over these {len(each)} comparisons: "
              f"{each['se'].min():.2f}–{each['se'].max():.2f} points (mean "
              f"{each['se'].mean():.2f}); a one-point gap is {1 / each['se'].max():.1f}–"
              f"{1 / each['se'].min():.1f} paired SEs.", ""]
    if len(mean):
        lines += [f"On the mean of the seeds (each seed's models disagree on different images, "
                  f"so their noise partly averages out): {mean['se'].min():.2f}–"
                  f"{mean['se'].max():.2f} points; a one-point gap is "
                  f"{1 / mean['se'].max():.1f}–{1 / mean['se'].min():.1f} paired SEs.", ""]
    lines += [f"Each model's right answers (of {images}) from these predictions, against those "
              f"its sweep recorded:", "",
              "| arm | seed | trial | recorded | predicted here | difference |",
              "| --- | --- | --- | --- | --- | --- |", *check_rows, ""]
    return "\n".join(lines)


def saved_predictions(path: Path) -> tuple[np.ndarray, list[str], dict[tuple[str, int],
                                                                     np.ndarray]]:
    """The labels, files and predictions that an earlier run wrote to paired.parquet."""
    frame = pd.read_parquet(path)
    models = [c for c in frame.columns if c not in ("file", "label")]
    return (frame["label"].to_numpy(), frame["file"].tolist(),
            {arm_seed(c): frame[c].to_numpy() for c in models})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", type=Path, nargs="+", help="search_efficiency.py --out folders")
    parser.add_argument("--reuse", action="store_true",
                        help="report from the predictions an earlier run saved in paired.parquet "
                             "(no TensorFlow); the recorded scores are still checked")
    args = parser.parse_args()
    runs, saved = args.runs, args.runs[0] / "paired.parquet"
    if not args.reuse and not (SHARED / "weights").is_dir():
        raise SystemExit(f"needs {SHARED}/weights (the kt-hyperband models are rebuilt on them)")
    found = studies(runs)
    boards = {key: pd.read_parquet(s.folder / "leaderboard.parquet") for key, s in found.items()}
    chosen = {key: (found[key], int(chosen_trial(board, FULL.budget_epochs)["trial"]))
              for key, board in boards.items()}
    if args.reuse:
        labels, files, predictions = saved_predictions(saved)
    else:
        labels, files, predictions = predicted_classes(chosen, runs[0] / "data" / "val")
        pd.DataFrame({"file": files, "label": labels,
                      **{arm_key(a, s): p for (a, s), p in predictions.items()}}).to_parquet(saved)
    command = "python benchmarks/efficiency_paired.py " + " ".join(map(str, runs))
    command += " --reuse" * args.reuse
    reference = np.mean([np.mean(p == labels) for (arm, _), p in predictions.items()
                         if arm == "reference"])
    section = report(gaps(labels, predictions), checks(chosen, boards, labels, predictions),
                     float(reference), len(labels), command)
    (runs[0] / "paired.json").write_text(json.dumps({"command": command}))
    update_results(section, (BEGIN, END), after=EFFICIENCY_END)
    print(section)


if __name__ == "__main__":
    main()
