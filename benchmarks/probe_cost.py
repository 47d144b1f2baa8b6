"""The linear probe's cost and choice: the grid before this change (13 values of C, half-decades,
by 5-fold CV) against the package's (``tlsweep.training.fit_baseline``: a decade grid by 3-fold
CV), both choosing C and the class weighting together, on the suite's sets.

Each set's pool (never its held-out folder) is split 60/20/20 by a seeded stratified split into
train, validation and the rest (unused); both probes fit on train, are timed, and are scored on
validation. The features are MobileNetV2's, computed by the suite's scorer (``suite_score``).

    python benchmarks/probe_cost.py --suite benchmarks/runs/suite [--sets ...] [--seeds 0 1]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
from suite_score import pooled_features

HERE = Path(__file__).resolve().parent
WEIGHTS = HERE.parent.parent / "shared" / "weights" / "mobilenet_v2_1.0_notop.weights.h5"
SIZES = {"hymenoptera": 128, "flowers": 128, "potato": 96, "caltech39": 96, "magnetic_tile": 96}
OLD_GRID, OLD_FOLDS = np.logspace(-4, 2, 13), 5


def old_probe(x: np.ndarray, y: np.ndarray, seed: int) -> tuple[Any, float, str]:
    """The probe as fitted before: (the fitted search, C, weighting)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV, StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    search = GridSearchCV(
        make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000)),
        {"logisticregression__C": OLD_GRID,
         "logisticregression__class_weight": [None, "balanced"]},
        scoring="balanced_accuracy", cv=StratifiedKFold(OLD_FOLDS, shuffle=True,
                                                        random_state=seed))
    search.fit(x, y)
    return search, float(search.best_params_["logisticregression__C"]), \
        str(search.best_params_["logisticregression__class_weight"] or "none")


def features(name: str, pool: Path, cache: Path) -> tuple[np.ndarray, np.ndarray]:
    path = cache / f"{name}.npz"
    if not path.is_file():
        x, names = pooled_features(WEIGHTS, pool, SIZES[name])
        classes = sorted(set(names))
        np.savez(path, x=x, y=np.array([classes.index(n) for n in names]))
    stored = np.load(path)
    return stored["x"], stored["y"]


def measure(name: str, pool: Path, seed: int, cache: Path) -> dict:
    from sklearn.metrics import balanced_accuracy_score
    from sklearn.model_selection import train_test_split

    from tlsweep.training import fit_baseline

    x, y = features(name, pool, cache)
    train, rest = train_test_split(np.arange(len(y)), train_size=0.6, stratify=y,
                                   random_state=seed)
    val, _ = train_test_split(rest, train_size=0.5, stratify=y[rest], random_state=seed)
    row: dict = {"set": name, "seed": seed, "train": len(train)}
    began = time.perf_counter()
    search, c, weighting = old_probe(x[train], y[train], seed)
    row |= {"old_s": time.perf_counter() - began, "old_c": c, "old_weighting": weighting,
            "old_val": balanced_accuracy_score(y[val], search.predict(x[val]))}
    began = time.perf_counter()
    fit = fit_baseline(x[train], y[train], "balanced_accuracy", seed)
    row |= {"new_s": time.perf_counter() - began, "new_c": fit.c, "new_weighting": fit.weighting,
            "new_val": balanced_accuracy_score(y[val], fit.predict(x[val]))}
    return row


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, default=HERE / "runs" / "probe-cost")
    parser.add_argument("--suite", type=Path, default=HERE / "runs" / "suite",
                        help="a suite folder holding <set>-s0/pool")
    parser.add_argument("--sets", nargs="+", default=list(SIZES), choices=list(SIZES))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    rows_path = args.out / "rows.jsonl"
    done = {(r["set"], r["seed"]) for r in map(json.loads, rows_path.open())} \
        if rows_path.is_file() else set()
    for name in args.sets:
        for seed in args.seeds:
            if (name, seed) in done:
                continue
            row = measure(name, args.suite / f"{name}-s0" / "pool", seed, args.out)
            with rows_path.open("a") as out:
                out.write(json.dumps(row) + "\n")
            print(json.dumps(row), flush=True)
    rows = [json.loads(line) for line in rows_path.open()]
    print("| set | seed | train images | before: s, C, weighting, val | now: s, C, weighting, "
          "val | time ratio |\n| --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['set']} | {r['seed']} | {r['train']} | {r['old_s']:.0f} s, {r['old_c']:.3g}, "
              f"{r['old_weighting']}, {r['old_val']:.3f} | {r['new_s']:.0f} s, {r['new_c']:.3g}, "
              f"{r['new_weighting']}, {r['new_val']:.3f} | {r['old_s'] / r['new_s']:.1f}× |")


if __name__ == "__main__":
    main()
