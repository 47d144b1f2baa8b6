"""Beat the probe, paired: the delivered model and the probe on the same test images.

    python benchmarks/probe_paired.py benchmarks/runs/beat_probe_ba/*-seed*

Reads kept runs of ``beat_probe.py`` (each folder holds sweep.yaml and results/) and trains
nothing but the probe, as beat_probe fits it: logistic regression on the frozen features of
train+val, the refit's images. The delivered model predicts the test images again, and each
side's score is checked against the one beat_probe recorded (results.json beside the runs).

``beat_probe`` judges "delivered − probe" by its point value. Both are scored on the same test
images, so the gap's noise comes only from the images where they disagree: the paired,
class-stratified bootstrap of ``tlsweep.measures.paired_gap`` gives its standard error, on the
study's objective (balanced accuracy). That SE is the test set's sampling noise alone; the
training-seed spread is what the three seeds show.
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from beat_probe import frozen_sets, probe_on_test, scored_on_test

from tlsweep.measures import paired_gap


def recorded(root: Path) -> dict:
    """beat_probe's row for this run, from the results.json beside it ({} when absent)."""
    saved = root.parent / "results.json"
    rows = json.loads(saved.read_text()) if saved.is_file() else []
    name = root.name.split("-seed")[0]
    seed = int(root.name.split("-seed")[1].split("-")[0])
    return next((r for r in rows if f"{r['set']}-{r['arm']}" == name and r["seed"] == seed), {})


def against_probe(root: Path) -> dict:
    """The delivered model's and the train+val probe's test predictions, and their paired gap."""
    import keras

    from tlsweep.finalists._folds import predict_images
    from tlsweep.store import load_study

    plan, features, preprocess = frozen_sets(root / "sweep.yaml", root / "results")
    config, data = plan.sweep.config, plan.dataset
    probe = probe_on_test(plan, features, ("train", "val"))
    final = load_study(plan.directory, config.study).user_attrs["final"]
    delivered = probe if final["chosen"] is None else predict_images(
        keras.models.load_model(final["delivered"]["path"], compile=False), data.x_test,
        preprocess)
    gap = paired_gap(data.y_test, delivered, probe, config.objective, seed=config.seed)
    return {"run": config.study, "images": len(data.y_test),
            "delivered": scored_on_test(data, delivered), "probe": scored_on_test(data, probe),
            "gap": gap.gap, "se": gap.se,
            "disagree": float(np.mean(delivered != probe)), "recorded": recorded(root)}


def table(rows: list[dict]) -> list[str]:
    lines = ["| run | test images | delivered (recorded) | probe, train+val (recorded) | "
             "delivered − probe | paired SE | gap / SE | images they disagree on |",
             "| --- " * 8 + "|"]
    for r in rows:
        was = r["recorded"]
        lines.append(
            f"| {r['run']} | {r['images']} | {r['delivered']:.3f} ({was.get('test', np.nan):.3f})"
            f" | {r['probe']:.3f} ({was.get('probe_trainval_test', np.nan):.3f}) | "
            f"{100 * r['gap']:+.2f} | {100 * r['se']:.2f} | {r['gap'] / r['se']:+.1f} | "
            f"{r['disagree']:.1%} |")
    return lines


def means(rows: list[dict]) -> list[str]:
    """Per set and arm: the mean gap over seeds and the test images' share of its noise. The
    seeds' test sets are seeded splits of the same images and overlap, so their errors are not
    independent: the mean's SE lies between the independent case, sqrt(sum SE^2) / n, and the
    fully correlated one, the mean SE."""
    lines = []
    for group in dict.fromkeys(r["run"].split("-seed")[0] for r in rows):
        mine = [r for r in rows if r["run"].split("-seed")[0] == group]
        gap = np.mean([r["gap"] for r in mine])
        low = np.sqrt(np.sum([r["se"] ** 2 for r in mine])) / len(mine)
        high = np.mean([r["se"] for r in mine])
        lines.append(f"- {group}: delivered − probe {100 * gap:+.2f} points on the mean of "
                     f"{len(mine)} seeds; the test images' SE of that mean is "
                     f"{100 * low:.2f}–{100 * high:.2f} ({gap / high:+.1f} to {gap / low:+.1f} "
                     f"SE, seeds independent to fully correlated); the smallest per-seed gap "
                     f"{100 * min(r['gap'] for r in mine):+.2f}.")
    return lines


def once_per_study(runs: list[Path]) -> list[Path]:
    """Each study once, from the first folder given for it: ``means`` groups by the study's
    name, which a folder's name need not be (beat_probe adds ``-224px``, ``-workersN``), so the
    same set, arm and seed from two runs would count that seed twice."""
    from tlsweep.config import load_sweep

    first: dict[str, Path] = {}
    for root in runs:
        study = load_sweep(root / "sweep.yaml").config.study
        if study in first:
            print(f"{root}: study {study} already given as {first[study]}; counted once")
        first.setdefault(study, root)
    return list(first.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", type=Path, nargs="+", help="beat_probe run folders")
    runs = parser.parse_args().runs
    missing = [r for r in runs if not (r / "sweep.yaml").is_file()]
    if missing:
        raise SystemExit(f"{missing[0]}: no sweep.yaml; give beat_probe run folders "
                         f"(benchmarks/runs/beat_probe*/SET-ARM-seedN)")
    rows = [against_probe(root.resolve()) for root in once_per_study(runs)]
    command = "python benchmarks/probe_paired.py " + " ".join(map(str, runs))
    print("\n".join([f"Paired on test ({datetime.now(UTC).date()}), command: `{command}`", "",
                     *table(rows), "", *means(rows)]))


if __name__ == "__main__":
    main()
