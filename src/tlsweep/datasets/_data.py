"""A dataset from its sweep file's ``data:``: the layout checked, the folders decoded
(``_images``), split by class, de-duplicated across splits, with class weights. No TensorFlow
(the training batches made from it are in ``training._batches``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tlsweep.config import DataConfig
from tlsweep.datasets._duplicates import DuplicateReport, find_duplicates
from tlsweep.datasets._images import (
    FolderImages,
    Skipped,
    load_folder,
    scan_classes,
)
from tlsweep.errors import DataError


@dataclass
class Dataset:
    """Train, validation and (optional) test arrays. Trials only ever see train and val: the
    test set is read by the finalists' stage alone."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    class_names: list[str]
    skipped: list[Skipped]
    cache_dirs: list[Path] = field(default_factory=list)  # the decoded arrays, memory-mapped
    x_test: np.ndarray | None = None
    y_test: np.ndarray | None = None
    paths: dict[str, list[str]] = field(default_factory=dict)  # per split, after de-duplication
    duplicates: DuplicateReport | None = None

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    @property
    def has_test(self) -> bool:
        return self.y_test is not None and len(self.y_test) > 0

    def cache_size_mb(self) -> float:
        return sum(f.stat().st_size for d in self.cache_dirs for f in d.iterdir()) / 2**20


# ----------------------------------------------------------------------------- scanning
# ----------------------------------------------------------------------------- decoding
# ----------------------------------------------------------------------------- splitting
SPLITS = ("train", "val", "test")


