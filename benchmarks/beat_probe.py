"""Beat the probe (issue 14): does the sweep's delivered model beat a linear probe on the same
frozen features, measured on held-out images? Recipes side by side, in one run.

The sets and seeds are ``honest.py``'s (flowers-small, hymenoptera-split). Each arm is one
``tlsweep run`` per set and seed, MobileNetV2 with the shared weights, the test set given as
``data.test_dir``. Reported per run, all on the same de-duplicated test images: the probe fitted on
train alone and on train+val (the images the delivered refit trains on: the fair comparison), the
delivered model (the finalists' choice), their difference; the chosen finalist's other two
deliveries, from the fold models the stage keeps (their average, ``deliver: ensemble``, and the
best fold's model), so that refit, ensemble and best fold meet on the same searches; the sweep's
wall time, the finalists' stage's, and CPU use
(the run's children: user + system seconds over wall seconds); phase 1's share of the wall time
(head epochs, frozen features and probe fits, summed over trials); the share of trials whose
phase 1 trained on cached features; the share pruned before fine-tuning began.

    python benchmarks/beat_probe.py                          # every arm, 2 sets x 3 seeds
    python benchmarks/beat_probe.py --arms anchor            # the anchor recipe as a finalist
    python benchmarks/beat_probe.py --arms after --sets flowers-small --seeds 0 --trials 6
    python benchmarks/beat_probe.py --arms anchor anchor-fold-workers --sets flowers-small \
        --seeds 0 --no-rules                                  # fold workers against none
    python benchmarks/beat_probe.py --arms anchor --sets hymenoptera-split --image-size 224
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from honest import REPO, SETS, WEIGHTS

# Each arm: (training, pruner, search space). "before": the recipe honest.py measured (the
# defaults until this work); "after": LP-FT from the probe, judged only once fine-tuning acts.
ARMS = {
    "before": (
        "{head_epochs: 3, finetune_epochs: 5, batch_size: 32, augment_head: true, "
        "head_init: random}",
        "{kind: successive_halving, min_resource: 2, reduction_factor: 3, "
        "min_finetune_epochs: 0}",
        {"unfreeze_depth": "{low: 0.0, high: 0.5}",
         "head_lr": "{low: 3.0e-4, high: 1.0e-2, log: true}",
         "finetune_lr": "{low: 1.0e-6, high: 1.0e-4, log: true}"}),
    "after": (
        "{head_epochs: 2, finetune_epochs: 10, batch_size: 32, augment_head: false, "
        "head_init: probe}",
        "{kind: successive_halving, min_resource: 2, reduction_factor: 3, "
        "min_finetune_epochs: 4}",
        {"unfreeze_depth": "{low: 0.0, high: 0.7}",
         "head_lr": "{low: 1.0e-5, high: 1.0e-3, log: true}",
         "finetune_lr": "{low: 1.0e-5, high: 3.0e-4, log: true}"}),
}
# "anchor": "after" with recipe N as the study's first trial and a finalist trained for its own
# 26 epochs (finalists.anchor); the other arms keep the stage's defaults.
ARMS["anchor"] = ARMS["after"]
# "anchor-probe": "anchor" with the probe delivered when it cross-validates above every finalist.
ARMS["anchor-probe"] = ARMS["after"]
# "anchor-fold-workers": "anchor" with the folds trained side by side, one one-thread process
# per core (finalists.fold_workers: auto); "anchor" trains them one after another.
ARMS["anchor-fold-workers"] = ARMS["after"]
FINALISTS = {"anchor": "finalists: {anchor: true}\n",
             "anchor-probe": "finalists: {anchor: true, probe_competes: true}\n",
             "anchor-fold-workers": "finalists: {anchor: true, fold_workers: auto}\n"}


def write_sweep(root: Path, arm: str, name: str, data: Path, size: int, seed: int,
                trials: int) -> Path:
    training, pruner, ranges = ARMS[arm]
    space = root / "space.yaml"
    space.write_text(f"backbone:\n  choices:\n    MobileNetV2: {{weights: {WEIGHTS}}}\n"
                     + "".join(f"{key}: {value}\n" for key, value in ranges.items())
                     + "augmentation_strength: {low: 0.0, high: 1.0}\n"
                     "class_weighting: {choices: [none, balanced, sqrt]}\n")
    sweep = root / "sweep.yaml"
    sweep.write_text(
        f"study: {name}-{arm}-seed{seed}\nseed: {seed}\n"
        f"data: {{train_dir: {data}/train, val_dir: {data}/val, test_dir: {data}/test, "
        f"image_size: {size}}}\nsearch_space: {space}\nbudget: {{trials: {trials}}}\n"
        f"training: {training}\nobjective: val_balanced_accuracy\npruner: {pruner}\n"
        "sampler: {kind: tpe}\n" + FINALISTS.get(arm, ""))
    return sweep


def phase_one(results: Path, study_name: str, head_epochs: int) -> dict[str, float]:
    """Phase 1's seconds, the share of trials on cached features, the share pruned in it."""
    from tlsweep.store import load_study

    study = load_study(results / study_name, study_name)
    seconds, cached, pruned_early, n = 0.0, 0, 0, 0
    for trial in study.trials:
        timings = (trial.user_attrs.get("result") or {}).get("timings") or {}
        if not timings:
            continue
        n += 1
        seconds += sum(s for phase, s, _, _ in timings["epochs"] if phase == "head")
        seconds += timings["features_s"] + timings.get("probe_s", 0.0)
        cached += timings["features_s"] > 0
        at = trial.user_attrs.get("pruned_at")
        pruned_early += at is not None and at < head_epochs
    return {"phase1_s": seconds, "cached_share": cached / max(n, 1),
            "pruned_before_finetune": pruned_early / max(n, 1), "trials_timed": n}


