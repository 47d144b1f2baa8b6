"""The benchmark suite (DESIGN.md §7): the newcomer's path on five public sets, the yardstick for
every default.

Per set and seed, a seeded, stratified held-out folder (about 30%, at least 20 images a class
where the set allows) is set aside and never given to the tool. The rest, one folder per class, is
the pool: ``tlsweep init POOL --weights MobileNetV2=... --time T``, ``tlsweep run`` on the written
file unedited, ``tlsweep export``. The exported model is scored on the held-out folder by
``suite_score.py``, a process that never imports tlsweep, on decoded uint8 images; beside it the
probe a user could fit without us (``suite_score.py probe``), on the same pool at the same image
size, scored on the same images.

Arms, on the same splits:
- ``tlsweep``: this checkout;
- ``before``: another checkout's code (``--before-src DIR``: its ``src`` goes first on the path);
- ``search-off``: this checkout with the search switched off: the written file with
  ``budget.trials: 1`` (the anchor recipe alone) and ``finalists.anchor: true``.

Each (set, seed, arm) ends in a ``row.json``; a run that finds one skips it, and a half-done one
starts again, so the suite stops and resumes per (set, seed).

    python benchmarks/suite.py --sets flowers hymenoptera magnetic_tile caltech39 potato \\
        --seeds 0 1 --time 10m
    python benchmarks/suite.py --arms before search-off --seeds 0 --before-src ../before
    python benchmarks/suite.py --report                 # the table again, from the rows on disk
    python benchmarks/suite.py --smoke --out /tmp/s     # a tiny generated set, for CI
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from tlsweep.config import parse_duration

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SHARED = Path(os.environ.get("TLSWEEP_SHARED", REPO.parent / "shared"))
WEIGHTS = SHARED / "weights" / "mobilenet_v2_1.0_notop.weights.h5"
DATA = SHARED / "data"
# Each set's class folders: hymenoptera's train and val are pooled, as a user with the set would.
SETS = {"flowers": ["flowers"], "hymenoptera": ["hymenoptera_data/train", "hymenoptera_data/val"],
        "magnetic_tile": ["magnetic_tile"], "caltech39": ["caltech39"], "potato": ["potato"]}
ARMS = ("tlsweep", "before", "search-off")
HELD_SHARE, HELD_MIN = 0.3, 20
BEGIN, END = "<!-- suite:begin -->", "<!-- suite:end -->"


# ----------------------------------------------------------------------------- the split
def class_files(name: str, root: Path = DATA) -> dict[str, list[Path]]:
    """Each class's files (every regular file, as a user's folder holds them), pooled over the
    set's folders; a name that two folders share is one class."""
    files: dict[str, list[Path]] = {}
    for folder in SETS.get(name, [name]):
        for class_dir in sorted(p for p in (root / folder).iterdir() if p.is_dir()):
            files.setdefault(class_dir.name, []).extend(
                sorted(p for p in class_dir.iterdir() if p.is_file()))
    return files


def held_count(n: int) -> int:
    """About 30%, at least 20 where the class allows, never more than half of it."""
    return min(max(round(HELD_SHARE * n), HELD_MIN), n // 2)


def carve(files: dict[str, list[Path]], seed: int, root: Path) -> dict[str, int]:
    """Link a seeded, stratified held-out folder and the pool under ``root``; their sizes."""
    rng = np.random.default_rng(seed)
    sizes = {"pool": 0, "heldout": 0}
    for label, paths in files.items():
        order = rng.permutation(len(paths))
        held = held_count(len(paths))
        for rank, i in enumerate(order):
            split = "heldout" if rank < held else "pool"
            target = root / split / label
            target.mkdir(parents=True, exist_ok=True)
            # Folder-qualified names: hymenoptera's train and val may hold the same file name.
            (target / f"{paths[i].parent.parent.name}__{paths[i].name}").symlink_to(paths[i])
            sizes[split] += 1
    return sizes


# ----------------------------------------------------------------------------- one arm
def tool(arm: str, before_src: Path | None) -> tuple[list[str], dict[str, str]]:
    """The command that runs tlsweep for ``arm``, and its environment."""
    env = dict(os.environ)
    if arm == "before":
        env["PYTHONPATH"] = str(before_src / "src")
    return [sys.executable, "-m", "tlsweep"], env


def switch_search_off(sweep: Path) -> None:
    data = yaml.safe_load(sweep.read_text())
    data["budget"]["trials"] = 1
    data.setdefault("finalists", {})["anchor"] = True
    sweep.write_text(yaml.safe_dump(data, sort_keys=False))


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def call(command: list[str], cwd: Path, env: dict[str, str], log: Path) -> None:
    with log.open("a") as out:
        out.write(f"$ {' '.join(command)}\n")
        out.flush()
        done = subprocess.run(command, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command[2:])} exited {done.returncode}; see {log}")


