"""Optuna's pruners side by side (issue 14): which default finds the better model for its epochs?

The search-efficiency setup (``search_efficiency.VAL_400``: a flowers subset with 2,000 validation
images, MobileNetV2 with the shared weights at 96 px, 2 head + 4 fine-tune epochs a full trial,
a budget of 48 epochs), the product's search space and recipe. Every arm is a real `tlsweep run`
with the TPE sampler (4 random trials first), stopped by the epoch budget, and no pruning before
one fine-tune epoch (the default 4 is this setup's whole fine-tune phase). Only the pruner varies:

- successive-halving: tlsweep's default (minimum resource 2 epochs, reduction factor 3)
- hyperband: Optuna's HyperbandPruner (minimum resource 1, reduction factor 3)
- sh-patient: successive halving inside Optuna's PatientPruner (patience 1 epoch)
- median: Optuna's MedianPruner (3 startup trials, 1 warm-up step)
- none: no pruning: what pruning buys is measured against it

Reported per arm and seed: trials, trials pruned, epochs, wall time, and the best validation
accuracy once the 48-epoch budget is spent. Seeds run interleaved, so machine noise spreads over
every arm.

    python benchmarks/pruners.py                       # seeds 0 and 1: about 50 min on 2 cores
    python benchmarks/pruners.py --seeds 0 --arms none hyperband
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
from search_efficiency import (
    HERE,
    SHARED,
    VAL_400,
    WEIGHTS,
    Setup,
    best_at,
    run_traced,
    space_file,
    subset,
    sweep_file,
)

PRUNERS = {  # each arm's pruner settings, beside the rule every arm shares (see options)
    "successive-halving": "kind: successive_halving, min_resource: 2, reduction_factor: 3",
    "hyperband": "kind: hyperband, min_resource: 1, reduction_factor: 3",
    "sh-patient": "kind: successive_halving, min_resource: 2, reduction_factor: 3, patience: 1",
    "median": "kind: median, n_startup_trials: 3, n_warmup_steps: 1",
    "none": "kind: none",
}


def options(arm: str, setup: Setup) -> str:
    return (f"budget: {{trials: 1000, epochs: {setup.budget_epochs}}}\n"
            "sampler: {kind: tpe, n_startup_trials: 4}\n"
            f"pruner: {{{PRUNERS[arm]}, min_finetune_epochs: 1}}\n")


def measure(arms: list[str], setup: Setup, out: Path) -> pd.DataFrame:
    results = out / f"results-{int(time.time())}"
    data, space = subset(out, setup), space_file(out, setup)
    rows = []
    for seed in setup.seeds:
        for arm in arms:
            board, path, wall = run_traced(sweep_file(out, data, space, setup, arm, seed,
                                                      options(arm, setup)), results)
            rows.append({"arm": arm, "seed": seed, "trials": len(board),
                         "pruned": int((board["state"] == "pruned").sum()),
                         "epochs": int(path["epochs"].iloc[-1]), "wall_s": wall,
                         "best_at_budget": best_at(path, "epochs", setup.budget_epochs)})
            print(f"seed {seed} {arm}: {rows[-1]}", flush=True)
    return pd.DataFrame(rows)


def table(summary: pd.DataFrame, arms: list[str]) -> str:
    seeds = sorted(summary["seed"].unique())
    lines = ["| pruner | trials (pruned) | epochs | wall s | "
             + " | ".join(f"best, seed {s}" for s in seeds) + " | best, mean |",
             "| --- | --- | --- | --- | " + "--- | " * len(seeds) + "--- |"]
    for arm in arms:
        part = summary[summary["arm"] == arm].set_index("seed")
        lines.append(
            f"| {arm} | {part['trials'].mean():.1f} ({part['pruned'].mean():.1f}) | "
            f"{part['epochs'].mean():.1f} | {part['wall_s'].mean():.0f} | "
            + " | ".join(f"{part.loc[s, 'best_at_budget']:.3f}" for s in seeds)
            + f" | {part['best_at_budget'].mean():.3f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--arms", nargs="+", default=list(PRUNERS), choices=list(PRUNERS))
    parser.add_argument("--out", type=Path, default=HERE / "runs" / "pruners")
    args = parser.parse_args()
    if not (SHARED / "data" / "flowers").is_dir() or not WEIGHTS.is_file():
        raise SystemExit(f"needs {SHARED}/data/flowers and {WEIGHTS}; set TLSWEEP_SHARED")
    setup = Setup(**{**VAL_400.__dict__, "seeds": args.seeds})
    arms = [arm for arm in PRUNERS if arm in args.arms]
    args.out.mkdir(parents=True, exist_ok=True)
    began = time.perf_counter()
    summary = measure(arms, setup, args.out)
    summary.to_csv(args.out / "summary.csv", index=False)
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    print(f"\n{datetime.now(UTC).date()}, {machine}, "
          f"{(time.perf_counter() - began) / 60:.1f} min\n\n{table(summary, arms)}")


if __name__ == "__main__":
    main()