def epoch_cpu(results: Path, study_name: str) -> dict[str, float]:
    """The search's training epochs: the worker's CPU seconds over their wall seconds, for all
    of them and for the untraced ones (a model's first epoch traces its step, on one thread),
    and their seconds in all: is it training that leaves a core idle, or what lies around it?"""
    from tlsweep.store import load_study

    study = load_study(results / study_name, study_name)
    epochs = [epoch for trial in study.trials
              for epoch in ((trial.user_attrs.get("result") or {}).get("timings") or {}).get(
                  "epochs", []) if len(epoch) == 4]
    steady = [epoch for epoch in epochs if not epoch[2]]

    def share(chosen: list) -> float:
        return sum(e[3] for e in chosen) / max(sum(e[1] for e in chosen), 1e-9)

    return {"epoch_cpu": share(epochs), "steady_epoch_cpu": share(steady),
            "epochs_s": sum(e[1] for e in epochs)}


def frozen_sets(sweep: Path, results: Path) -> tuple[Any, dict[str, np.ndarray], Any]:
    """A finished run's plan, its frozen MobileNetV2 features of train, val and test (by those
    names), and the backbone's preprocessing; TensorFlow set up as a worker sets it."""
    from tlsweep.config import load_sweep
    from tlsweep.sweep._study import prepare
    from tlsweep.training._warm import ModelPool, Structure, frozen_features
    from tlsweep.training._worker import setup_tensorflow
    from tlsweep.training.backbones import preprocessor

    plan = prepare(load_sweep(sweep), results)
    config, data = plan.sweep.config, plan.dataset
    setup_tensorflow(config)
    backbone = plan.backbones["MobileNetV2"]
    warm, _ = ModelPool(keep=False).get(Structure(backbone, config.data.image_size,
                                                  data.n_classes, config.training.dropout), 0)
    warm.reset(config.seed)
    preprocess = preprocessor(backbone)
    return plan, {s: frozen_features(warm, getattr(data, f"x_{s}"), preprocess)
                  for s in ("train", "val", "test")}, preprocess


def probe_on_test(plan: Any, features: dict[str, np.ndarray], parts: tuple[str, ...],
                  ) -> np.ndarray:
    """The classes that the probe fitted on ``parts`` (train, or train and val) predicts for
    the test images."""
    from tlsweep.training._probe import fit_probe

    config, data = plan.sweep.config, plan.dataset
    fit = fit_probe(np.concatenate([features[p] for p in parts]),
                    np.concatenate([getattr(data, f"y_{p}") for p in parts]),
                    config.objective, config.seed)
    return fit.predict(features["test"])


def scored_on_test(data: Any, predicted: np.ndarray) -> float:
    """Balanced accuracy of predicted classes on the test images."""
    from tlsweep.measures._intervals import balanced_estimate
    from tlsweep.training._epochs import confusion_matrix

    return balanced_estimate(confusion_matrix(data.y_test, predicted, data.n_classes)).value