def run_arm(arm: str, case: Path, duration: str, before_src: Path | None,
            weights: Path) -> dict:
    """init, run, export and score one arm on one (set, seed); its row."""
    work = case / arm
    shutil.rmtree(work, ignore_errors=True)  # a half-done arm starts again
    work.mkdir(parents=True)
    command, env = tool(arm, before_src)
    env["TLSWEEP_RESULTS"] = str(work / "results")  # a user's default, whatever the caller's
    log = work / "log.txt"
    call([*command, "init", str(case / "pool"), "--weights", f"MobileNetV2={weights}",
          "--time", duration, "--out", "sweep.yaml"], work, env, log)
    if arm == "search-off":
        switch_search_off(work / "sweep.yaml")
    sweep = yaml.safe_load((work / "sweep.yaml").read_text())
    study = sweep["study"]
    cpu, began = children_cpu(), time.perf_counter()
    call([*command, "run", "sweep.yaml"], work, env, log)
    wall = time.perf_counter() - began
    cpu = (children_cpu() - cpu) / wall
    call([*command, "export", study, "--out", "export"], work, env, log)
    scores = work / "scores.json"
    call([sys.executable, str(HERE / "suite_score.py"), "model", str(work / "export"),
          str(case / "heldout"), str(scores)], work, env, log)
    size = int(sweep["data"]["image_size"])
    row = measured(arm, case, work, json.loads(scores.read_text()),
                   probe_scores(case, size, weights), wall, cpu, parse_duration(duration))
    return {**row, **time_split(work, study), "code": commit(before_src if arm == "before"
                                                               else REPO)}


def time_split(work: Path, study: str) -> dict:
    """Where the run's time went (``sweep.RunSplit``, recorded by code from issue 37 on) and
    what init's cost model planned for the finalists (from its log)."""
    import re

    planned = re.search(r"the finalists about (\d+) s", (work / "log.txt").read_text())
    found = {"init_finalists_s": float(planned.group(1)) if planned else None}
    try:
        from tlsweep.store import load_study
        from tlsweep.sweep import recorded_split
    except ImportError:  # the package of an older arm
        return found
    split = recorded_split(load_study(work / "results" / study, study))
    if split is None:
        return found
    return {**found, "search_s": split.search_s, "finalists_s": split.finalists_s,
            "refit_s": split.refit_s, "finalists_estimate_s": split.finalists_estimate_s}


def probe_scores(case: Path, size: int, weights: Path) -> dict:
    """The user's probe at ``size`` on this (set, seed), fitted once and kept."""
    path = case / f"probe-{size}px.json"
    if not path.is_file():
        seed = json.loads((case / "split.json").read_text())["seed"]
        subprocess.run([sys.executable, str(HERE / "suite_score.py"), "probe", str(weights),
                        str(case / "pool"), str(case / "heldout"), str(size), str(seed),
                        str(path)], check=True)
    return json.loads(path.read_text())


