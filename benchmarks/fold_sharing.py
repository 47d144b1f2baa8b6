"""The finalists' folds shared by `tlsweep worker`s on PostgreSQL (issue 37): one worker
against two, on the same sweep.

Run by hand, with a PostgreSQL server (``.ci/postgres.sh`` starts one):

    TLSWEEP_TEST_POSTGRES_URL=postgresql://... python benchmarks/fold_sharing.py

Per arm, a fresh study of the same sweep (hymenoptera's train folder at 96 px, MobileNetV2,
4 trials, then 5-fold cross-validation of the top 3: 15 folds). Worker A runs the search alone,
so both arms search alike; in the two-worker arm, worker B starts while A's last trial trains,
finds the budget spent, and joins the stage. Each worker has one CPU thread
(``TLSWEEP_THREADS=1``), standing for one machine each. Afterwards ``tlsweep resume`` leads the
stage: it finds every fold recorded, chooses, refits and scores. Reported: the folds' wall time
(first fold's start to last fold's end, from the fold records), the folds each worker trained,
and the lead's time. Only the CLI and the public ``tlsweep.finalists`` and ``tlsweep.store``.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import optuna

from tlsweep.finalists import recorded_folds, study_report
from tlsweep.store import finished_count

SHARED = Path(os.environ.get("TLSWEEP_SHARED", Path(__file__).resolve().parents[2] / "shared"))
TRIALS = 4


def write_sweep(folder: Path, name: str) -> Path:
    weights = SHARED / "weights" / "mobilenet_v2_1.0_notop.weights.h5"
    space = folder / "space.yaml"
    space.write_text(
        f"backbone: {{choices: {{MobileNetV2: {{weights: {weights}}}}}}}\n"
        "unfreeze_depth: {low: 0.0, high: 0.7}\n"
        "head_lr: {low: 1.0e-05, high: 0.001, log: true}\n"
        "finetune_lr: {low: 1.0e-05, high: 0.0003, log: true}\n"
        "augmentation_strength: {low: 0.0, high: 1.0}\n"
        "class_weighting: {choices: [none, balanced]}\n")
    sweep = folder / f"{name}.yaml"
    sweep.write_text(
        f"study: {name}\n"
        f"data: {{dir: {SHARED / 'data' / 'hymenoptera_data' / 'train'}, val_split: 0.2, "
        "test_split: 0.2, image_size: 96}\n"
        f"search_space: {space}\nseed: 0\nbudget: {{trials: {TRIALS}}}\n"
        "training: {head_epochs: 1, finetune_epochs: 3, batch_size: 32}\n"
        "pruner: {kind: none, min_finetune_epochs: 0}\n"
        "finalists: {k: 3, folds: 5, fold_workers: 1}\n"
        f"execution: {{checkpoint_dir: {folder / 'shared-checkpoints'}}}\n")
    return sweep


def worker(sweep: Path, env: dict[str, str], log: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "tlsweep", "worker", str(sweep)],
                            stdout=log.open("w"), stderr=subprocess.STDOUT, env=env)


def delivered(report: object) -> str:
    if report is None:
        return "none"
    model = report.delivered
    return "the probe" if model.is_probe else f"trial {model.trial} ({model.kind})"


def arm(workers: int, url: str, folder: Path) -> dict:
    name = f"share{workers}-{uuid.uuid4().hex[:6]}"
    sweep = write_sweep(folder, name)
    env = {**os.environ, "TLSWEEP_STORAGE": url, "TLSWEEP_THREADS": "1",
           "TLSWEEP_RESULTS": str(folder / "results"), "TLSWEEP_PLAIN_OUTPUT": "1"}
    processes = [worker(sweep, env, folder / f"{name}-a.log")]
    if workers == 2:  # B joins once A's last trial is training
        while True:
            try:
                if finished_count(optuna.load_study(study_name=name, storage=url)) >= \
                        TRIALS - 1:
                    break
            except KeyError:
                pass
            time.sleep(1.0)
        processes.append(worker(sweep, env, folder / f"{name}-b.log"))
    codes = [p.wait() for p in processes]
    assert codes == [0] * workers, f"workers exited with {codes}: see {folder}"
    folds = recorded_folds(optuna.load_study(study_name=name, storage=url).user_attrs).values()
    starts = [datetime.fromisoformat(f.started_at).timestamp() for f in folds]
    ends = [s + f.seconds for s, f in zip(starts, folds, strict=True)]
    pids = {str(p.pid): label for p, label in zip(processes, "AB", strict=False)}
    by = Counter(pids.get(f.claimed_by.rsplit(":", 1)[1], "?") for f in folds)
    began = time.perf_counter()
    lead = subprocess.run([sys.executable, "-m", "tlsweep", "resume", name], env=env,
                          capture_output=True, text=True)
    lead_s = time.perf_counter() - began
    assert lead.returncode == 0, lead.stdout[-2000:] + lead.stderr[-2000:]
    report = study_report(optuna.load_study(study_name=name, storage=url))
    return {"workers": workers, "folds": len(starts), "wall": max(ends) - min(starts),
            "fold_s": sum(f.seconds for f in folds), "by": dict(sorted(by.items())),
            "lead_s": lead_s, "delivered": delivered(report)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=os.environ.get("TLSWEEP_TEST_POSTGRES_URL"))
    args = parser.parse_args()
    if not args.url:
        raise SystemExit("no PostgreSQL: pass --url or set TLSWEEP_TEST_POSTGRES_URL")
    with tempfile.TemporaryDirectory() as folder:
        rows = [arm(n, args.url, Path(folder)) for n in (1, 2)]
    print(f"Machine: {platform.machine()}, {os.cpu_count()} cores; "
          f"{datetime.now(UTC):%Y-%m-%d}\n")
    print("| workers | folds | folds' wall time (s) | fold-seconds | folds by worker | "
          "lead (resume) (s) | delivered |")
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['workers']} | {row['folds']} | {row['wall']:.0f} | {row['fold_s']:.0f} | "
              f"{', '.join(f'{k} {v}' for k, v in row['by'].items())} | {row['lead_s']:.0f} | "
              f"{row['delivered']} |")
    print(f"\nspeed-up of the folds: {rows[0]['wall'] / rows[1]['wall']:.2f}x")


if __name__ == "__main__":
    main()