def probes_on_test(sweep: Path, results: Path, rules: bool = True) -> dict[str, float]:
    """On test: the probe fitted on train alone and on train+val (the refit's images), and the
    other two deliveries of the same chosen finalist, built from its fold models that the stage
    keeps: their average (``deliver: ensemble``) and the best fold's (``deliver: best_fold``)."""
    plan, f, preprocess = frozen_sets(sweep, results)
    found = {name: scored_on_test(plan.dataset, probe_on_test(plan, f, parts))
             for name, parts in (("probe_train_test", ("train",)),
                                 ("probe_trainval_test", ("train", "val")))}
    ruled = rules_on_test(plan, preprocess, found["probe_trainval_test"]) if rules else {}
    return {**found, **fold_deliveries_on_test(plan, preprocess), **ruled}


def every_refit_on_test(plan: Any, final: dict, preprocess: Any) -> dict[int, float]:
    """Each finalist's recipe refit on train+val and tested, as the stage refits the one it
    chooses (whose own test score is the delivered model's): what any choice among them would
    have delivered, on the same search."""
    from rich.console import Console

    from tlsweep.finalists import FinalStage
    from tlsweep.finalists._folds import RecipeTrainer, predict_images
    from tlsweep.measures._intervals import balanced_estimate
    from tlsweep.store import load_study
    from tlsweep.sweep import stage_inputs
    from tlsweep.sweep._runner import worker_spec
    from tlsweep.training._epochs import confusion_matrix
    from tlsweep.training._warm import ModelPool

    data = plan.dataset
    trainer = RecipeTrainer(worker_spec(plan), data, ModelPool(keep=True))
    x, y = trainer.train_and_val
    study = load_study(plan.directory, plan.sweep.config.study)
    tested = {}
    stage = FinalStage(Console(stderr=True))
    for finalist in stage.choose_finalists(stage_inputs(plan), study, True):
        if finalist.number == final["chosen"]:
            confusion = final["delivered"]["test_confusion"]
        else:
            model = trainer.train(finalist, x, y, data.x_val, data.y_val)
            confusion = confusion_matrix(data.y_test, predict_images(
                model, data.x_test, preprocess), data.n_classes)
        tested[finalist.number] = balanced_estimate(np.asarray(confusion)).value
    return tested


# The stage's choice rules compared on one search: (finalists.margin_se, probe_competes).
RULES = {"top cv": (0.0, False), "top cv, probe competing": (0.0, True),
         "1 SE": (1.0, False), "1 SE, probe competing": (1.0, True)}


def rules_on_test(plan: Any, preprocess: Any, probe_test: float) -> dict[str, Any]:
    """The test score each rule of ``RULES`` would have delivered, from the stored out-of-fold
    predictions and every finalist's refit."""
    from tlsweep.finalists import study_report
    from tlsweep.finalists._choice import choose_finalist, probe_challenge
    from tlsweep.store import load_study

    config, data = plan.sweep.config, plan.dataset
    final = study_report(load_study(plan.directory, config.study))
    if final is None or not final.reevaluated or final.chosen is None:
        return {}
    tested = every_refit_on_test(plan, final.as_dict(), preprocess)
    rows = {f.trial: f for f in final.finalists}
    anchor = next((f.trial for f in final.finalists if f.anchor), None)
    labels = np.concatenate([data.y_train, data.y_val])
    outcomes = {}
    for rule, (margin, competes) in RULES.items():
        chosen = choose_finalist(rows, anchor, labels, config.objective, margin, config.seed)
        probe = competes and probe_challenge(final.baselines, rows[chosen.chosen], labels,
                                             config.objective, margin, config.seed)
        outcomes[rule] = {"chosen": "probe" if probe else chosen.chosen,
                          "test": probe_test if probe else tested[chosen.chosen]}
    return {"refit_test_by_trial": tested, "rules": outcomes}


