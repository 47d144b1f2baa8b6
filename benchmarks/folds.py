"""The finalists' stage again, with another number of folds, on studies `honest.py` already ran.

The search is deterministic given its seed, so only the finalists' stage differs between fold
counts: this replays it on a copy of each study (the originals are untouched) and compares the
estimate it reports with the delivered model's test score, against the stored run.

    python benchmarks/folds.py --folds 5                    # every study under runs/honest
    python benchmarks/folds.py --folds 5 --studies flowers-small-seed0
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

from rich.console import Console

from tlsweep.finalists import FinalReport

REPO = Path(__file__).resolve().parents[1]
RUNS = REPO / "benchmarks" / "runs" / "honest"


def _chosen(report: FinalReport) -> tuple[float, float, float, float]:
    """(estimate, low, high, test) of the delivered model, balanced accuracy."""
    import numpy as np

    from tlsweep.measures._intervals import balanced_estimate

    finalist = report.finalist(report.chosen)
    estimate = balanced_estimate(np.asarray(finalist.cv_confusion))
    test = balanced_estimate(np.asarray(report.delivered.test_confusion))
    return estimate.value, estimate.low, estimate.high, test.value


def replay(source: Path, folds: int, scratch: Path) -> dict:
    from tlsweep.config import load_sweep
    from tlsweep.finalists import FinalStage, study_report
    from tlsweep.store import load_study
    from tlsweep.sweep import stage_inputs
    from tlsweep.sweep._study import prepare

    copy = scratch / source.name
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(source, copy, symlinks=True)
    text = (copy / "sweep.yaml").read_text()
    # The question is the folds' count: the finalists compared, the probe kept out of it.
    (copy / "sweep.yaml").write_text(
        text + f"finalists: {{folds: {folds}, probe_competes: false}}\n")
    plan = prepare(load_sweep(copy / "sweep.yaml"), copy / "results")
    study = load_study(plan.directory, plan.sweep.config.study)
    before = _chosen(study_report(study))
    began = time.perf_counter()
    report = FinalStage(Console(stderr=True)).run(stage_inputs(plan), study)
    if report is None:
        raise SystemExit(f"{source.name}: the finalists' stage failed; see its tlsweep.log")
    after = _chosen(report)
    return {"study": source.name, "folds": folds, "seconds": time.perf_counter() - began,
            "before": dict(zip(("estimate", "low", "high", "test"), before, strict=True)),
            "after": dict(zip(("estimate", "low", "high", "test"), after, strict=True))}


def table(rows: list[dict]) -> str:
    lines = ["| study | 3 folds: estimate [95% CI] | test | error | N folds: estimate [95% CI] "
             "| test | error | stage s |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for row in rows:
        b, a = row["before"], row["after"]
        lines.append(f"| {row['study']} | {b['estimate']:.3f} [{b['low']:.3f}, {b['high']:.3f}] "
                     f"| {b['test']:.3f} | {b['estimate'] - b['test']:+.3f} | "
                     f"{a['estimate']:.3f} [{a['low']:.3f}, {a['high']:.3f}] | {a['test']:.3f} "
                     f"| {a['estimate'] - a['test']:+.3f} | {row['seconds']:.0f} |")
    for key in ("before", "after"):
        errors = [abs(r[key]["estimate"] - r[key]["test"]) for r in rows]
        lines.append(f"\n{key}: mean |estimate - test| {sum(errors) / len(errors):.3f}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--studies", nargs="+", default=None)
    parser.add_argument("--scratch", type=Path, default=REPO / "benchmarks" / "runs" / "folds")
    args = parser.parse_args()
    names = args.studies or sorted(p.name for p in RUNS.glob("flowers-small-seed*"))
    if not names:
        sys.exit(f"skipped: no studies under {RUNS}; run benchmarks/honest.py first")
    rows = []
    for name in names:
        rows.append(replay(RUNS / name, args.folds, args.scratch))
        print(json.dumps(rows[-1]), flush=True)
    tag = "-".join(sorted({name.rsplit("-seed", 1)[0] for name in names}))
    (args.scratch / f"results-{tag}-{args.folds}.json").write_text(json.dumps(rows, indent=2))
    print(table(rows))


if __name__ == "__main__":
    main()
