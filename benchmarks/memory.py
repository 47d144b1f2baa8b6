"""Memory over a 20-trial sweep: the orchestrator's resident-memory growth and each worker's peak.

Run by hand:  python benchmarks/memory.py [--trials 20]
It runs the quickstart sweep (digits transfer, offline) as a real `tlsweep run` subprocess, samples
the orchestrator's and the workers' resident memory from /proc twice a second, and prints a
Markdown table for benchmarks/RESULTS.md. Target: the orchestrator grows by at most 50 MB.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import optuna

from tlsweep.cli import _quickstart as quickstart
from tlsweep.store._paths import sqlite_url


def rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def workers(pid: int) -> list[int]:
    """The orchestrator's worker processes (not multiprocessing's resource tracker)."""
    try:
        found = [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
        return [c for c in found
                if b"resource_tracker" not in Path(f"/proc/{c}/cmdline").read_bytes()]
    except OSError:
        return []


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=20)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="tlsweep-memory-"))
    sweep = quickstart.prepare()
    text = sweep.read_text().replace("study: quickstart", "study: memory-bench")
    bench = sweep.with_name("memory-bench.yaml")
    bench.write_text(text)
    env = {**os.environ, "TLSWEEP_RESULTS": str(workdir / "results")}
    started = time.monotonic()
    process = subprocess.Popen([sys.executable, "-m", "tlsweep", "run", str(bench), "--trials",
                                str(args.trials)], env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    orchestrator: list[tuple[datetime, float]] = []
    worker_peaks: dict[int, float] = {}
    while process.poll() is None:
        now = datetime.now()  # naive local time, as Optuna stamps trials
        own = rss_mb(process.pid)
        if own is not None:
            orchestrator.append((now, own))
        for child in workers(process.pid):
            value = rss_mb(child)
            if value is not None:
                worker_peaks[child] = max(worker_peaks.get(child, 0.0), value)
        time.sleep(0.5)
    elapsed = time.monotonic() - started
    study = optuna.load_study(study_name="memory-bench",
                              storage=sqlite_url(workdir / "results" / "memory-bench"))
    trials = [t for t in study.trials if t.state.is_finished()]
    first_done = min(t.datetime_complete for t in trials)
    last_done = max(t.datetime_complete for t in trials)
    # Growth over the trials: from the end of the first (imports done, worker up) to the end of
    # the last. The importance analysis after the last trial (scikit-learn forests for fANOVA
    # and MDI) is a one-off, reported on its own line.
    settled = [rss for when, rss in orchestrator if when >= first_done]
    during = [rss for when, rss in orchestrator if when <= last_done + timedelta(seconds=1)]
    growth = during[-1] - settled[0]
    peaks = [t.user_attrs.get("worker_peak_rss_mb") for t in trials]
    print(f"## Memory over a {args.trials}-trial sweep ({datetime.now(UTC):%Y-%m-%d})\n")
    print(f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python "
          f"{platform.python_version()}; command: `python benchmarks/memory.py --trials "
          f"{args.trials}`; wall time {elapsed:.0f} s; exit code {process.returncode}.\n")
    print("| measure | value |\n| --- | --- |")
    print(f"| trials finished | {len(trials)} |")
    print(f"| orchestrator RSS after the first trial | {settled[0]:.0f} MB |")
    print(f"| orchestrator RSS after the last trial | {during[-1]:.0f} MB |")
    print(f"| orchestrator growth over the trials (target <= 50 MB) | {growth:+.1f} MB |")
    print(f"| orchestrator peak, with the importance analysis after the run | "
          f"{max(r for _, r in orchestrator):.0f} MB |")
    print(f"| worker processes used | {len(worker_peaks)} |")
    for pid, peak in sorted(worker_peaks.items()):
        print(f"| worker {pid} peak RSS (sampled) | {peak:.0f} MB |")
    known = [p for p in peaks if p]
    if known:
        print(f"| worker peak RSS reported per trial (first, last) | {known[0]:.0f} MB, "
              f"{known[-1]:.0f} MB |")


if __name__ == "__main__":
    main()