def stratified_split(y: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, val): every class keeps at least one training image."""
    rng = np.random.default_rng(seed)
    train, val = [], []
    for label in np.unique(y):
        members = rng.permutation(np.flatnonzero(y == label))
        n_val = min(len(members) - 1, max(1, round(fraction * len(members))))
        val.append(members[:n_val])
        train.append(members[n_val:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(val))


def split_sizes(n: int, val: float, test: float | None) -> tuple[int, int, int]:
    """(train, val, test) images of a class of ``n`` under ``stratified_splits``."""
    n_test = max(1, round(test * n)) if test else 0
    n_val = max(1, round(val * n)) if test else min(n - 1, max(1, round(val * n)))
    return n - n_val - n_test, n_val, n_test


def stratified_splits(y: np.ndarray, val: float, test: float | None,
                      seed: int) -> dict[str, np.ndarray]:
    """Indices per split; the test share is carved out of each class first. Without a test
    share the split is ``stratified_split``'s, so studies made before test sets existed
    resume on the same images."""
    if not test:
        train, val_indices = stratified_split(y, val, seed)
        return {"train": train, "val": val_indices}
    rng = np.random.default_rng(seed)
    parts: dict[str, list[np.ndarray]] = {name: [] for name in SPLITS}
    for label in np.unique(y):
        members = rng.permutation(np.flatnonzero(y == label))
        _, n_val, n_test = split_sizes(len(members), val, test)
        parts["test"].append(members[:n_test])
        parts["val"].append(members[n_test:n_test + n_val])
        parts["train"].append(members[n_test + n_val:])
    return {name: np.sort(np.concatenate(chunks)) for name, chunks in parts.items()}


def _fits(count: int, data: DataConfig) -> bool:
    train, val, test = split_sizes(count, data.split, data.test_split)
    return train >= 1 and val >= 1 and (not data.test_split or test >= 1)


def _check_class_sizes(data: DataConfig, counts: dict[str, int], source: Path) -> None:
    """Every class must appear in every split carved out of ``data.dir``."""
    assert data.dir is not None
    splits = "train, val" + (" and test" if data.test_split else "")
    shares = f"val_split {data.split}" + (f" and test_split {data.test_split}"
                                          if data.test_split else "")
    for name, count in counts.items():
        if not _fits(count, data):
            needed = next(n for n in range(count + 1, 10_000) if _fits(n, data))
            raise DataError(f"{source}: data.dir: class folder {data.dir / name} has {count} "
                            f"image(s), too few to appear in every split ({splits}) at {shares}: "
                            f"it needs at least {needed}. Add images, remove the class, or change "
                            f"the splits.")


def check_layout(data: DataConfig, source: Path) -> None:
    """The folder checks that need no decoding: folders exist, classes are present and match,
    and every class has enough files for every split."""
    if data.dir is not None:
        names, files, _ = scan_classes(data.dir, "data.dir", source)
        counts = np.bincount([label for _, label in files], minlength=len(names))
        _check_class_sizes(data, dict(zip(names, counts.tolist(), strict=True)), source)
        train_classes = names
    else:
        assert data.train_dir is not None and data.val_dir is not None
        train_classes = scan_classes(data.train_dir, "data.train_dir", source)[0]
        _same_classes(train_classes, scan_classes(data.val_dir, "data.val_dir", source)[0],
                      "data.val_dir", source, "data.train_dir")
    if data.test_dir is not None:
        _same_classes(train_classes, scan_classes(data.test_dir, "data.test_dir", source)[0],
                      "data.test_dir", source, "data.dir" if data.dir else "data.train_dir")


def _same_classes(train: list[str], other: list[str], key: str, source: Path,
                  train_key: str) -> None:
    if train != other:
        raise DataError(f"{source}: {key}: its classes {other} differ from {train_key}'s "
                        f"{train}. Give every split the same class folders.")


Part = tuple[list[str], np.ndarray, np.ndarray]  # paths, images, labels


def _load_parts(data: DataConfig, seed: int, source: Path) -> tuple[dict[str, Part],
                                                                    list[str], list[Skipped],
                                                                    list[Path]]:
    """(split -> part, class names, skipped files, cache folders), before de-duplication."""
    folders: dict[str, FolderImages] = {}  # by sweep-file key
    parts: dict[str, Part] = {}
    if data.dir is not None:
        images = load_folder(data.dir, data.image_size, "data.dir", source)
        counts = np.bincount(images.y, minlength=len(images.class_names)).tolist()
        _check_class_sizes(data, dict(zip(images.class_names, counts, strict=True)), source)
        folders["data.dir"] = images
        for name, index in stratified_splits(images.y, data.split, data.test_split,
                                             seed).items():
            parts[name] = ([images.paths[i] for i in index], np.asarray(images.x[index]),
                           images.y[index])
    else:
        assert data.train_dir is not None and data.val_dir is not None
        for name, folder in (("train", data.train_dir), ("val", data.val_dir)):
            key = f"data.{name}_dir"
            folders[key] = load_folder(folder, data.image_size, key, source)
            parts[name] = (folders[key].paths, np.asarray(folders[key].x), folders[key].y)
    if data.test_dir is not None:
        folders["data.test_dir"] = load_folder(data.test_dir, data.image_size, "data.test_dir",
                                               source)
        test = folders["data.test_dir"]
        parts["test"] = (test.paths, np.asarray(test.x), test.y)
    (first_key, first), *others = folders.items()
    names = first.class_names
    for key, folder in others:
        _same_classes(names, folder.class_names, key, source, first_key)
    skipped = [s for folder in folders.values() for s in folder.skipped]
    return parts, names, skipped, [f.cache_dir for f in folders.values()
                                   if f.cache_dir is not None]


def _without(part: Part, drop: list[int]) -> Part:
    if not drop:
        return part
    keep = np.setdiff1d(np.arange(len(part[2])), drop)
    return [part[0][i] for i in keep], part[1][keep], part[2][keep]


def _only(part: Part, chosen: list[int]) -> Part:
    return [part[0][i] for i in chosen], part[1][chosen], part[2][chosen]


def _joined(first: Part, *more: Part) -> Part:
    parts = [first, *(p for p in more if len(p[2]))]
    return ([path for p in parts for path in p[0]], np.concatenate([p[1] for p in parts]),
            np.concatenate([p[2] for p in parts]))


def _separated(parts: dict[str, Part], report: DuplicateReport) -> dict[str, Part]:
    """The splits without the copies the policy takes out of validation and test; under 'move'
    those join training: they still teach, they only must not grade."""
    taken = {name: _only(part, report.dropped.get(name, [])) for name, part in parts.items()
             if name != "train"}
    parts = {name: _without(part, report.dropped.get(name, [])) for name, part in parts.items()}
    if report.policy == "move":
        parts["train"] = _joined(parts["train"], *taken.values())
    return parts


def load_dataset(data: DataConfig, seed: int, source: Path) -> Dataset:
    parts, names, skipped, cache_dirs = _load_parts(data, seed, source)
    report = find_duplicates(parts, data.duplicates)
    parts = _separated(parts, report)
    for name in ("val", "test"):
        if name in parts:
            present = np.bincount(parts[name][2], minlength=len(names))
            empty = [names[c] for c in np.flatnonzero(present == 0)]
            if empty:
                raise DataError(f"{source}: data: after taking copies of earlier splits' images "
                                f"out of validation and test (data.duplicates: "
                                f"{data.duplicates}), class {empty[0]!r} has no {name} "
                                f"image left. Add distinct images of it, or set "
                                f"data.duplicates: keep.")
    test = parts.get("test")
    return Dataset(parts["train"][1], parts["train"][2], parts["val"][1], parts["val"][2],
                   names, skipped, cache_dirs,
                   x_test=test[1] if test else None, y_test=test[2] if test else None,
                   paths={name: part[0] for name, part in parts.items()}, duplicates=report)


# ----------------------------------------------------------------------------- class weights
def class_weights(y: np.ndarray, n_classes: int, mode: str) -> dict[int, float] | None:
    """``balanced``: n / (k * n_c); ``sqrt``: its square root; ``none``: no weighting."""
    if mode == "none":
        return None
    counts = np.bincount(y, minlength=n_classes).astype(float)
    balanced = len(y) / (n_classes * np.maximum(counts, 1.0))
    weights = np.sqrt(balanced) if mode == "sqrt" else balanced
    return {i: float(w) for i, w in enumerate(weights)}
