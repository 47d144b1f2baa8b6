"""Fixed fine-tuning recipes on flowers-small (issue 14): does any beat the linear probe?

No search: each recipe is one tlsweep trial (``TwoPhaseTrial`` with ``trial_settings`` of a sweep
file written per recipe), trained every epoch on ``honest.flowers_small`` (``--set``: any of
``honest.SETS``, at its size or ``--image-size``), MobileNetV2 with the shared weights. Reported:
val balanced accuracy at the best epoch, test balanced accuracy [95% interval] of the best- and the
last-epoch model, training seconds; and tlsweep's probe on the same split, on the pooled output and
on earlier layers (average-pooled).

    python benchmarks/recipes.py                      # all recipes, seed 0
    python benchmarks/recipes.py --recipes B C --seed 1 --finetune-epochs 4
    python benchmarks/recipes.py --recipes N --seed 1 --refit   # as the finalists' refit would
    python benchmarks/recipes.py --set hymenoptera-split --image-size 224 --recipes N --refit

``--refit`` trains every recipe and probe on train+val, as the finalists' stage refits the chosen
recipe (validation then reads images trained on: its column means nothing; quote the test's).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from honest import REPO, SETS, WEIGHTS

from tlsweep.config import TrialParams, load_sweep
from tlsweep.finalists._folds import predict_images
from tlsweep.measures._intervals import balanced_estimate
from tlsweep.sweep import trial_settings
from tlsweep.sweep._study import prepare
from tlsweep.training import TwoPhaseTrial
from tlsweep.training._batches import eval_inputs
from tlsweep.training._classifier import unfrozen_count
from tlsweep.training._epochs import confusion_matrix
from tlsweep.training._probe import fit_probe
from tlsweep.training._warm import ModelPool, Structure, frozen_features
from tlsweep.training._worker import setup_tensorflow
from tlsweep.training.backbones import preprocessor


@dataclasses.dataclass(frozen=True)
class Recipe:  # class_weighting none throughout
    head_epochs: int
    augment_head: bool
    unfreeze_depth: float
    finetune_lr: float
    finetune_epochs: int
    head_lr: float = 3e-3
    augmentation_strength: float = 0.3
    head_init: str = "random"


RECIPES = {"A": Recipe(3, True, 0.3, 3e-5, 5),  # the old default shape; the rest LP-FT
           "B": Recipe(15, False, 0.3, 3e-5, 8), "C": Recipe(15, False, 0.3, 1e-4, 8),
           "D": Recipe(15, False, 0.3, 3e-4, 8), "E": Recipe(15, False, 0.6, 1e-4, 8),
           "F": Recipe(15, False, 1.0, 1e-4, 8),
           # longer fine-tuning with stronger augmentation
           "G": Recipe(15, False, 0.6, 1e-4, 25, augmentation_strength=0.6),
           "H": Recipe(15, False, 1.0, 3e-5, 25, augmentation_strength=0.6),
           "I": Recipe(15, False, 0.3, 1e-4, 25, augmentation_strength=0.6),
           "J": Recipe(15, False, 0.6, 3e-4, 25, augmentation_strength=1.0),
           # the head starts as the probe (LP of LP-FT), a near-zero head rate keeps it there
           "K": Recipe(1, False, 0.6, 1e-4, 25, 1e-5, 0.6, "probe"),
           "L": Recipe(1, False, 0.6, 3e-5, 25, 1e-5, 0.6, "probe"),
           "M": Recipe(1, False, 1.0, 3e-5, 25, 1e-5, 0.6, "probe"),
           "N": Recipe(1, False, 0.3, 1e-4, 25, 1e-5, 0.6, "probe"),
           "O": Recipe(1, False, 0.6, 1e-4, 25, 1e-5, 0.3, "probe"),
           "P": Recipe(5, False, 0.3, 1e-4, 25, 1e-3, 0.6, "probe"),
           "Q": Recipe(1, False, 0.3, 1e-4, 12, 1e-5, 0.6, "probe")}
PROBE_LAYERS = ["block_9_add", "block_12_add", "block_13_expand_relu", "block_15_add",
                "block_16_project_BN"]


class Silent:  # nothing prunes a fixed recipe
    def epoch_started(self, phase: str, step: int, total_steps: int) -> None: ...
    def epoch_finished(self, record: Any) -> None: ...


def write_sweep(folder: Path, data: Path, seed: int, r: Recipe, size: int) -> Path:
    """The recipe as a sweep file (and a space of fixed values): ``tlsweep run`` would run it."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "space.yaml").write_text(
        f"backbone: {{choices: {{MobileNetV2: {{weights: {WEIGHTS}}}}}}}\n"
        f"unfreeze_depth: {r.unfreeze_depth}\nhead_lr: {r.head_lr}\n"
        f"finetune_lr: {r.finetune_lr}\naugmentation_strength: {r.augmentation_strength}\n"
        "class_weighting: none\n")
    (folder / "sweep.yaml").write_text(
        f"study: recipe-{folder.name}-seed{seed}\nseed: {seed}\n"
        f"data: {{train_dir: {data}/train, val_dir: {data}/val, test_dir: {data}/test, "
        f"image_size: {size}}}\nsearch_space: {folder / 'space.yaml'}\n"
        f"budget: {{trials: 1}}\nobjective: val_balanced_accuracy\n"
        f"training: {{head_epochs: {r.head_epochs}, finetune_epochs: {r.finetune_epochs}, "
        f"batch_size: 32, augment_head: {str(r.augment_head).lower()}, "
        f"head_init: {r.head_init}}}\n")
    return folder / "sweep.yaml"


