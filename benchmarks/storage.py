"""Several processes on one study: SQLite against Optuna's JournalStorage file, side by side.

Run by hand:  python benchmarks/storage.py [--processes 4] [--trials 40]
Each process does what a tlsweep worker does to the storage for one trial, over and over: ask,
five user attributes, one intermediate value and a curve update per epoch (8 epochs), a heartbeat,
then tell. Reported per backend: wall time, trials per second, and the errors the processes met
(SQLite's "database is locked" among them). Prints a Markdown table for benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import platform
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import optuna

import tlsweep.sweep._study  # noqa: F401 - its warning filters quiet the heartbeat notices
from tlsweep.store import open_storage
from tlsweep.store._storage import JOURNAL_SCHEME

EPOCHS = 8


def one_process(url: str, trials: int, queue: multiprocessing.Queue) -> None:
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    errors: Counter[str] = Counter()
    done = 0
    study = optuna.load_study(study_name="bench", storage=open_storage(url))
    for _ in range(trials):
        try:
            trial = study.ask()
            trial.suggest_float("head_lr", 1e-4, 1e-2, log=True)
            for key in ("params", "owner", "worker", "started_at", "error"):
                trial.set_user_attr(key, {"value": key, "pid": os.getpid()})
            curve = []
            for step in range(EPOCHS):
                curve.append({"step": step, "val_accuracy": 0.5})
                trial.set_user_attr("curve", curve)
                trial.report(0.5 + step / 100, step)
            study.tell(trial, 0.9)
            done += 1
        except Exception as exc:
            errors[f"{type(exc).__name__}: {str(exc).splitlines()[0][:60]}"] += 1
    queue.put((done, errors))


def measure(url: str, processes: int, trials: int) -> tuple[float, int, Counter[str]]:
    optuna.create_study(study_name="bench", storage=open_storage(url))
    queue: multiprocessing.Queue = multiprocessing.Queue()
    workers = [multiprocessing.Process(target=one_process, args=(url, trials, queue))
               for _ in range(processes)]
    started = time.perf_counter()
    for worker in workers:
        worker.start()
    results = [queue.get() for _ in workers]
    for worker in workers:
        worker.join()
    elapsed = time.perf_counter() - started
    errors: Counter[str] = Counter()
    for _, counts in results:
        errors.update(counts)
    return elapsed, sum(done for done, _ in results), errors


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--trials", type=int, default=40, help="per process")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="tlsweep-storage-"))
    backends = {
        "SQLite (RDBStorage)": f"sqlite:///{folder / 'study.db'}",
        "JournalStorage file": f"{JOURNAL_SCHEME}{folder / 'journal.log'}",
    }
    print(f"## Storage with several processes ({datetime.now(UTC):%Y-%m-%d})\n")
    print(f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python "
          f"{platform.python_version()}, Optuna {optuna.__version__}; command: `python "
          f"benchmarks/storage.py --processes {args.processes} --trials {args.trials}`.\n")
    print("| storage | processes | trials done / asked | wall time | trials/s | errors |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, url in backends.items():
        elapsed, done, errors = measure(url, args.processes, args.trials)
        shown = "; ".join(f"{count}x {text}" for text, count in errors.most_common(3)) or "none"
        print(f"| {name} | {args.processes} | {done} / {args.processes * args.trials} | "
              f"{elapsed:.1f} s | {done / elapsed:.1f} | {shown} |")


if __name__ == "__main__":
    main()