def estimates(card: dict) -> tuple[str, dict[str, dict]]:
    """The objective's metric, and every estimate the card holds of the delivered model by
    name (each value/low/high/method): the headline the tool shows, the test split, the chosen
    recipe's cross-validation. The suite measures them all, not just the one shown. (Rows
    written before the headline became the test split call their headline ``pooled``: the
    out-of-fold predictions pooled with the test split.)"""
    metrics = card["metrics"]
    metric = metrics["objective"].removeprefix("val_")
    headline = metrics.get("headline")
    test = metrics.get("test") or {}
    cv = metrics.get("cross_validated") or {}
    found = {"headline": headline and {**headline, "method": headline["source"]},
             "test": metric in test and {**test[metric],
                                         "method": f"test split ({test.get('n')} images)"},
             "cv": metrics["objective"] in cv and {**cv[metrics["objective"]],
                                                   "method": cv.get("method")}}
    return metric, {name: shown for name, shown in found.items()
                    if shown and shown.get("value") is not None}


def reported(card: dict) -> tuple[str, dict]:
    """The estimate the tool shows for its delivered model: (metric, value/low/high/method).
    Before the headline existed, the card's test score was the number shown, else its
    cross-validated one."""
    metric, found = estimates(card)
    return metric, next(found[name] for name in ("headline", "test", "cv") if name in found)


def candidates(card: dict, held: float) -> dict:
    """Each of the card's estimates (``estimates``), with whether it covers the held-out
    score."""
    row = {}
    for name, shown in estimates(card)[1].items():
        row.update({f"{name}_value": shown["value"], f"{name}_low": shown["low"],
                    f"{name}_high": shown["high"],
                    f"{name}_covered": bool(shown["low"] <= held <= shown["high"])})
    return row


def delivered_what(card: dict, work: Path, study: str) -> str:
    """probe, anchor or trial N, and how it was made."""
    from tlsweep.store import load_study

    if card["trial"] is None:
        return "probe"
    final = load_study(work / "results" / study, study).user_attrs.get("final") or {}
    anchors = {f["trial"] for f in final.get("finalists", []) if f.get("anchor")}
    what = "anchor" if card["trial"] in anchors else f"trial {card['trial']}"
    return f"{what} ({card['made_by']})"


def measured(arm: str, case: Path, work: Path, model: dict, probe: dict, wall: float,
             cpu: float, budget: float) -> dict:
    from tlsweep.measures import estimate, paired_gap

    labels = np.asarray(model["labels"])
    if model["class_names"] != probe["class_names"] or not np.array_equal(
            labels, probe["labels"]):
        raise RuntimeError(f"{case}: the model and the probe did not score the same images")
    card = json.loads((work / "export" / "card.json").read_text())
    metric, shown = reported(card)
    n = len(probe["class_names"])
    scores = {}
    for who, predicted in (("delivered", model["predicted"]), ("probe", probe["predicted"])):
        confusion = np.zeros((n, n), np.int64)
        np.add.at(confusion, (labels, np.asarray(predicted)), 1)
        for m in ("balanced_accuracy", "accuracy"):
            scores[f"{who}_{m}"] = estimate(confusion, m).value
    gap = paired_gap(labels, np.asarray(model["predicted"]), np.asarray(probe["predicted"]),
                     "balanced_accuracy")
    held = scores[f"delivered_{metric}"]
    split = json.loads((case / "split.json").read_text())
    study = yaml.safe_load((work / "sweep.yaml").read_text())["study"]
    return {"set": split["set"], "seed": split["seed"], "arm": arm,
            "pool": split["pool"], "heldout": len(labels), **scores,
            "gap": gap.gap, "gap_se": gap.se, "metric": metric, "reported": shown["value"],
            "low": shown["low"], "high": shown["high"], "method": shown.get("method"),
            "covered": bool(shown["low"] <= held <= shown["high"]),
            "error": shown["value"] - held, "delivered_as": delivered_what(card, work, study),
            "probe_class_weight": probe["class_weight"], "wall_s": wall, "budget_s": budget,
            "cpu": cpu, **candidates(card, held)}