def fold_deliveries_on_test(plan: Any, preprocess: Any) -> dict[str, float]:
    import keras

    from tlsweep.finalists import fold_ensemble, fold_model_path
    from tlsweep.finalists._folds import predict_images
    from tlsweep.store import load_study

    final = load_study(plan.directory, plan.sweep.config.study).user_attrs["final"]
    chosen = next((f for f in final["finalists"] if f["trial"] == final["chosen"]), {})
    if not chosen.get("fold_scores"):  # the probe delivered, or not re-evaluated: no fold models
        return {"ensemble_test": float("nan"), "best_fold_test": float("nan")}
    paths = [fold_model_path(plan.directory / "final", final["chosen"], i)
             for i in range(len(chosen["fold_scores"]))]
    best = paths[int(np.argmax(chosen["fold_scores"]))]
    data = plan.dataset

    def tested(model: Any) -> float:
        return scored_on_test(data, predict_images(model, data.x_test, preprocess))

    return {"ensemble_test": tested(fold_ensemble(paths)),
            "best_fold_test": tested(keras.models.load_model(best, compile=False))}


def measure(results: Path, study_name: str) -> dict[str, float]:
    import pandas as pd

    board = pd.read_parquet(results / study_name / "final.parquet")
    chosen = board[board["role"] == "chosen"].iloc[0]
    probe = board[board["role"] == "baseline"].iloc[0]
    trials = pd.read_parquet(results / study_name / "leaderboard.parquet")
    cv = trials[trials["cv_value"].notna()]
    return {"finalists_cv": {int(r.trial): float(r.cv_value) for r in cv.itertuples()},
            "probe_cv": float(probe["cv_value"]),
            "baseline_test": float(probe["test_balanced_accuracy"]),
            "test": float(chosen["test_balanced_accuracy"]),
            "test_low": float(chosen["test_balanced_accuracy_low"]),
            "test_high": float(chosen["test_balanced_accuracy_high"]),
            "estimate": float(chosen["value"]),
            "chosen_trial": "probe" if pd.isna(chosen["trial"]) else int(chosen["trial"])}


def stage_seconds(results: Path, study_name: str) -> float:
    """The finalists' stage's wall seconds, as the stage recorded them."""
    from tlsweep.store import load_study

    return float(load_study(results / study_name, study_name).user_attrs["final"]["seconds"])


def run_one(out: Path, arm: str, name: str, seed: int, trials: int, workers: int = 1,
            rules: bool = True, image_size: int | None = None) -> dict:
    make, size = SETS[name]
    size = image_size or size
    root = out / (f"{name}-{arm}-seed{seed}" + (f"-workers{workers}" if workers > 1 else "")
                  + (f"-{size}px" if image_size else ""))
    shutil.rmtree(root, ignore_errors=True)
    sweep = write_sweep(root, arm, name, make(root / "data", seed), size, seed, trials)
    env = {**os.environ, "TLSWEEP_RESULTS": str(root / "results")}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    began = time.perf_counter()
    command = [sys.executable, "-m", "tlsweep", "run", str(sweep)]
    run = subprocess.run(command + (["--workers", str(workers)] if workers > 1 else []),
                         env=env, capture_output=True, text=True)
    wall = time.perf_counter() - began
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    (root / "run.log").write_text(run.stdout + run.stderr)
    if run.returncode != 0:
        sys.exit(f"{name} {arm} seed {seed}: tlsweep run exited {run.returncode}; "
                 f"see {root / 'run.log'}")
    cpu = (after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime) / wall
    study_name = f"{name}-{arm}-seed{seed}"
    head_epochs = int(ARMS[arm][0].split("head_epochs: ")[1].split(",")[0])
    phase1 = phase_one(root / "results", study_name, head_epochs)
    return {"set": name, "arm": arm, "seed": seed, "image_size": size, "workers": workers,
            "wall_s": wall, "cpu": cpu,
            "stage_s": stage_seconds(root / "results", study_name),
            "phase1_share": phase1.pop("phase1_s") / wall, **phase1,
            **epoch_cpu(root / "results", study_name),
            **measure(root / "results", study_name),
            **probes_on_test(sweep, root / "results", rules)}


