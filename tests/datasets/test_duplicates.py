"""Duplicate images within and across splits: planted copies are found, distinct images are not.

Images are made here (smooth random textures, so that re-encoding and resizing behave as on
photos) and decoded with Pillow the way a caller would; no TensorFlow, no shared data.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tlsweep.datasets import find_duplicates
from tlsweep.datasets._duplicates import (
    HASH_DISTANCE,
    POLICIES,
    DuplicateGroup,
    Entry,
    file_digest,
    perceptual_hashes,
)

SIZE = 32  # the decoded size the caller passes


def picture(seed: int, size: int = 96) -> Image.Image:
    """A distinct smooth texture: a few random waves and blobs per channel."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:1:size * 1j, 0:1:size * 1j]
    channels = []
    for _ in range(3):
        field = np.zeros((size, size))
        for _ in range(4):
            fx, fy = rng.uniform(-4, 4, 2)
            field += rng.uniform(0.5, 1) * np.sin(2 * np.pi * (fx * x + fy * y) + rng.uniform(0, 6))
        for cx, cy in rng.uniform(0, 1, (3, 2)):
            field += 2 * np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / 0.01)
        channels.append((field - field.min()) / np.ptp(field))
    return Image.fromarray((np.stack(channels, axis=-1) * 255).astype(np.uint8))


