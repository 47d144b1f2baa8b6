"""Search efficiency: tlsweep against keras-tuner and random search, on one data set, search space
and epoch budget, side by side in one run.

Run by hand:  python benchmarks/search_efficiency.py            (over an hour on 2 CPU cores)
              python benchmarks/search_efficiency.py --smoke    (about 2 min; CI runs it)
              --arms tlsweep kt-hyperband reference: the arms the targets compare

Arms, each a real `tlsweep run` of a generated sweep file (its own process and TensorFlow import):
- tlsweep:      TPE sampler + Optuna's Hyperband pruner, stopped by the epoch budget; its first
                trial is the default recipe (sampler.start_from_default)
- kt-hyperband: keras-tuner Hyperband (engine: keras-tuner), stopped by the epoch budget
- kt-random:    keras-tuner random search, as many full trials as the reference
- reference:    tlsweep random search without pruning: the full-budget reference

Data: ../shared/data/flowers, a seeded per-class subset for training and every other image of
those classes for validation (fixed for every arm and seed), MobileNetV2 with ../shared/weights.
The validation set is as large as flowers allows: with 2,000 images one point of accuracy was
still inside a standard error, and the arms' differences were noise (RESULTS.md, "Search
efficiency"; ``VAL_400`` is that setup, which pruners.py measured on). Every arm gets the
reference's epoch budget (trials x epochs per trial); wall time is recorded too. The search
seed varies. The trial recipe and search ranges are the product's defaults (the head starts as
the probe).
Writes search_efficiency.md and .png beside this file (or under --out with --smoke) and, unless
--smoke, replaces its section of benchmarks/RESULTS.md. ``efficiency_merge.py`` reports over
several finished runs (an arm rerun on other seeds) in the same form.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
SHARED = Path(os.environ.get("TLSWEEP_SHARED", HERE.parent.parent / "shared"))
WEIGHTS = SHARED / "weights" / "mobilenet_v2_1.0_notop.weights.h5"
ARMS = ("tlsweep", "kt-hyperband", "kt-random", "reference")
BEGIN, END = "<!-- search_efficiency:begin -->", "<!-- search_efficiency:end -->"
Paths = dict[tuple[str, int], pd.DataFrame]  # each (arm, seed)'s best-so-far trajectory


@dataclass(frozen=True)
class Setup:
    seeds: list[int]
    image_size: int
    train_per_class: int
    val_per_class: int | None  # None: every image of the class not in training
    reference_trials: int
    head_epochs: int
    finetune_epochs: int
    max_depth: float
    classes: int

    @property
    def epochs_per_trial(self) -> int:
        return self.head_epochs + self.finetune_epochs

    @property
    def budget_epochs(self) -> int:
        return self.reference_trials * self.epochs_per_trial


FULL = Setup(seeds=[0, 1, 2], image_size=96, train_per_class=100, val_per_class=None,
             reference_trials=8, head_epochs=2, finetune_epochs=4, max_depth=0.7, classes=5)
VAL_400 = replace(FULL, val_per_class=400)
SMOKE = Setup(seeds=[0], image_size=32, train_per_class=8, val_per_class=4,
              reference_trials=2, head_epochs=1, finetune_epochs=1, max_depth=0.05, classes=2)


# ----------------------------------------------------------------------------- inputs
def subset(out: Path, setup: Setup) -> Path:
    """Seeded per-class train and val subsets of flowers, as symbolic links (nothing copied)."""
    root = out / "data"
    rng = random.Random(1234)  # fixed across arms and seeds: only the search varies
    classes = sorted(p for p in (SHARED / "data" / "flowers").iterdir() if p.is_dir())
    for folder in classes[:setup.classes]:
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg"))
        wanted = len(files) if setup.val_per_class is None else \
            setup.train_per_class + setup.val_per_class
        picked = rng.sample(files, wanted)
        for part, chosen in (("train", picked[:setup.train_per_class]),
                             ("val", picked[setup.train_per_class:])):
            target = root / part / folder.name
            target.mkdir(parents=True, exist_ok=True)
            for file in chosen:
                link = target / file.name
                if not link.exists():
                    link.symlink_to(file)
    return root


def space_file(out: Path, setup: Setup) -> Path:
    path = out / "space.yaml"
    path.write_text(
        f"backbone: {{choices: {{MobileNetV2: {{weights: {WEIGHTS}}}}}}}\n"
        f"unfreeze_depth: {{low: 0.0, high: {setup.max_depth}}}\n"
        "head_lr: {low: 1.0e-5, high: 1.0e-3, log: true}\n"
        "finetune_lr: {low: 1.0e-5, high: 3.0e-4, log: true}\n"
        "augmentation_strength: {low: 0.0, high: 1.0}\n"
        "class_weighting: {choices: [none, balanced, sqrt]}\n")
    return path


def arm_options(arm: str, setup: Setup) -> str:
    by_epochs = f"budget: {{trials: 1000, epochs: {setup.budget_epochs}}}\n"
    by_trials = f"budget: {{trials: {setup.reference_trials}}}\n"
    return {
        # Hyperband over successive halving: it hedges over several minimum budgets, which
        # matters here because a fine-tune LR only shows its worth after the head epochs.
        # One fine-tune epoch before pruning: the default (4) is this whole fine-tune phase.
        "tlsweep": by_epochs + "sampler: {kind: tpe, n_startup_trials: 4, "
                   "start_from_default: true}\n"
                   "pruner: {kind: hyperband, min_resource: 1, reduction_factor: 3, "
                   "min_finetune_epochs: 1}\n",
        "kt-hyperband": by_epochs + "engine: keras-tuner\n"
                        "tuner: {kind: hyperband, factor: 3, hyperband_iterations: 50}\n",
        "kt-random": by_trials + "engine: keras-tuner\ntuner: {kind: random}\n",
        "reference": by_trials + "sampler: {kind: random}\npruner: {kind: none}\n",
    }[arm]


def sweep_file(out: Path, data: Path, space: Path, setup: Setup, arm: str, seed: int,
               options: str | None = None) -> Path:
    """The arm's sweep file: its ``options`` (sampler, pruner, budget), by default
    ``arm_options``'s for this benchmark's arms."""
    path = out / "sweeps" / f"{arm_key(arm, seed)}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    # Absolute: a relative path in a sweep file is read against the sweep file's folder.
    data, space = data.resolve(), space.resolve()
    path.write_text(
        f"study: {arm_key(arm, seed)}\n"
        f"data: {{train_dir: {data / 'train'}, val_dir: {data / 'val'}, "
        f"image_size: {setup.image_size}}}\n"
        f"search_space: {space}\nseed: {seed}\n"
        f"training: {{head_epochs: {setup.head_epochs}, "
        f"finetune_epochs: {setup.finetune_epochs}, batch_size: 32}}\n"
        # The search is measured, not the finalists' stage after it.
        "execution: {keep_top: 0}\nfinalists: {reevaluate: off}\n"
        + (arm_options(arm, setup) if options is None else options))
    return path


# ----------------------------------------------------------------------------- running
def run_arm(sweep: Path, results: Path) -> tuple[float, float]:
    """(start time, wall seconds) of one `tlsweep run`."""
    env = {**os.environ, "TLSWEEP_RESULTS": str(results), "TLSWEEP_PLAIN_OUTPUT": "1",
           "TF_CPP_MIN_LOG_LEVEL": "2"}
    started, began = time.time(), time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "tlsweep", "run", str(sweep)], env=env,
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{sweep.name} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return started, time.perf_counter() - began


def run_traced(sweep: Path, results: Path) -> tuple[pd.DataFrame, pd.DataFrame, float]:
    """Run one arm's sweep: (its leaderboard, its best-so-far trajectory, wall seconds)."""
    started, wall = run_arm(sweep, results)
    board = pd.read_parquet(results / sweep.stem / "leaderboard.parquet")
    return board, trajectory(board, started), wall