def table(rows: list[dict]) -> str:
    lines = ["| set | arm | seed | probe test: train / train+val | delivered test [95% CI] "
             "| − probe (train+val) | fold ensemble test | best fold test | chosen trial "
             "| sweep s | finalists' stage s | CPU | CPU in epochs (untraced) "
             "| search epochs' share of wall | phase 1 share | on cached features "
             "| pruned before fine-tuning |",
             "| --- " * 17 + "|"]
    for r in rows:
        lines.append(
            f"| {r['set']} | {r['arm']} | {r['seed']} | {r['probe_train_test']:.3f} / "
            f"{r['probe_trainval_test']:.3f} | {r['test']:.3f} [{r['test_low']:.3f}, "
            f"{r['test_high']:.3f}] | {r['test'] - r['probe_trainval_test']:+.3f} "
            f"| {r['ensemble_test']:.3f} | {r['best_fold_test']:.3f} "
            f"| {r['chosen_trial']} | {r['wall_s']:.0f} | {r.get('stage_s', float('nan')):.0f} "
            f"| {r['cpu']:.0%} "
            f"| {r['epoch_cpu']:.0%} ({r['steady_epoch_cpu']:.0%}) "
            f"| {r['epochs_s'] / r['wall_s']:.0%} | {r['phase1_share']:.0%} "
            f"| {r['cached_share']:.0%} "
            f"| {r['pruned_before_finetune']:.0%} |")
    for key in dict.fromkeys((r["set"], r["arm"]) for r in rows):
        mine = [r for r in rows if (r["set"], r["arm"]) == key]
        lines.append(f"\n{key[0]}, {key[1]}: " + "; ".join(
            f"delivered − probe ({probe}) mean {np.mean(gaps):+.3f}, min {min(gaps):+.3f}"
            for probe, gaps in (("train", [r["test"] - r["probe_train_test"] for r in mine]),
                                ("train+val", [r["test"] - r["probe_trainval_test"]
                                               for r in mine])))
            + "; fold ensemble − probe (train / train+val) mean " + " / ".join(
                f"{np.mean([r['ensemble_test'] - r[p] for r in mine]):+.3f}"
                for p in ("probe_train_test", "probe_trainval_test"))
            + f" over {len(mine)} seeds; mean sweep {np.mean([r['wall_s'] for r in mine]):.0f} s,"
            f" CPU {np.mean([r['cpu'] for r in mine]):.0%}")
    return "\n".join(lines + rules_table(rows))


def rules_table(rows: list[dict]) -> list[str]:
    """Per run, what each choice rule delivers (trial, test − the train+val probe)."""
    ruled = [r for r in rows if r.get("rules")]
    if not ruled:
        return []
    lines = ["", "| set | seed | every finalist's refit on test | "
             + " | ".join(RULES) + " |", "| --- " * (3 + len(RULES)) + "|"]
    for r in ruled:
        refits = ", ".join(f"{t}: {v:.3f}" for t, v in r["refit_test_by_trial"].items())
        lines.append(f"| {r['set']} | {r['seed']} | {refits} | " + " | ".join(
            f"{r['rules'][k]['chosen']}, {r['rules'][k]['test'] - r['probe_trainval_test']:+.3f}"
            for k in RULES) + " |")
    for name in dict.fromkeys(r["set"] for r in ruled):
        mine = [r for r in ruled if r["set"] == name]
        gains = {k: [r["rules"][k]["test"] - r["probe_trainval_test"] for r in mine]
                 for k in RULES}
        lines.append(f"\n{name}: " + "; ".join(
            f"{k} mean {np.mean(g):+.3f} (min {min(g):+.3f})" for k, g in gains.items()))
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(ARMS))
    parser.add_argument("--sets", nargs="+", default=list(SETS), choices=list(SETS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--workers", type=int, default=1, help="tlsweep run --workers")
    parser.add_argument("--image-size", type=int, help="every set's (default: honest.SETS')")
    parser.add_argument("--no-rules", action="store_true",
                        help="skip refitting every finalist to score the choice rules")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "runs" / "beat_probe")
    args = parser.parse_args()
    args.out = args.out.resolve()  # the sweep files name their paths absolutely
    if not WEIGHTS.is_file():
        sys.exit(f"skipped: {WEIGHTS} is absent (../shared or $TLSWEEP_SHARED)")
    rows = []
    for name in args.sets:
        for seed in args.seeds:
            for arm in args.arms:  # interleaved: the arms see the same machine load
                rows.append(run_one(args.out, arm, name, seed, args.trials, args.workers,
                                    not args.no_rules, args.image_size))
                print(json.dumps(rows[-1]), flush=True)
                (args.out / "results.json").write_text(json.dumps(rows, indent=2))
    print(table(rows))


if __name__ == "__main__":
    main()