def decode(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB").resize((SIZE, SIZE), Image.Resampling.BILINEAR))


def save(image: Image.Image, path: Path, **options: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, **options)
    return path


def as_splits(files: dict[str, list[tuple[Path, int]]]
              ) -> dict[str, tuple[list[str], np.ndarray, np.ndarray]]:
    return {split: ([str(p) for p, _ in items], np.stack([decode(p) for p, _ in items]),
                    np.array([label for _, label in items]))
            for split, items in files.items()}


@pytest.fixture
def planted(tmp_path: Path) -> dict[str, list[tuple[Path, int]]]:
    """Distinct images per split, plus one planted copy of each kind the module must catch."""
    files: dict[str, list[tuple[Path, int]]] = {"train": [], "val": [], "test": []}
    for seed in range(8):  # train/c{label}/t{seed}.png: t0..t4 are the originals copied below
        files["train"].append((save(picture(seed), tmp_path / f"train/c{seed % 2}/t{seed}.png"),
                               seed % 2))
    for split, first in (("val", 100), ("test", 200)):
        for seed in range(first, first + 4):
            files[split].append((save(picture(seed), tmp_path / f"{split}/c0/u{seed}.png"), 0))
    t = {n: files["train"][n][0] for n in range(5)}

    def copy(source: Path, target: Path) -> Path:
        target.parent.mkdir(parents=True, exist_ok=True)
        return Path(shutil.copyfile(source, target))

    files["val"].insert(1, (copy(t[0], tmp_path / "val/c0/exact_t0.png"), 0))  # val position 1
    files["train"].append((copy(t[1], tmp_path / "train/c1/again_t1.png"), 1))
    with Image.open(t[2]) as image:
        files["test"].append((save(image.convert("RGB"), tmp_path / "test/c0/t2.jpg",
                                   quality=60), 0))  # test position 4
    with Image.open(t[3]) as image:
        half = image.resize((48, 48), Image.Resampling.BILINEAR)
        files["val"].append((save(half, tmp_path / "val/c1/half_t3.png"), 1))  # val position 5
    files["train"].append((copy(t[4], tmp_path / "train/c1/t4.png"), 1))  # t4 is in c0: conflict
    return files


def by_first_path(groups: list[DuplicateGroup]) -> dict[str, DuplicateGroup]:
    return {Path(g.members[0].path).relative_to(Path(g.members[0].path).parents[2]).as_posix(): g
            for g in groups}


def test_planted_copies_are_grouped_by_kind(planted: dict) -> None:
    report = find_duplicates(as_splits(planted))
    groups = by_first_path(report.groups)
    assert sorted(groups) == ["train/c0/t0.png", "train/c0/t2.png", "train/c0/t4.png",
                              "train/c1/again_t1.png", "train/c1/t3.png"]
    expected = {"train/c0/t0.png": ("exact", ("train", "val")),
                "train/c1/again_t1.png": ("exact", ("train",)),
                "train/c0/t2.png": ("perceptual", ("train", "test")),
                "train/c1/t3.png": ("perceptual", ("train", "val")),
                "train/c0/t4.png": ("exact", ("train",))}
    for name, (kind, splits) in expected.items():
        assert (groups[name].kind, groups[name].splits) == (kind, splits), name
        assert len(groups[name].members) == 2
    assert [g.conflicting_labels for g in report.groups].count(True) == 1
    assert groups["train/c0/t4.png"].conflicting_labels
    assert len(report.across_splits()) == 3 and len(report.within_split()) == 2


def test_drop_lists_exactly_the_val_and_test_copies(planted: dict) -> None:
    report = find_duplicates(as_splits(planted), policy="drop")
    assert report.dropped == {"train": [], "val": [1, 5], "test": [4]}
    kept = find_duplicates(as_splits(planted), policy="keep")
    assert kept.dropped == {"train": [], "val": [], "test": []}
    assert [g.members for g in kept.groups] == [g.members for g in report.groups]


def test_members_are_sorted_by_split_then_path() -> None:
    members = (Entry("val", "a.png", 0), Entry("train", "z.png", 0))
    group = DuplicateGroup("exact", tuple(sorted(members, key=lambda m: m.split != "train")))
    assert group.splits == ("train", "val") and group.crosses_splits
    assert not group.conflicting_labels


def test_test_copy_of_val_is_dropped_but_copies_within_a_split_are_not(tmp_path: Path) -> None:
    val = save(picture(1), tmp_path / "val/a.png")
    files = {"val": [(val, 0), (Path(shutil.copyfile(val, tmp_path / "val/b.png")), 0)],
             "test": [(save(picture(2), tmp_path / "test/x.png"), 0),
                      (Path(shutil.copyfile(val, tmp_path / "test/c.png")), 0)]}
    report = find_duplicates(as_splits(files))  # no train split at all
    assert report.dropped == {"val": [], "test": [1]}
    (group,) = report.groups
    assert [m.path for m in group.members] == [str(tmp_path / p)
                                               for p in ("val/a.png", "val/b.png", "test/c.png")]


def test_distinct_and_featureless_images_are_not_grouped(tmp_path: Path) -> None:
    files = {"train": [(save(picture(seed), tmp_path / f"{seed}.png"), 0) for seed in range(30)]}
    # Flat images all hash to 0, so only the correlation test keeps them apart.
    for name, colour in (("red", (200, 0, 0)), ("blue", (0, 0, 200))):
        flat = Image.new("RGB", (64, 64), colour)
        files["train"].append((save(flat, tmp_path / f"{name}.png"), 1))
    report = find_duplicates(as_splits(files))
    assert report.groups == [] and report.summary_lines() == []


def test_hashes_tolerate_reencoding_and_separate_distinct(tmp_path: Path) -> None:
    original = save(picture(5), tmp_path / "a.png")
    with Image.open(original) as image:
        jpeg = save(image.convert("RGB"), tmp_path / "a.jpg", quality=60)
    hashes = perceptual_hashes(np.stack([decode(original), decode(jpeg), decode(
        save(picture(6), tmp_path / "b.png"))]))
    assert hashes.dtype == np.uint64 and hashes.shape == (3,)
    distance = [bin(int(hashes[0]) ^ int(h)).count("1") for h in hashes[1:]]
    assert distance[0] <= HASH_DISTANCE < distance[1]


def test_file_digest_is_sha256_of_the_bytes(tmp_path: Path) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(b"abc" * 1000)
    assert file_digest(path) == file_digest(str(path)) == hashlib.sha256(b"abc" * 1000).hexdigest()


def test_summary_lines_give_counts_examples_and_policy(planted: dict) -> None:
    lines = find_duplicates(as_splits(planted)).summary_lines(examples=5)
    text = "\n".join(lines)
    assert "within one split: 2 group(s) of repeated images, 4 files (2 exact, 0 perceptual)" \
        in text
    assert "across splits: 3 group(s) of repeated images, 6 files (1 exact, 2 perceptual)" in text
    assert "1 group(s) file the same picture under 2+ classes" in text
    assert lines[-1].startswith("policy 'move': moved 2 validation and 1 test images")
    assert lines[-1].endswith("to training")
    dropped = find_duplicates(as_splits(planted), policy="drop").summary_lines()
    assert dropped[-1].startswith("policy 'drop': dropped 2 validation and 1 test images")
    for copy in ("val/c0/exact_t0.png", "test/c0/t2.jpg", "val/c1/half_t3.png", "train/c1/t4.png"):
        assert copy in text
    # Label conflicts come first among the examples; `examples` bounds how many are shown.
    short = find_duplicates(as_splits(planted), policy="keep").summary_lines(examples=1)
    assert len([line for line in short if line.startswith("e.g.")]) == 1
    assert "labels differ" in short[3] and "nothing dropped" in short[-1]


def test_as_dict_round_trips_through_json(planted: dict) -> None:
    data = find_duplicates(as_splits(planted)).as_dict()
    assert json.loads(json.dumps(data)) == data
    assert data["dropped"] == {"train": [], "val": [1, 5], "test": [4]}
    assert len(data["groups"]) == 5 and data["policy"] == "move"


def test_bad_input_is_refused(planted: dict) -> None:
    splits = as_splits(planted)
    assert POLICIES == ("move", "drop", "keep")
    with pytest.raises(ValueError, match="policy"):
        find_duplicates(splits, policy="delete")
    with pytest.raises(ValueError, match="unknown split"):
        find_duplicates({"validation": splits["val"]})
    paths, images, labels = splits["train"]
    with pytest.raises(ValueError, match="must match"):
        find_duplicates({"train": (paths[:-1], images, labels)})
    with pytest.raises(ValueError, match="uint8"):
        perceptual_hashes(images.astype(np.float32))
