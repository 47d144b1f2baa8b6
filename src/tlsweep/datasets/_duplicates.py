"""Find repeated images within and across the train/val/test splits before training.

A copy of a training image in validation or test inflates those scores: the model is graded on a
picture it has learned. Two kinds of copy are looked for: byte-identical files ("exact", by sha256)
and the same picture re-encoded, resized or recoloured ("perceptual", judged on the already-decoded
pixels). Only numpy and Pillow are used, so this runs without TensorFlow.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image

SPLIT_ORDER = ("train", "val", "test")
SPLIT_NAMES = {"train": "training", "val": "validation", "test": "test"}
POLICIES = ("move", "drop", "keep")

# Two decoded images are the same picture when BOTH tests pass: their 64-bit difference hashes
# differ in at most HASH_DISTANCE bits, and their grayscale THUMB x THUMB thumbnails correlate at
# MIN_CORRELATION or more. On real photos each test alone merged distinct pictures: the hash, those
# with one layout (a bright flower centred on a dark ground); the correlation, those with one broad
# light (sky over a field). Re-encoded and resized copies pass both with room to spare, so the hash
# limit is loose and the correlation limit sits just below edited copies (recoloured, greyed).
HASH_DISTANCE = 12
MIN_CORRELATION = 0.97
THUMB = 32

# Rows of the all-pairs matrices computed at once: bounds memory at about CHUNK * n * 9 bytes.
CHUNK = 512


@dataclass(frozen=True)
class Entry:
    split: str  # "train", "val" or "test"
    path: str  # file path as a string
    label: int  # class index


def _entry_key(entry: Entry) -> tuple[int, str]:
    return SPLIT_ORDER.index(entry.split), entry.path


@dataclass(frozen=True)
class DuplicateGroup:
    kind: str  # "exact" if every member has the same bytes, else "perceptual"
    members: tuple[Entry, ...]  # sorted by (split order train<val<test, path)

    @property
    def splits(self) -> tuple[str, ...]:
        present = {m.split for m in self.members}
        return tuple(s for s in SPLIT_ORDER if s in present)

    @property
    def crosses_splits(self) -> bool:
        return len(self.splits) > 1

    @property
    def conflicting_labels(self) -> bool:
        """The same picture filed under 2+ classes: at least one of the labels is wrong."""
        return len({m.label for m in self.members}) > 1

    def later_copies(self) -> list[Entry]:
        """Members in a later split than the group's first: what 'move' and 'drop' take out of
        their split."""
        return [m for m in self.members if m.split != self.members[0].split]


@dataclass
class DuplicateReport:
    groups: list[DuplicateGroup]  # only groups of 2+ members
    dropped: dict[str, list[int]]  # per split: positions (into that split's arrays) taken out
    policy: str

    def within_split(self) -> list[DuplicateGroup]:
        return [g for g in self.groups if not g.crosses_splits]

    def across_splits(self) -> list[DuplicateGroup]:
        return [g for g in self.groups if g.crosses_splits]

    def summary_lines(self, examples: int = 3) -> list[str]:
        """Human lines: counts of groups/files within a split and across splits (by kind), up to
        `examples` example groups with their paths, labels conflicts, and what the policy did
        (e.g. 'dropped 5 validation and 2 test images that copy a training image'). Empty list when
        there are no duplicates."""
        if not self.groups:
            return []
        lines = [_count_line("within one split", self.within_split()),
                 _count_line("across splits", self.across_splits())]
        conflicts = sum(g.conflicting_labels for g in self.groups)
        if conflicts:
            lines.append(f"{conflicts} group(s) file the same picture under 2+ classes: "
                         "at least one label in each is wrong")
        # Show the groups that matter most first: label conflicts, then leaks across splits.
        ranked = sorted(self.groups, key=lambda g: (not g.conflicting_labels, not g.crosses_splits))
        return [*lines, *(_example_line(g) for g in ranked[:examples]), self._policy_line()]

    def _policy_line(self) -> str:
        leaked = Counter(m.split for g in self.groups for m in g.later_copies())
        counts = " and ".join(f"{leaked[s]} {SPLIT_NAMES[s]}" for s in SPLIT_ORDER if leaked[s])
        if not counts:
            return f"policy '{self.policy}': nothing to take out (no image copies an earlier split)"
        what = "images that copy an image of an earlier split (train < val < test)"
        if self.policy == "move":
            return f"policy 'move': moved {counts} {what} to training"
        if self.policy == "drop":
            return f"policy 'drop': dropped {counts} {what}"
        return f"policy 'keep': nothing dropped, so {counts} {what} may inflate those scores"

    def as_dict(self) -> dict:
        """JSON-serialisable, with lists rather than tuples so json.loads gives back the same."""
        groups = [{"kind": g.kind, "splits": list(g.splits), "crosses_splits": g.crosses_splits,
                   "conflicting_labels": g.conflicting_labels,
                   "members": [asdict(m) for m in g.members]} for g in self.groups]
        return {"policy": self.policy, "hash_distance": HASH_DISTANCE,
                "min_correlation": MIN_CORRELATION, "groups": groups,
                "within_split_groups": len(self.within_split()),
                "across_split_groups": len(self.across_splits()),
                "dropped": {s: [int(i) for i in v] for s, v in self.dropped.items()}}


def _count_line(where: str, groups: list[DuplicateGroup]) -> str:
    kinds = Counter(g.kind for g in groups)
    return (f"{where}: {len(groups)} group(s) of repeated images, "
            f"{sum(len(g.members) for g in groups)} files "
            f"({kinds['exact']} exact, {kinds['perceptual']} perceptual)")


def _example_line(group: DuplicateGroup, shown: int = 4) -> str:
    names = [f"{m.split}:{m.path} (label {m.label})" for m in group.members[:shown]]
    if len(group.members) > shown:
        names.append(f"+{len(group.members) - shown} more")
    flag = ", labels differ" if group.conflicting_labels else ""
    return f"e.g. {group.kind}, {'+'.join(group.splits)}{flag}: " + ", ".join(names)


def file_digest(path: str | Path) -> str:
    """sha256 hex of the file's bytes, read in blocks so large files do not fill memory."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _thumbnails(images: np.ndarray) -> np.ndarray:
    """Grayscale (n, THUMB, THUMB) float32: one size, so the tests behave alike at any decoded
    size. BILINEAR widens its filter when shrinking (area averaging, not pixel sampling), and
    reducing_gap box-reduces big images first, much faster and as faithful."""
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise ValueError(f"images must be uint8 (n, size, size, 3), not {images.dtype} "
                         f"{images.shape}")
    small = [np.asarray(Image.fromarray(np.ascontiguousarray(image)).resize(
        (THUMB, THUMB), Image.Resampling.BILINEAR, reducing_gap=2.0)) for image in images]
    rgb = np.stack(small) if small else np.zeros((0, THUMB, THUMB, 3), np.uint8)
    return rgb.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)