def scored(labels: np.ndarray, predicted: np.ndarray, n_classes: int) -> dict[str, float]:
    found = balanced_estimate(confusion_matrix(labels, predicted, n_classes))
    return {"value": found.value, "low": found.low, "high": found.high}


def layer_features(base: Any, names: list[str], images: np.ndarray,
                   preprocess: Any) -> dict[str, np.ndarray]:
    """Global-average-pooled outputs of the backbone's layers ``names``, for uint8 images."""
    import keras

    model = keras.Model(base.inputs, {n: keras.layers.GlobalAveragePooling2D()(
        base.get_layer(n).output) for n in names})
    parts = [model.predict(eval_inputs(images[i:i + 256], preprocess), verbose=0)
             for i in range(0, len(images), 256)]
    return {n: np.concatenate([np.asarray(p[n]) for p in parts]) for n in names}


def probes(plan: Any, pool: Any, seed: int, layers: list[str]) -> list[dict[str, Any]]:
    data, config, backbone = plan.dataset, plan.sweep.config, plan.backbones["MobileNetV2"]
    warm, _ = pool.get(Structure(backbone, config.data.image_size, data.n_classes,
                                 config.training.dropout), seed)
    warm.reset(seed)  # the pretrained weights, as every trial starts
    preprocess = preprocessor(backbone)
    splits = {s: getattr(data, f"x_{s}") for s in ("train", "val", "test")}
    features = {"pooled output (tlsweep's probe)": {s: frozen_features(warm, x, preprocess)
                                                    for s, x in splits.items()}}
    by_split = {s: layer_features(warm.base, layers, x, preprocess)
                for s, x in splits.items()} if layers else {}
    features.update({n: {s: by_split[s][n] for s in splits} for n in layers})
    rows = []
    for name, f in features.items():
        fit = fit_probe(f["train"], data.y_train, config.objective, seed)
        row: dict[str, Any] = {"probe": name, "dims": int(f["train"].shape[1]), "c": fit.c}
        for split in ("val", "test"):
            row[split] = scored(getattr(data, f"y_{split}"), fit.predict(f[split]), data.n_classes)
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def train(plan: Any, pool: Any, name: str, recipe: Recipe) -> dict[str, Any]:
    data, backbone = plan.dataset, plan.backbones["MobileNetV2"]
    params = TrialParams("MobileNetV2", recipe.unfreeze_depth, recipe.head_lr,
                         recipe.finetune_lr, recipe.augmentation_strength, "none")
    trial = TwoPhaseTrial(params, backbone, data, trial_settings(plan, 0), Silent(), pool=pool)
    began = time.perf_counter()
    result = trial.fit(0, trial.total_steps)
    train_s = time.perf_counter() - began
    last, best = (scored(data.y_test, predict_images(  # the last epoch's, then the best's
        result.best_model() if at_best else trial.model, data.x_test, preprocessor(backbone)),
        data.n_classes) for at_best in (False, True))
    row = {"recipe": name, **dataclasses.asdict(recipe),
           "layers_unfrozen": unfrozen_count(trial.base, recipe.unfreeze_depth),
           "val_best": result.value, "best_step": result.best_step,
           "best_phase": result.best_phase, "test_best": best, "test_last": last,
           "train_s": train_s, "curve": [r.val_balanced_accuracy for r in result.curve]}
    print(json.dumps(row), flush=True)
    return row


