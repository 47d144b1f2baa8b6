"""Deliveries averaged with the probe, on finished ``beat_probe.py`` runs: would averaging class
probabilities (the refit, the chosen finalist's fold models, the probe fitted on train+val, and
each model's on the test images mirrored left-right) beat the probe on test where the refit alone
does not? Nothing is trained but the probe; the models
are the ones each run's stage kept.

    python benchmarks/beat_probe.py --arms anchor --out runs        # first, or runs kept
    python benchmarks/blends.py runs/*-anchor-seed*
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np


def probabilities(run: Path) -> tuple[dict[str, np.ndarray], np.ndarray, int]:
    """Test class probabilities of the probe (train+val), the delivered refit and the chosen
    finalist's fold ensemble (when the stage kept its folds); the test labels; the classes."""
    import keras
    from beat_probe import frozen_sets

    from tlsweep.finalists import fold_ensemble, fold_model_path
    from tlsweep.store import load_study
    from tlsweep.training._batches import eval_inputs
    from tlsweep.training._classifier import predict
    from tlsweep.training._probe import fit_probe

    plan, features, preprocess = frozen_sets(run / "sweep.yaml", run / "results")
    config, data = plan.sweep.config, plan.dataset
    probe = fit_probe(np.concatenate([features["train"], features["val"]]),
                      np.concatenate([data.y_train, data.y_val]), config.objective, config.seed)
    found = {"probe": probe.model.predict_proba(features["test"])}  # type: ignore[attr-defined]

    def of(model: Any, images: np.ndarray = data.x_test) -> np.ndarray:
        return np.concatenate([np.asarray(predict(model, eval_inputs(images[i:i + 256],
                                                                     preprocess)))
                               for i in range(0, len(images), 256)])

    mirrored = data.x_test[:, :, ::-1].copy()  # left-right: test-time augmentation by a flip

    final = load_study(plan.directory, config.study).user_attrs["final"]
    kept = plan.directory / "final"
    if final["chosen"] is not None and (kept / "model.keras").is_file():
        refit = keras.models.load_model(kept / "model.keras", compile=False)
        found["refit"], found["refit, mirrored"] = of(refit), of(refit, mirrored)
        chosen = next(f for f in final["finalists"] if f["trial"] == final["chosen"])
        folds = len(chosen.get("fold_scores") or [])
        if folds:
            ensemble = fold_ensemble(
                [fold_model_path(kept, final["chosen"], i) for i in range(folds)])
            found["ensemble"], found["ensemble, mirrored"] = of(ensemble), of(ensemble, mirrored)
    return found, data.y_test, data.n_classes


# Each blend: the deliveries whose probabilities are averaged, with equal weight.
BLENDS = {"refit": ("refit",), "ensemble": ("ensemble",), "refit + probe": ("refit", "probe"),
          "ensemble + probe": ("ensemble", "probe"), "refit + ensemble": ("refit", "ensemble"),
          "refit + ensemble + probe": ("refit", "ensemble", "probe"),
          "refit, flip TTA": ("refit", "refit, mirrored"),
          "ensemble, flip TTA": ("ensemble", "ensemble, mirrored")}


def gains(run: Path) -> dict[str, float]:
    """Each blend's test balanced accuracy minus the probe's."""
    from tlsweep.measures._intervals import balanced_estimate
    from tlsweep.training._epochs import confusion_matrix

    found, labels, n_classes = probabilities(run)

    def score(p: np.ndarray) -> float:
        return balanced_estimate(confusion_matrix(labels, p.argmax(axis=1), n_classes)).value

    probe = score(found["probe"])
    return {"probe": probe, **{name: score(np.mean([found[m] for m in members], axis=0)) - probe
                               for name, members in BLENDS.items()
                               if all(m in found for m in members)}}


def table(rows: dict[str, dict[str, float]]) -> str:
    lines = ["| run | probe | " + " | ".join(BLENDS) + " |", "| --- " * (2 + len(BLENDS)) + "|"]
    for run, row in rows.items():
        lines.append(f"| {run} | {row['probe']:.3f} | " + " | ".join(
            f"{row[b]:+.3f}" if b in row else "" for b in BLENDS) + " |")
    for prefix in dict.fromkeys(run.rsplit("-seed", 1)[0] for run in rows):
        mine = [row for run, row in rows.items() if run.startswith(prefix + "-seed")]
        probe = np.mean([r["probe"] for r in mine])
        lines.append(f"| {prefix}, mean | {probe:.3f} | " + " | ".join(
            f"{np.mean([r[b] for r in mine]):+.3f}" if all(b in r for r in mine) else ""
            for b in BLENDS) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="beat_probe.py run folders")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    rows = {}
    for run in args.runs:
        rows[run.name] = gains(run)
        print(run.name, json.dumps(rows[run.name]), file=sys.stderr, flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    print(table(rows))


if __name__ == "__main__":
    main()