def _dhash(thumbs: np.ndarray) -> np.ndarray:
    """Shrink to 9x8 and set a bit where a pixel is brighter than its right neighbour; in float
    ("F" mode), since rounding to 8 bits first would flip near-tied bits."""
    small = [np.asarray(Image.fromarray(t).resize((9, 8), Image.Resampling.BILINEAR))
             for t in thumbs]
    grid = np.stack(small) if small else np.zeros((0, 8, 9), np.float32)
    bits = (grid[:, :, 1:] > grid[:, :, :-1]).reshape(len(grid), 64)
    return np.packbits(bits, axis=1).view(">u8").astype(np.uint64).ravel()


def perceptual_hashes(images: np.ndarray) -> np.ndarray:
    """64-bit difference hash (dHash) of each (size, size, 3) uint8 image, as uint64."""
    return _dhash(_thumbnails(images))


def _unit_vectors(thumbs: np.ndarray) -> np.ndarray:
    """Thumbnails minus their mean, scaled to length 1: a dot product is then a correlation,
    blind to brightness and contrast edits. A flat image becomes zeros (correlation 0), so a
    featureless picture is never called a perceptual copy, only an exact one."""
    flat = thumbs.reshape(len(thumbs), -1)
    centred = flat - flat.mean(axis=1, keepdims=True)
    norms = np.linalg.norm(centred, axis=1, keepdims=True)
    return np.where(norms > 1e-3, centred / np.maximum(norms, 1e-3), 0).astype(np.float32)


