"""``tlsweep init``: a commented sweep file and search space for an image folder, with defaults
read from the folder and the machine, each with its reason (printed, and written above its key).
Pillow and NumPy only, never TensorFlow: seconds on a few thousand images. The files pass the
checks ``tlsweep run`` makes (all but the weights' pre-flight, which needs TensorFlow) before
anything is written, and no file is ever overwritten.
"""

from __future__ import annotations

import math
import os
import shlex
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from tlsweep.cli._init_budget import (
    ANCHOR,
    COST,
    EPOCHS,
    FINALISTS,
    GPU_CORES,
    MIN_TRIALS,
    STARTUP_S,
    USEFUL_CORES,
    Plan,
    duration,
    plan_budget,
)
from tlsweep.cli._initscan import (
    CPU_BACKBONES,
    Folder,
    available_backbones,
    find_layout,
    machine,
    read_layout,
    weights_problem,
)
from tlsweep.config import load_sweep, parse_duration
from tlsweep.datasets import check_layout, find_duplicates, stratified_splits
from tlsweep.datasets import split_sizes as split_counts
from tlsweep.errors import ConfigError, DataError
from tlsweep.training import backbones as bb

IMBALANCED = 1.5  # max/min class count from which class weighting is worth searching
HELD_OUT_TARGET, HELD_OUT_MIN = 500, 100  # held-out images: 95% intervals of +-4, +-10 points
SHARE_MIN, SHARE_MAX, SHARE_STRETCH = 0.1, 0.2, 0.25  # val/test shares (STRETCH: to reach MIN)
MIN_TEST = 30  # a smaller test set says little and costs training images
Entry = tuple[str, Any, str]  # key, value (a list of entries is a block), why


@dataclass
class Scaffold:
    sweep_path: Path
    space_path: Path
    sweep_text: str = ""
    space_text: str = ""
    found: list[str] = field(default_factory=list)  # what the folder and the machine hold
    chosen: list[str] = field(default_factory=list)  # key: value (why)
    notes: list[str] = field(default_factory=list)


# ----------------------------------------------------------------------------- options
def parse_time(text: str) -> float:
    try:
        seconds = parse_duration(text)
    except ValueError as exc:
        raise ConfigError(f"--time: {exc}.") from None
    if not seconds:
        raise ConfigError(f"--time: {text!r} leaves no time; give the wall time the sweep may "
                          f"take, e.g. 30m or 2h.")
    return float(seconds)


def parse_weights(items: list[str]) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for item in items:
        name, sep, file = item.partition("=")
        path = Path(file).expanduser()
        if not (sep and name and file):
            raise ConfigError(f"--weights: {item!r} is not NAME=FILE; write e.g. --weights "
                              f"MobileNetV2=path/to/mobilenet_v2_1.0_notop.weights.h5.")
        if name not in bb.REGISTRY or name in found:
            raise ConfigError(f"--weights: {name} is given twice; give each backbone once."
                              if name in found else f"--weights: {name!r} is not a registered "
                              f"backbone; use one of: {', '.join(bb.REGISTRY)}.")
        if not path.is_file() or not path.name.endswith(".h5"):
            problem = "is not a .h5 weights file" if path.exists() else "does not exist"
            raise ConfigError(f"--weights: {name}: {path} {problem}. Give {name}'s no-top "
                              f".weights.h5 file.")
        problem = weights_problem(path)
        if problem is not None:
            raise ConfigError(f"--weights {item}: {path} {problem}. Give {name}'s no-top "
                              f".weights.h5 file (download it again if it was cut short).")
        found[name] = path.resolve()
    return found


def sanitise(name: str) -> str:
    """A study name (config/_schema.py: letters, digits, _ . -; a letter or digit first)."""
    cleaned = "".join(c if c.isascii() and (c.isalnum() or c in "_.-") else "_" for c in name)
    return cleaned.lstrip("_.-")[:100] or "sweep"