# ----------------------------------------------------------------------------- report
def table(rows: pd.DataFrame) -> str:
    lines = ["| set | seed | arm | code | delivered | bal. acc. (acc.) | probe | − probe ± SE | "
             "reported [95%] | held-out | inside? | wall / budget | CPU |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows.sort_values(["set", "seed", "arm"]).itertuples():
        held = getattr(r, f"delivered_{r.metric}")
        lines.append(
            f"| {r.set} | {r.seed} | {r.arm} | {r.code} | {r.delivered_as} | "
            f"{r.delivered_balanced_accuracy:.3f} ({r.delivered_accuracy:.3f}) | "
            f"{r.probe_balanced_accuracy:.3f} | {100 * r.gap:+.1f} ± {100 * r.gap_se:.1f} | "
            f"{r.reported:.3f} [{r.low:.3f}, {r.high:.3f}] | {held:.3f} "
            f"({r.metric.replace('_', ' ')}) | {'yes' if r.covered else '**no**'} | "
            f"{r.wall_s / 60:.1f} / "
            f"{r.budget_s / 60:.0f} min | {100 * r.cpu:.0f}% |")
    return "\n".join(lines) + "\n"


def split_table(rows: pd.DataFrame) -> str:
    """Where each run's time went, for the runs whose code records it (issue 37), beside what
    the search planned for the finalists and what init's cost model said."""
    if "search_s" not in rows:
        return ""
    timed = rows[rows["search_s"].notna()]
    if timed.empty:
        return ""

    def minutes(value: float | None) -> str:
        return "–" if value is None or pd.isna(value) else f"{value / 60:.1f}"

    lines = ["\nWhere the time went (minutes; `budget.timeout` is the whole run's):\n",
             "| set | seed | arm | code | search | finalists | of which refit | finalists "
             "planned by the search | by init | wall / budget |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in timed.sort_values(["set", "seed", "arm"]).itertuples():
        lines.append(f"| {r.set} | {r.seed} | {r.arm} | {r.code} | {minutes(r.search_s)} | "
                     f"{minutes(r.finalists_s)} | {minutes(r.refit_s)} | "
                     f"{minutes(r.finalists_estimate_s)} | {minutes(r.init_finalists_s)} | "
                     f"{r.wall_s / r.budget_s:.2f}× |")
    return "\n".join(lines) + "\n"


def targets(rows: pd.DataFrame) -> str:
    out = []
    for arm, part in rows.groupby("arm"):
        per_set = part.groupby("set")["gap"].mean()
        out.append(
            f"- **{arm}** ({len(part)} runs, {part['set'].nunique()} sets): worst delivered − "
            f"probe {100 * part['gap'].min():+.1f} points (target ≥ −1 on every run: "
            f"{'met' if part['gap'].min() >= -0.01 else 'missed'}); mean over sets "
            f"{100 * per_set.mean():+.1f} (target ≥ +2: "
            f"{'met' if per_set.mean() >= 0.02 else 'missed'}); interval covers the held-out "
            f"score in {int(part['covered'].sum())} of {len(part)}; mean |reported − held-out| "
            f"{100 * part['error'].abs().mean():.1f} points (target ≤ 3); wall time "
            f"{(part['wall_s'] / part['budget_s']).min():.2f}–"
            f"{(part['wall_s'] / part['budget_s']).max():.2f}× the budget")
    return "\n".join(out) + "\n"


def candidate_coverage(rows: pd.DataFrame) -> str:
    """How each candidate estimate did against the held-out score, per arm."""
    out = ["| arm | estimate | runs | covered | mean distance to held-out (points) | "
           "mean width (points) |",
           "| --- | --- | --- | --- | --- | --- |"]
    held = rows.apply(lambda row: row[f"delivered_{row['metric']}"], axis=1)
    for arm, part in rows.groupby("arm"):
        for name in ("test", "cv", "pooled", "headline"):
            if f"{name}_value" not in part or part[f"{name}_value"].isna().all():
                continue
            have = part[part[f"{name}_value"].notna()]
            error = (have[f"{name}_value"] - held[have.index]).abs().mean()
            width = (have[f"{name}_high"] - have[f"{name}_low"]).mean()
            out.append(f"| {arm} | {name} | {len(have)} | "
                       f"{int(have[f'{name}_covered'].astype(bool).sum())} | "
                       f"{100 * error:.1f} | {100 * width:.1f} |")
    return "\n".join(out) + "\n"


def with_candidates(path: Path) -> dict:
    """A row, with its candidate estimates read from its card if it was written without them."""
    row = json.loads(path.read_text())
    row.setdefault("code", "unknown")  # rows written before the code was recorded
    card = path.parent / "export" / "card.json"
    if "test_covered" not in row and card.is_file():
        held = row[f"delivered_{row['metric']}"]
        row.update(candidates(json.loads(card.read_text()), held))
    return row


def report(out: Path, command: str, publish: bool) -> pd.DataFrame:
    rows = pd.DataFrame([with_candidates(p) for p in sorted(out.glob("*/*/row.json"))])
    if rows.empty:
        return rows
    rows.to_csv(out / "suite.csv", index=False)
    text = (f"Machine: {platform.machine()}, {os.cpu_count()} cores, no GPU; "
            f"{datetime.now(UTC):%Y-%m-%d}; commit {commit()}.\n\n"
            f"    {command}\n\n{targets(rows)}\n{table(rows)}\nThe candidates for the headline "
            f"estimate, on the same runs:\n\n{candidate_coverage(rows)}{split_table(rows)}")
    (out / "suite.md").write_text(text)
    print(text)
    if publish:
        from search_efficiency import update_results

        rows.to_csv(HERE / "suite.csv", index=False)
        update_results(text, (BEGIN, END))
    return rows


def commit(checkout: Path = REPO) -> str:
    """The checkout's short commit, marked ``+changes`` when its tracked files differ from it."""
    done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=checkout,
                          capture_output=True, text=True)
    dirty = subprocess.run(["git", "diff", "--quiet", "HEAD", "--", "src"], cwd=checkout)
    return (done.stdout.strip() or "unknown") + ("+changes" if dirty.returncode == 1 else "")


# ----------------------------------------------------------------------------- smoke
def smoke_set(root: Path) -> Path:
    """Three classes of 40 generated 48-px images, told apart by colour: a set that trains in
    seconds, so that CI runs the suite's every step."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for c, colour in enumerate(((200, 40, 40), (40, 200, 40), (40, 40, 200))):
        folder = root / "smoke" / f"class{c}"
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(40):
            noise = rng.integers(-40, 40, (48, 48, 3))
            pixels = np.clip(np.asarray(colour) + noise, 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(folder / f"{i}.png")
    return root


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sets", nargs="+", default=list(SETS), choices=list(SETS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    parser.add_argument("--arms", nargs="+", default=["tlsweep"], choices=ARMS)
    parser.add_argument("--time", default="10m")
    parser.add_argument("--before-src", type=Path)
    parser.add_argument("--out", type=Path, default=HERE / "runs" / "suite")
    parser.add_argument("--report", action="store_true", help="only the table, from disk")
    parser.add_argument("--no-publish", action="store_true",
                        help="leave RESULTS.md and benchmarks/suite.csv alone")
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()
    if "before" in args.arms and args.before_src is None:
        parser.error("--arms before needs --before-src DIR (a checkout of the code before)")
    if not WEIGHTS.is_file():
        sys.exit(f"{WEIGHTS} is absent: the suite needs ../shared (or TLSWEEP_SHARED)")
    root, sets, duration = DATA, args.sets, args.time
    if args.smoke:
        root, sets, duration = smoke_set(args.out / "data"), ["smoke"], "1m"
    command = "python benchmarks/suite.py " + " ".join(sys.argv[1:])
    if not args.report:
        for name in sets:
            for seed in args.seeds:
                case = args.out / f"{name}-s{seed}"
                if not (case / "split.json").is_file():
                    shutil.rmtree(case, ignore_errors=True)
                    sizes = carve(class_files(name, root), seed, case)
                    (case / "split.json").write_text(json.dumps(
                        {"set": name, "seed": seed, **sizes}))
                for arm in args.arms:
                    row = case / arm / "row.json"
                    if row.is_file():
                        continue
                    print(f"{name} seed {seed} {arm}: running", flush=True)
                    result = run_arm(arm, case, duration, args.before_src, WEIGHTS)
                    (case / arm).mkdir(exist_ok=True)
                    row.write_text(json.dumps(result, indent=1))
                    print(json.dumps(result), flush=True)
    report(args.out, command, publish=not (args.smoke or args.no_publish))


if __name__ == "__main__":
    main()