def finished_trials(board: pd.DataFrame) -> pd.DataFrame:
    """The searched trials that have a value, in trial order: what the trajectory counts."""
    trials = board[board["role"] == "trial"] if "role" in board else board  # no reference rows
    return trials[trials["value"].notna()].sort_values("trial")


def trajectory(board: pd.DataFrame, started: float) -> pd.DataFrame:
    """Best value found so far after each trial, against cumulative epochs and wall time."""
    rows = finished_trials(board)
    ended = pd.to_datetime(rows["started_at"], utc=True).map(lambda t: t.timestamp()) \
        + rows["duration_s"] - started
    return pd.DataFrame({"epochs": rows["epochs_run"].cumsum().to_numpy(),
                         "wall_s": ended.to_numpy(),
                         "best": rows["value"].cummax().to_numpy()})


def best_at(path: pd.DataFrame, column: str, x: float) -> float:
    reached = path[path[column] <= x]
    return float(reached["best"].iloc[-1]) if len(reached) else np.nan


def epochs_to_reach(path: pd.DataFrame, target: float) -> float:
    hit = path[path["best"] >= target - 1e-9]
    return float(hit["epochs"].iloc[0]) if len(hit) else np.nan


# ----------------------------------------------------------------------------- reporting
def summarise(paths: Paths, walls: dict[tuple[str, int], float],
              setup: Setup) -> pd.DataFrame:
    rows = []
    for (arm, seed), path in paths.items():
        target = float(paths[("reference", seed)]["best"].iloc[-1]) - 0.01
        needed = epochs_to_reach(path, target)
        rows.append({"arm": arm, "seed": seed, "trials": len(path),
                     "epochs": int(path["epochs"].iloc[-1]), "wall_s": walls[(arm, seed)],
                     "best_at_budget": best_at(path, "epochs", setup.budget_epochs),
                     "final_best": float(path["best"].iloc[-1]),
                     "epochs_to_ref_minus_1pt": needed,
                     "fraction_of_ref_epochs": needed / setup.budget_epochs})
    return pd.DataFrame(rows)