def output_paths(data_dir: Path, out: Path | None) -> tuple[Path, Path]:
    sweep = out or Path(f"{sanitise(data_dir.resolve().name)}.yaml")
    if sweep.suffix not in (".yaml", ".yml"):
        raise ConfigError(f"--out: {sweep} does not end in .yaml; name the sweep file e.g. "
                          f"{sweep.with_suffix('.yaml').name}.")
    space = sweep.with_name(f"{sweep.stem}_space{sweep.suffix}")
    for path in (sweep, space):
        if path.exists() or path.is_symlink():
            raise ConfigError(f"{path} already exists, and init never overwrites a file. Pass "
                              f"another --out (e.g. --out {sweep.stem}2.yaml), or remove it.")
    blocking = next((p for p in sweep.parents if p.exists() and not p.is_dir()), None)
    if blocking is not None:
        raise ConfigError(f"--out: {blocking} is a file, so {sweep} cannot be written. Pass "
                          f"another --out.")
    return sweep, space


# ----------------------------------------------------------------------------- choices
def choose_size(short_sides: list[int], min_size: int) -> tuple[int, str]:
    median = int(np.median(short_sides))
    size = min(224, max(32, median // 32 * 32))
    why = (f"the images' median short side is {median} px (min {min(short_sides)}, max "
           f"{max(short_sides)}): rounded down to a multiple of 32, at most 224, the backbones' "
           f"pretraining size (more costs quadratically and adds little)")
    if size < min_size or median < 32:
        size = max(size, math.ceil(min_size / 32) * 32)
        why += f"; at least {size} px, the smallest input the backbones take (upsampled)"
    return size, why


def _share(n: int) -> float:
    share = min(SHARE_MAX, max(SHARE_MIN, HELD_OUT_TARGET / n))
    if share * n < HELD_OUT_MIN:
        share = min(SHARE_STRETCH, HELD_OUT_MIN / n)
    return math.ceil(share * 100) / 100


def _points(n: int) -> str:
    """The half-width of a 95% interval on n images, at its widest (accuracy 0.5)."""
    return f"+-{100 * 1.96 * math.sqrt(0.25 / max(n, 1)):.0f} points"


def split_sizes(counts: list[int], val: float, test: float | None) -> tuple[list[int], int, int]:
    """(training images per class, validation images, test images): datasets/_data.py's split."""
    sizes = [split_counts(c, val, test) for c in counts]
    return [s[0] for s in sizes], sum(s[1] for s in sizes), sum(s[2] for s in sizes)


def choose_splits(folder: Folder,
                  with_test: bool) -> tuple[float, float | None, str, str]:
    """(val_split, test_split or None, and why for each)."""
    counts, n = folder.counts, sum(folder.counts)
    if min(counts) < 2:
        name = folder.classes[counts.index(min(counts))]
        raise DataError(f"DATA_DIR: class folder {folder.root / name} has {min(counts)} decodable "
                        f"image(s); every class needs 2 (one to train on, one to validate), and "
                        f"3 for a test set. Add images or remove the folder.")
    val = _share(n)
    test = val if with_test and round(val * n) >= MIN_TEST and min(counts) >= 3 else None
    _, n_val, n_test = split_sizes(counts, val, test)
    why = (f"{n_val} images (aim {HELD_OUT_TARGET}, at least {HELD_OUT_MIN} where the data "
           f"allows, a share of {SHARE_MIN}-{SHARE_STRETCH}): 95% intervals of about "
           f"{_points(n_val)}; every class has images in every split")
    if with_test and not test:
        why += f"; no test split: {n} images leave fewer than {MIN_TEST} for one"
    return val, test, why, f"the same share: {n_test} images, held out until the search ends"


# ----------------------------------------------------------------------------- the files
def _relative(path: Path, start: Path) -> str:
    """Relative when both lie in one folder below the root, else absolute."""
    path, start = path.resolve(), start.resolve()
    return str(path) if os.path.commonpath([path, start]) == path.anchor else \
        os.path.relpath(path, start)


def data_entries(s: Scaffold, layout: dict[str, Path], folders: dict[str, Folder]
                 ) -> tuple[list[Entry], tuple[float | None, float | None],
                            tuple[list[int], int, int]]:
    """The data keys but image_size and duplicates, the (val, test) shares of dir, and the
    split sizes: (training images per class, validation images, test images)."""
    rel = {role: _relative(path, s.sweep_path.parent) for role, path in layout.items()}
    val = test = None
    if "dir" in folders:
        val, test, why, test_why = choose_splits(folders["dir"], "test" not in folders)
        entries = [("dir", rel["dir"], "one folder per class, split by the run (seeded, "
                    "stratified)"), ("val_split", val, why)]
        entries += [("test_split", test, test_why)] if test else []
        sizes = split_sizes(folders["dir"].counts, val, test)
    else:
        entries = [("train_dir", rel["train"], "already split"), ("val_dir", rel["val"], "")]
        sizes = (folders["train"].counts, sum(folders["val"].counts), 0)
        s.notes.append(f"validation: {sizes[1]} images, so 95% intervals of about "
                       f"{_points(sizes[1])}")
    if "test" in folders:
        entries.append(("test_dir", rel["test"], "held out until the search ends"))
        sizes = (sizes[0], sizes[1], sum(folders["test"].counts))
    if not sizes[2]:
        s.notes.append("no test set, so the reported values will be optimistic (the best of "
                       "many validation scores); on small data the finalists' cross-validation "
                       "(finalists.reevaluate: auto) tempers that, but nothing is held out")
    return entries, (val, test), sizes


def duplicates_entry(folders: dict[str, Folder], val: float | None, test: float | None,
                     found: list[str]) -> Entry:
    """move, unless taking copies out would leave a class without validation or test images.
    dir is split as the run splits it (seed 0), so the copies found are those it will find
    (perceptual ones up to the decoded size)."""
    parts = {("train" if k == "dir" else k): f.part() for k, f in folders.items() if f.labels}
    if "dir" in folders and not folders["dir"].sampled:
        index = stratified_splits(np.asarray(folders["dir"].labels), val or 0.2, test, seed=0)
        parts |= {k: folders["dir"].part(v) for k, v in index.items()}
    report = find_duplicates(parts, "move")
    found += [f"duplicates: {line}" for line in report.summary_lines(examples=1)] or \
        ["duplicates: none (exact by sha256, or the same picture re-encoded)"]
    n_classes = len(next(iter(folders.values())).classes)
    for split, dropped in report.dropped.items():
        if split != "train" and len(set(np.delete(parts[split][2], dropped))) < n_classes:
            return ("duplicates", "keep", f"taking out the {split} images that copy an earlier "
                    f"split would leave a class without {split} images: fix the copies")
    return ("duplicates", "move", "copies of earlier splits' images leave validation and test "
            "for training, so that neither score is inflated and no image is lost")


def budget_entries(plan: Plan, seconds: float, ratio: float) -> list[Entry]:
    fits = (f"a trial takes about {plan.mean_s:.0f} s here ({plan.full_s:.0f} s if never "
            f"pruned), the finalists about {plan.finalists_s:.0f} s and start-up "
            f"{STARTUP_S:.0f} s, by a rough cost model (tlsweep/cli/_init_budget.py): "
            f"{plan.trials} trials fill {duration(seconds)}. The timeout is the whole run's: "
            f"the search stops early enough to leave the finalists their measured share")
    if plan.trials < MIN_TRIALS:
        fits += f". Fewer than {MIN_TRIALS} trials are barely a search: give a longer --time"
    recipe = ("the recipe benchmarks/RESULTS.md runs" if (plan.head, plan.finetune) == EPOCHS[0]
              else f"fewer than {MIN_TRIALS} trials of {' + '.join(map(str, EPOCHS[0]))} "
              f"epochs fit in the time")
    balanced = ratio >= IMBALANCED
    return [("budget", {"trials": plan.trials, "timeout": duration(seconds)}, fits),
            ("training", {"head_epochs": plan.head, "finetune_epochs": plan.finetune,
                          "batch_size": 32}, f"{plan.head} + {plan.finetune} epochs: {recipe}"),
            ("objective", "val_balanced_accuracy" if balanced else "val_accuracy",
             f"training classes {'im' if balanced else ''}balanced (max/min {ratio:.2f}; "
             f"threshold {IMBALANCED})" + (": every class weighs alike" if balanced else "")),
            ("pruner", {"kind": "successive_halving", "min_finetune_epochs": 4}, "lagging "
             "trials stop early (the budget counts on it), never before 4 fine-tune epochs: "
             "fine-tuning first dips below the probe it starts from, then recovers"),
            *([("finalists", {"anchor": True}, f"a fixed LP-FT recipe ({ANCHOR.head_epochs} + "
                f"{ANCHOR.finetune_epochs} epochs, augmentation {ANCHOR.augmentation_strength}) "
                f"runs as trial 0 and is cross-validated beside the top {FINALISTS.k} on the "
                "same folds, with the class weighting the objective asks for: a searched recipe "
                "is delivered only if it beats it there, and either only if it beats the "
                "linear probe there, else the cheaper probe is (benchmarks/RESULTS.md, \"The "
                "benchmark suite\")")]
              if plan.anchor else [])]


def space_entries(chosen: dict[str, str], source: str, space_path: Path,
                  ratio: float) -> list[Entry]:
    weights = {n: {"weights": w if w == "imagenet" else _relative(Path(w), space_path.parent)}
               for n, w in chosen.items()}
    small = "small, CPU-friendly " if set(chosen) <= set(CPU_BACKBONES) else ""
    weighting: Entry = ("class_weighting", {"choices": ["none", "balanced", "sqrt"]},
                        f"searched: the training classes are imbalanced (max/min {ratio:.2f})") \
        if ratio >= IMBALANCED else ("class_weighting", "none", f"fixed: the training classes "
                                     f"are balanced (max/min {ratio:.2f} < {IMBALANCED})")
    return [("backbone", {"choices": weights}, f"{small}backbones with {source}"),
            ("unfreeze_depth", {"low": 0.0, "high": 0.7}, "share of the backbone's layers "
             "unfrozen from the top for fine-tuning"),
            ("head_lr", {"low": 1.0e-5, "high": 1.0e-3, "log": True}, "the head starts as the "
             "linear probe (training.head_init); a low rate keeps it close"),
            ("finetune_lr", {"low": 1.0e-5, "high": 3.0e-4, "log": True}, ""),
            ("augmentation_strength", {"low": 0.0, "high": 1.0}, ""), weighting]


def _flow(value: Any) -> str:
    text = yaml.safe_dump(value, default_flow_style=True, sort_keys=False, width=10**6)
    return text.strip().removesuffix("\n...")


def _comments(text: str, indent: str = "") -> list[str]:
    hang = "  " if text.startswith("- ") else ""  # a list item's lines hang under its text
    return [f"{indent}# {line}" for line in textwrap.wrap(text, 98 - len(indent),
                                                          subsequent_indent=hang)]


def render(header: list[str], entries: list[Entry], indent: str = "") -> list[str]:
    lines = [line for text in header for line in _comments(text)]
    for key, value, why in entries:
        nested = isinstance(value, list)
        lines += [*_comments(why, indent), f"{indent}{key}:" + ("" if nested else
                                                               f" {_flow(value)}")]
        lines += render([], value, indent + "  ") if nested else []
    return lines


def summary(entries: list[Entry], prefix: str = "") -> list[str]:
    return [line for key, value, why in entries for line in (
        summary(value, f"{key}.") if isinstance(value, list) else
        [f"  {prefix}{key}: {_flow(value)}" + (f"  ({why})" if why else "")])]


def verify(s: Scaffold) -> None:
    """What ``tlsweep run`` checks before training, but the weights' TensorFlow pre-flight."""
    sweep = load_sweep(s.sweep_path, s.sweep_text, s.space_text)
    check_layout(sweep.config.data, s.sweep_path)
    for name, choice in sweep.space.backbone_choices().items():
        bb.resolve(name, choice, sweep.config.data.image_size,
                   f"{sweep.config.search_space}: backbone.choices.{name}")


def sweep_entries(s: Scaffold, layout: dict[str, Path], folders: dict[str, Folder],
                  chosen: dict[str, str], seconds: float, cores: int,
                  gpu: bool) -> tuple[list[Entry], float]:
    """The sweep file's entries, and the training classes' max/min ratio."""
    data, (val, test), (train, n_val, n_test) = data_entries(s, layout, folders)
    min_size = max(bb.REGISTRY[n].min_size for n in chosen)
    size, why = choose_size([n for f in folders.values() for n in f.short_sides], min_size)
    plan = plan_budget(seconds, [size] + [n for n in (160, 128, 96) if min_size <= n < size],
                       (sum(train), n_val, n_test), sum(COST[n] for n in chosen) / len(chosen),
                       GPU_CORES if gpu else float(min(cores, USEFUL_CORES)))
    if plan.size < size:
        why = f"lowered from {size} px so that {MIN_TRIALS} trials fit in the time; {why}"
    data += [("image_size", plan.size, why), duplicates_entry(folders, val, test, s.found)]
    study, ratio = sanitise(s.sweep_path.stem), max(train) / max(1, min(train))
    return [("study", study, f"results go to results/{study}/"), ("data", data, ""),
            ("search_space", _relative(s.space_path, s.sweep_path.parent), "relative to this "
             "file"), ("seed", 0, "seeds the split, the sampler and the training draws"),
            *budget_entries(plan, seconds, ratio)], ratio


def render_files(s: Scaffold, data_dir: Path, sweep: list[Entry], space: list[Entry]) -> None:
    s.chosen = summary(sweep) + summary(space)
    header = [f"Written by `tlsweep init {data_dir}`; run it with `{run_command(s)}`. Each "
              f"default's reason is written above it. What init found:",
              *(f"- {line}" for line in s.found), *(f"Note: {line}." for line in s.notes)]
    s.sweep_text = "\n".join(render(header, sweep)) + "\n"
    s.space_text = "\n".join(render([
        f"The search space of {s.sweep_path.name}, written by `tlsweep init`. A mapping is a "
        f"range ({{low, high, log}}) or a choice ({{choices: [...]}}); a plain value is fixed."],
        space)) + "\n"


def build(data_dir: Path, out: Path | None, weights: list[str], wall: str) -> Scaffold:
    """Every check and choice; nothing is written."""
    seconds, local = parse_time(wall), parse_weights(weights)
    s = Scaffold(*output_paths(data_dir, out))
    layout = find_layout(data_dir)
    cores, gpu = machine()
    chosen, source = available_backbones(local, gpu)
    s.found.append(f"backbones: {', '.join(chosen)} ({source})")
    folders = read_layout(data_dir, layout, s.found)
    s.found.append(f"machine: {cores} CPU core(s), "
                   + ("an NVIDIA GPU" if gpu else "no GPU that TensorFlow here can use"))
    sweep, ratio = sweep_entries(s, layout, folders, chosen, seconds, cores, gpu)
    render_files(s, data_dir, sweep, space_entries(chosen, source, s.space_path, ratio))
    verify(s)
    return s


def run_command(s: Scaffold) -> str:
    return f"tlsweep run {shlex.quote(str(s.sweep_path))}"


def write(s: Scaffold) -> None:
    """Mode ``x``: a file that appeared since the first check is refused, not overwritten."""
    s.sweep_path.parent.mkdir(parents=True, exist_ok=True)
    for path, text in ((s.space_path, s.space_text), (s.sweep_path, s.sweep_text)):
        try:
            with path.open("x", encoding="utf-8") as handle:
                handle.write(text)
        except FileExistsError:
            raise ConfigError(f"{path} already exists, and init never overwrites a file. Pass "
                              f"another --out.") from None


def init(data_dir: Path, out: Path | None, weights: list[str], wall: str) -> list[str]:
    """Write the two files; returns the lines to print: what was found, chosen and why."""
    s = build(data_dir, out, weights, wall)
    write(s)
    return ["found:", *(f"  {line}" for line in s.found),
            "chose (each reason is also a comment in the files):", *s.chosen,
            *(["notes:", *(f"  {line}" for line in s.notes)] if s.notes else []),
            f"wrote {s.sweep_path} and {s.space_path}", f"next: {run_command(s)}"]