def _close_pairs(hashes: np.ndarray, vectors: np.ndarray) -> list[tuple[int, int]]:
    """(i, j), i < j, that pass both tests: O(n^2), in row chunks to bound memory, and only
    against later columns, since the matrices are symmetric."""
    found = []
    for start in range(0, len(hashes), CHUNK):
        rows = slice(start, start + CHUNK)
        near = np.bitwise_count(hashes[rows, None] ^ hashes[None, start:]) <= HASH_DISTANCE
        near &= vectors[rows] @ vectors[start:].T >= MIN_CORRELATION
        found += [(start + i, start + j) for i, j in zip(*np.nonzero(near), strict=True) if i < j]
    return [(int(i), int(j)) for i, j in found]


def _exact_pairs(digests: list[str]) -> list[tuple[int, int]]:
    """Link each file to the first with the same bytes, whatever their pixels look like."""
    by_digest: dict[str, list[int]] = {}
    for i, digest in enumerate(digests):
        by_digest.setdefault(digest, []).append(i)
    return [(same[0], j) for same in by_digest.values() for j in same[1:]]


def _clusters(n: int, pairs: list[tuple[int, int]]) -> list[list[int]]:
    """Union-find over the pairs; returns the clusters of 2+ indices."""
    parent = list(range(n))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]  # path halving keeps later look-ups short
            i = parent[i]
        return i

    for a, b in pairs:
        parent[root(a)] = root(b)
    found: dict[int, list[int]] = {}
    for i in range(n):
        found.setdefault(root(i), []).append(i)
    return [c for c in found.values() if len(c) > 1]


def _gather(splits: dict[str, tuple[list[str], np.ndarray, np.ndarray]]
            ) -> tuple[list[Entry], list[int], np.ndarray]:
    """Entries, their positions within their split, and all thumbnails, in split order."""
    unknown = set(splits) - set(SPLIT_ORDER)
    if unknown:
        raise ValueError(f"unknown split(s) {sorted(unknown)}; expected some of {SPLIT_ORDER}")
    entries: list[Entry] = []
    positions: list[int] = []
    thumbs = [np.zeros((0, THUMB, THUMB), np.float32)]
    for name in (s for s in SPLIT_ORDER if s in splits):
        paths, images, labels = splits[name]
        if not len(paths) == len(images) == len(labels):
            raise ValueError(f"split {name!r}: {len(paths)} paths, {len(images)} images and "
                             f"{len(labels)} labels; they must match")
        entries += [Entry(name, str(p), int(y)) for p, y in zip(paths, labels, strict=True)]
        positions += range(len(paths))
        thumbs.append(_thumbnails(np.asarray(images)))
    return entries, positions, np.concatenate(thumbs)


def find_duplicates(splits: dict[str, tuple[list[str], np.ndarray, np.ndarray]],
                    policy: str = "move") -> DuplicateReport:
    """splits: name -> (paths, images uint8 (n,s,s,3), labels int). policy 'move' or 'drop':
    every image in val or test that has a copy in an earlier split (train for val; train or val
    for test) is listed in `dropped` for its split, so that validation and test stay honest
    (the caller moves them to training, or discards them); copies within one split are
    reported, not taken out. 'keep': report only, take nothing out."""
    if policy not in POLICIES:
        raise ValueError(f"policy must be one of {POLICIES}, not {policy!r}")
    entries, positions, thumbs = _gather(splits)
    digests = [file_digest(e.path) for e in entries]
    pairs = _exact_pairs(digests) + _close_pairs(_dhash(thumbs), _unit_vectors(thumbs))
    groups, dropped = [], {s: [] for s in SPLIT_ORDER if s in splits}
    for cluster in _clusters(len(entries), pairs):
        cluster.sort(key=lambda i: _entry_key(entries[i]))
        kind = "exact" if len({digests[i] for i in cluster}) == 1 else "perceptual"
        groups.append(DuplicateGroup(kind, tuple(entries[i] for i in cluster)))
        if policy != "keep":
            # A group is one picture, so a test image that matches only a val image which
            # matches a train image still counts as a copy of the earlier split.
            first = entries[cluster[0]].split
            for i in cluster:
                if entries[i].split != first:
                    dropped[entries[i].split].append(positions[i])
    groups.sort(key=lambda g: _entry_key(g.members[0]))
    return DuplicateReport(groups, {s: sorted(v) for s, v in dropped.items()}, policy)