def table(probe_rows: list[dict[str, Any]], rows: list[dict[str, Any]]) -> str:
    def ci(s: dict[str, float]) -> str:
        return f"{s['value']:.3f} [{s['low']:.3f}, {s['high']:.3f}]"

    probe = probe_rows[0]["test"]["value"]
    lines = ["| recipe | head ep (aug) | depth (layers) | ft lr | ft ep | val best (step) "
             "| test, best epoch [95% CI] | test, last epoch | best − probe | train s |",
             "| --- " * 10 + "|"]
    for r in rows:
        lines.append(
            f"| {r['recipe']} | {r['head_epochs']} ({'yes' if r['augment_head'] else 'no'}) "
            f"| {r['unfreeze_depth']} ({r['layers_unfrozen']}) | {r['finetune_lr']:.0e} "
            f"| {r['finetune_epochs']} | {r['val_best']:.3f} ({r['best_step']}) "
            f"| {ci(r['test_best'])} | {r['test_last']['value']:.3f} "
            f"| {r['test_best']['value'] - probe:+.3f} | {r['train_s']:.0f} |")
    lines += ["", "| probe on | dims | C | val | test [95% CI] |", "| --- " * 5 + "|"]
    lines += [f"| {p['probe']} | {p['dims']} | {p['c']:.3g} | {p['val']['value']:.3f} "
              f"| {ci(p['test'])} |" for p in probe_rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--set", default="flowers-small", choices=list(SETS))
    parser.add_argument("--image-size", type=int, help="default: honest.py's for the set")
    parser.add_argument("--recipes", nargs="+", default=list(RECIPES), choices=list(RECIPES))
    parser.add_argument("--finetune-epochs", type=int, help="override every recipe's")
    parser.add_argument("--probe-layers", nargs="*", default=PROBE_LAYERS)
    parser.add_argument("--refit", action="store_true", help="train on train+val")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "runs" / "recipes")
    args = parser.parse_args()
    if not WEIGHTS.is_file():
        sys.exit(f"skipped: {WEIGHTS} is absent (../shared or $TLSWEEP_SHARED)")
    began = time.perf_counter()
    make_data, default_size = SETS[args.set]
    size = args.image_size or default_size
    root = args.out / (f"{args.set}-{size}px-seed{args.seed}" + ("-refit" if args.refit else ""))
    shutil.rmtree(root, ignore_errors=True)
    data = make_data(root / "data", args.seed)
    recipes = {name: RECIPES[name] if args.finetune_epochs is None else dataclasses.replace(
        RECIPES[name], finetune_epochs=args.finetune_epochs) for name in args.recipes}
    sweeps = {name: write_sweep(root / name, data, args.seed, r, size)
              for name, r in recipes.items()}
    plan = prepare(load_sweep(sweeps[args.recipes[0]]), root / "results")
    if args.refit:
        data = plan.dataset
        plan = dataclasses.replace(plan, data=dataclasses.replace(
            data, x_train=np.concatenate([data.x_train, data.x_val]),
            y_train=np.concatenate([data.y_train, data.y_val])))
    setup_tensorflow(plan.sweep.config)
    pool = ModelPool(keep=True)  # one warm worker's models, as in a sweep
    probe_rows = probes(plan, pool, args.seed, args.probe_layers)
    rows = [train(dataclasses.replace(plan, sweep=load_sweep(sweeps[name])), pool, name, r)
            for name, r in recipes.items()]
    text = (f"{table(probe_rows, rows)}\n\n{args.set} at {size} px, seed {args.seed}; "
            f"{len(plan.dataset.y_test)} test images; {len(plan.dataset.y_train)} training images"
            f"{' (train+val)' if args.refit else ''}; total wall "
            f"{time.perf_counter() - began:.0f} s")
    (root / "results.json").write_text(json.dumps({"probes": probe_rows, "recipes": rows}))
    (root / "table.md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