def _mean_spread(values: pd.Series, fmt: str) -> str:
    clean = values.dropna()
    missed = len(values) - len(clean)
    if clean.empty:
        return "never"
    text = f"{format(clean.mean(), fmt)} ± {format(clean.std(ddof=0), fmt)}" \
        f" ({format(clean.min(), fmt)}–{format(clean.max(), fmt)})"
    return text + (f", missed in {missed}" if missed else "")


def table(summary: pd.DataFrame) -> str:
    lines = ["| arm | trials | epochs | wall time (s) | best at the epoch budget | "
             "epochs to reach reference − 1 pt | share of reference epochs |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for arm in [a for a in ARMS if a in set(summary["arm"])]:
        part = summary[summary["arm"] == arm]
        lines.append(
            f"| {arm} | {_mean_spread(part['trials'], '.1f')} | "
            f"{_mean_spread(part['epochs'], '.1f')} | {_mean_spread(part['wall_s'], '.0f')} | "
            f"{_mean_spread(part['best_at_budget'], '.3f')} | "
            f"{_mean_spread(part['epochs_to_ref_minus_1pt'], '.1f')} | "
            f"{_mean_spread(part['fraction_of_ref_epochs'], '.2f')} |")
    return "\n".join(lines)


def targets(summary: pd.DataFrame) -> list[str]:
    tl = summary[summary["arm"] == "tlsweep"]
    hb = summary[summary["arm"] == "kt-hyperband"]
    if tl.empty or hb.empty:
        return ["- not judged: the tlsweep and kt-hyperband arms must both run."]
    share = tl["fraction_of_ref_epochs"].fillna(np.inf)
    ok1 = bool((share <= 0.30).all())
    # Averaged over the seeds both arms ran (a merged report may hold more tlsweep seeds).
    both = sorted(set(tl["seed"]) & set(hb["seed"]))
    tl_mean = tl[tl["seed"].isin(both)]["best_at_budget"].mean()
    hb_mean = hb[hb["seed"].isin(both)]["best_at_budget"].mean()
    ok2 = tl_mean >= hb_mean
    return [
        f"- tlsweep within 1 point of the reference's best with at most 30% of its epochs, on "
        f"every seed: **{'met' if ok1 else 'missed'}** (per seed: "
        + ", ".join("never" if np.isinf(v) else f"{v:.2f}" for v in share) + ").",
        f"- tlsweep's best at equal epochs at least keras-tuner Hyperband's, averaged over "
        f"seeds: **{'met' if ok2 else 'missed'}** ({tl_mean:.4f} against {hb_mean:.4f}, seeds "
        f"{', '.join(map(str, both))}).",
    ]


def plot(paths: Paths, setup: Setup, target: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    warnings.filterwarnings("ignore", category=RuntimeWarning)  # all-NaN before a first trial
    figure, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for axis, column, label in ((axes[0], "epochs", "cumulative training epochs"),
                                (axes[1], "wall_s", "wall time (s)")):
        limit = max(float(p[column].max()) for p in paths.values())
        grid = np.linspace(0, limit, 200)
        for arm in [a for a in ARMS if any(a == ran for ran, _ in paths)]:
            curves = np.array([[best_at(p, column, x) for x in grid]
                               for (a, _), p in paths.items() if a == arm])
            mean = np.nanmean(curves, axis=0)
            line, = axis.step(grid, mean, where="post", label=arm)
            axis.fill_between(grid, np.nanmin(curves, axis=0), np.nanmax(curves, axis=0),
                              step="post", alpha=0.15, color=line.get_color())
        if column == "epochs":
            axis.axvline(setup.budget_epochs, color="grey", linestyle=":", linewidth=1)
        axis.set_xlabel(label)
        axis.set_ylabel("best validation accuracy so far")
        axis.grid(alpha=0.3)
    axes[0].legend(loc="lower right")
    figure.suptitle(f"flowers subset, MobileNetV2 at {setup.image_size} px: mean over "
                    f"{len(setup.seeds)} seeds, band = min–max")
    figure.tight_layout()
    figure.savefig(target, dpi=110)


def validation_counts(data: Path) -> dict[str, int]:
    return {folder.name: sum(1 for _ in folder.iterdir())
            for folder in sorted((data / "val").iterdir())}


def standard_error(summary: pd.DataFrame, images: int) -> float:
    """Binomial standard error, in points, of one accuracy near the reference's mean best."""
    best = float(summary.loc[summary["arm"] == "reference", "final_best"].mean())
    return 100 * float(np.sqrt(best * (1 - best) / images))


def report(summary: pd.DataFrame, setup: Setup, counts: dict[str, int], provenance: str,
           png: Path, notes: tuple[str, ...] = ()) -> str:
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    images = sum(counts.values())
    per_class = ", ".join(f"{name} {n}" for name, n in counts.items())
    return "\n".join([
        f"## Search efficiency ({datetime.now(UTC).date()})", "",
        f"Machine: {machine}; {provenance}.", "",
        f"Setup: flowers, {setup.classes} classes, {setup.train_per_class} training images per "
        f"class and {images} validation images ({per_class}; a fixed seeded split; binomial "
        f"standard error of one accuracy near the reference's best: "
        f"{standard_error(summary, images):.2f} points), "
        f"{setup.image_size} px, MobileNetV2 with the shared weights; {setup.head_epochs} head "
        f"+ {setup.finetune_epochs} fine-tune epochs per full trial; epoch budget "
        f"{setup.budget_epochs} (the reference's {setup.reference_trials} full trials); seeds "
        f"{', '.join(map(str, setup.seeds))}. Objective: validation accuracy at the best epoch. "
        f"Cells: mean ± standard deviation (min–max) over seeds.", "",
        table(summary), "", *notes, *([""] if notes else []), "Targets:", *targets(summary), "",
        f"![search efficiency]({png.name})", ""])


def update_results(section: str, markers: tuple[str, str] = (BEGIN, END),
                   after: str | None = None) -> None:
    """Replace the section between ``markers`` in RESULTS.md; a first one goes right after the
    text ``after``, or at the end."""
    results = HERE / "RESULTS.md"
    text = results.read_text()
    begin, end = markers
    block = f"{begin}\n{section}{end}"
    if begin in text:
        text = text[:text.index(begin)] + block + text[text.index(end) + len(end):]
    elif after is not None and after in text:
        text = text.replace(after, after + "\n\n" + block, 1)
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    results.write_text(text)


def arm_key(arm: str, seed: int) -> str:
    """'ARM-sSEED': a study's name and its key in a run's files; ``arm_seed`` reads it back."""
    return f"{arm}-s{seed}"


def arm_seed(key: str) -> tuple[str, int]:
    """'ARM-sSEED' (a run file's key, a study's name) as (arm, seed)."""
    arm, seed = key.rsplit("-s", 1)
    return arm, int(seed)


def save_run(out: Path, paths: Paths, summary: pd.DataFrame, command: str, wall: float) -> None:
    """A finished run's files under its --out folder, read back by ``load_run``."""
    summary.to_csv(out / "summary.csv", index=False)
    json.dump({arm_key(a, s): p.to_dict("list") for (a, s), p in paths.items()},
              (out / "trajectories.json").open("w"))
    (out / "run.json").write_text(json.dumps({"command": command, "wall_s": wall}))


def load_run(folder: Path) -> tuple[Paths, dict[tuple[str, int], float], str | None]:
    """``save_run``'s files: trajectories and wall seconds keyed (arm, seed), and the command
    (None for a run from before run.json was written)."""
    saved = json.loads((folder / "trajectories.json").read_text())
    paths = {arm_seed(key): pd.DataFrame(columns) for key, columns in saved.items()}
    walls = {(row.arm, int(row.seed)): float(row.wall_s)
             for row in pd.read_csv(folder / "summary.csv").itertuples()}
    run = folder / "run.json"
    return paths, walls, json.loads(run.read_text())["command"] if run.is_file() else None


def publish(paths: Paths, summary: pd.DataFrame, setup: Setup, data: Path, provenance: str,
            target: Path, notes: tuple[str, ...] = ()) -> str:
    """The table, targets and figure: search_efficiency.md and .png under ``target``."""
    png = target / "search_efficiency.png"
    plot(paths, setup, png)
    section = report(summary, setup, validation_counts(data), provenance, png, notes)
    (target / "search_efficiency.md").write_text(section)
    return section


def measured(args: argparse.Namespace) -> str:
    setup = SMOKE if args.smoke else FULL
    arms = [arm for arm in ARMS if arm in args.arms or arm == "reference"]
    if args.seeds:
        setup = replace(setup, seeds=args.seeds)
    out = (args.out or HERE / "runs" / ("smoke" if args.smoke else "search_efficiency"))
    out.mkdir(parents=True, exist_ok=True)
    results = out / f"results-{int(time.time())}"
    data, space = subset(out, setup), space_file(out, setup)
    began = time.perf_counter()
    paths, walls = {}, {}
    for seed in setup.seeds:
        for arm in arms:  # interleaved, so machine noise spreads over every arm
            board, paths[(arm, seed)], walls[(arm, seed)] = run_traced(
                sweep_file(out, data, space, setup, arm, seed), results)
            print(f"seed {seed} {arm}: {len(board)} trials, best {board['value'].max():.3f}, "
                  f"{walls[(arm, seed)]:.0f} s", flush=True)
    command = "python benchmarks/search_efficiency.py" + (" --smoke" if args.smoke else "") \
        + ("" if arms == list(ARMS) else " --arms " + " ".join(arms)) \
        + (" --seeds " + " ".join(map(str, args.seeds)) if args.seeds else "")
    wall = time.perf_counter() - began
    summary = summarise(paths, walls, setup)
    save_run(out, paths, summary, command, wall)
    return publish(paths, summary, setup, data,
                   f"command: `{command}`; total wall time {wall / 60:.1f} min",
                   out if args.smoke else HERE)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="a minute-long check (CI)")
    parser.add_argument("--out", type=Path, default=None, help="work folder for runs")
    parser.add_argument("--seeds", type=int, nargs="+", default=None)
    parser.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(ARMS),
                        help="the reference always runs: the others are measured against it")
    args = parser.parse_args()
    if not (SHARED / "data" / "flowers").is_dir() or not WEIGHTS.is_file():
        raise SystemExit(f"needs {SHARED}/data/flowers and {WEIGHTS}; set TLSWEEP_SHARED")
    section = measured(args)
    if not args.smoke:
        update_results(section)
    print(section)


if __name__ == "__main__":
    main()
