"""Per-trial overhead of the quickstart sweep, before and after warm workers, side by side.

Run by hand:  python benchmarks/overhead.py [--baseline-ref a7df237]

Runs the quickstart sweep (16 trials, same file and seed) in four set-ups, one after another in
one run, each as a real `tlsweep run`:
- before:       the code at --baseline-ref (the commit before the overhead work), from a
                temporary git worktree
- after:        this checkout, defaults (warm workers reuse compiled models)
- after, cold:  this checkout with a fresh worker for every trial (recycle_memory_mb: 256)
- after, cold, reduced graph optimisation: the same with Grappler's meta optimiser off

Each trial's wall time is split, from the epochs' own timings, into steady training epochs,
tracing (a first epoch after a new trace, less the phase's median epoch), and the rest (building
models, validation, checkpoints, the orchestrator's storage writes, pipes); the instrumented
set-ups split the rest further. Worker start-up (process, TensorFlow import, data) is reported
for the trial that pays it. Prints Markdown for benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from statistics import median
from typing import Any

import optuna
import pandas as pd

HERE = Path(__file__).resolve().parent
REPO = HERE.parent


def sweep_variant(quickstart: Path, name: str, execution: str | None) -> Path:
    """The quickstart sweep with an execution section, next to the original (same paths)."""
    text = quickstart.read_text()
    if execution:
        text += f"execution: {execution}\n"
    path = quickstart.with_name(f"overhead-{name}.yaml")
    path.write_text(text)
    return path


def run(sweep: Path, results: Path, src: Path) -> float:
    env = {**os.environ, "TLSWEEP_RESULTS": str(results), "PYTHONPATH": str(src),
           "TLSWEEP_PLAIN_OUTPUT": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
    began = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "tlsweep", "run", str(sweep)], env=env,
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{sweep.name} failed:\n{done.stderr[-3000:]}")
    return time.perf_counter() - began


def first_of_fit(curve: list[dict[str, Any]]) -> list[bool]:
    return [i == 0 or curve[i]["phase"] != curve[i - 1]["phase"] for i in range(len(curve))]


def trial_rows(study: optuna.Study) -> list[dict[str, Any]]:
    """Per trial: training epochs counted at their phase's steady speed (the median of the
    trial's epochs of that phase that are not the first of a fit; the study's, for a phase
    with one epoch); each fit's first epoch's excess over it is tracing
    when a train function was traced, else fit set-up (making the data iterator, the first
    batch). The code before this work recorded no trace flags: all its excess is tracing."""
    trials = sorted(study.trials, key=lambda t: t.number)
    starts = [t.user_attrs.get("started_unix") or pd.Timestamp(
        t.user_attrs["started_at"]).timestamp() for t in trials]
    curves = [t.user_attrs.get("curve", []) for t in trials]
    study_steady = {phase: median(d) for phase, d in pd.DataFrame(
        [r for curve in curves for r, first in zip(curve, first_of_fit(curve), strict=True)
         if not first]).groupby("phase")["duration_s"]}
    rows = []
    for index, (trial, curve) in enumerate(zip(trials, curves, strict=True)):
        attrs = trial.user_attrs
        timings = (attrs.get("result") or {}).get("timings") or {}
        firsts = first_of_fit(curve)
        traced = [epoch[2] for epoch in timings.get("epochs", [])] or firsts  # 3 or 4 fields
        steady = {phase: median([r["duration_s"] for r, first in zip(curve, firsts, strict=True)
                                 if r["phase"] == phase and not first] or [study_steady[phase]])
                  for phase in {r["phase"] for r in curve}}
        excess = {True: 0.0, False: 0.0}  # by traced
        for record, first, trace in zip(curve, firsts, traced, strict=True):
            if first:
                excess[trace] += record["duration_s"] - steady[record["phase"]]
        epochs = sum(r["duration_s"] for r in curve) - excess[True] - excess[False]
        wall = (starts[index + 1] - starts[index]) if index + 1 < len(trials) else None
        rows.append({"trial": trial.number, "wall_s": wall, "duration_s": attrs["duration_s"],
                     "n_epochs": len(curve),
                     "epochs_s": epochs, "tracing_s": excess[True],
                     "setup_s": excess[False] if timings else None,
                     "build_s": timings.get("build_s"), "validation_s": timings.get(
                         "validation_s"), "checkpoint_s": timings.get("checkpoint_s"),
                     "report_s": timings.get("report_s"),
                     "startup_s": (attrs.get("worker_startup") or {}).get("total_s")})
    return rows


def summarise(name: str, frame: pd.DataFrame, total: float) -> dict[str, Any]:
    later = frame.iloc[1:-1]  # second and later trials with a measured wall (the last has none)
    wall = later["wall_s"].mean()
    mean = {c: later[c].mean() for c in ("epochs_s", "tracing_s", "setup_s", "build_s",
                                          "validation_s", "checkpoint_s", "report_s",
                                          "startup_s")}
    outside = 1 - mean["epochs_s"] / wall
    # Keras counts validation_data into an epoch, and the breakdown (process start,
    # import, data, build, tracing, epochs, storage) has no other place for it.
    with_validation = 1 - (mean["epochs_s"] + (mean["validation_s"] or 0.0)) / wall \
        if pd.notna(mean["validation_s"]) else None
    return {"set-up": name, "total wall (s)": total, "trials": len(frame),
            "first trial: worker start-up (s)": frame["startup_s"].iloc[0],
            "first trial: tracing (s)": frame["tracing_s"].iloc[0],
            "later trials: wall (s)": wall,
            "epochs per later trial": later["n_epochs"].mean(),
            "one training epoch (s)": later["epochs_s"].sum() / later["n_epochs"].sum(),
            "training epochs (s)": mean["epochs_s"],
            "tracing (s)": mean["tracing_s"],
            "fit set-up: iterator, first batch (s)": mean["setup_s"],
            "build or reset (s)": mean["build_s"], "validation (s)": mean["validation_s"],
            "checkpoints (s)": mean["checkpoint_s"], "storage and pipe (s)": mean["report_s"],
            "worker start-up (s)": mean["startup_s"],
            "other (s)": wall - mean["epochs_s"] - mean["tracing_s"] - sum(
                v for k, v in mean.items() if k not in ("epochs_s", "tracing_s")
                and pd.notna(v)),
            "outside training epochs": outside,
            "outside training epochs with their validation": with_validation}


def markdown(rows: list[dict[str, Any]]) -> str:
    keys = list(rows[0])
    lines = ["| measure | " + " | ".join(r["set-up"] for r in rows) + " |",
             "| --- |" + " --- |" * len(rows)]
    for key in keys[1:]:
        cells = []
        for row in rows:
            value = row[key]
            cells.append("–" if value is None or pd.isna(value) else
                         f"{value:.0%}" if key.startswith("outside") else
                         f"{value:.0f}" if key == "trials" else f"{value:.2f}")
        lines.append(f"| {key} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline-ref", default="a7df237",
                        help="git commit of the code before the overhead work")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO / "src"))
    from tlsweep.cli._quickstart import prepare

    quickstart = prepare()
    work = Path(tempfile.mkdtemp(prefix="tlsweep-overhead-"))
    baseline = work / "baseline"
    subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", "-q", str(baseline),
                    args.baseline_ref], check=True)
    setups = [("before", None, baseline / "src"),
              ("after", None, REPO / "src"),
              ("after, cold workers", "{recycle_memory_mb: 256}", REPO / "src"),
              ("after, cold, reduced graph optimisation",
               "{recycle_memory_mb: 256, reduced_graph_optimization: true}", REPO / "src")]
    rows = []
    try:
        for index, (name, execution, src) in enumerate(setups):
            sweep = sweep_variant(quickstart, str(index), execution)
            results = work / f"results-{index}"
            total = run(sweep, results, src)
            study = optuna.load_study(study_name="quickstart",
                                      storage=f"sqlite:///{results / 'quickstart' / 'study.db'}")
            rows.append(summarise(name, pd.DataFrame(trial_rows(study)), total))
            print(f"{name}: {total:.0f} s", flush=True)
    finally:
        subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force",
                        str(baseline)], check=False)
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    print(f"\n## Per-trial overhead, quickstart sweep ({datetime.now(UTC).date()})\n\n"
          f"Machine: {machine}; command: `python benchmarks/overhead.py --baseline-ref "
          f"{args.baseline_ref}`. Later trials: means over trials 2 to 15.\n")
    print(markdown(rows))
    before, after = rows[0]["total wall (s)"], rows[1]["total wall (s)"]
    print(f"\nQuickstart wall time after / before: {after / before:.2f} (target <= 0.50). "
          f"Time outside training epochs in later trials, after: "
          f"{rows[1]['outside training epochs with their validation']:.0%} counting each "
          f"epoch's validation in the epoch, {rows[1]['outside training epochs']:.0%} counting "
          f"it outside (target <= 15%).")


if __name__ == "__main__":
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    main()
