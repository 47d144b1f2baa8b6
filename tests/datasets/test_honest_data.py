"""Test sets, splits and duplicates from the sweep file to the arrays; bad input refused before
anything is created. No TensorFlow."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import run_cli, tiny_space, tiny_sweep, write_class_images, write_yaml
from tlsweep.config import DataConfig
from tlsweep.datasets import load_dataset

SOURCE = Path("sweep.yaml")


def textured(seed: int, size: int = 48) -> Image.Image:
    """A distinct picture: smooth random blobs, so re-encoding and resizing keep its look."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 255, (6, 6, 3), dtype=np.uint8)
    return Image.fromarray(small).resize((size, size), Image.Resampling.BICUBIC)


def planted(root: Path) -> dict[str, Path]:
    """train/val/test folders of distinct pictures, then copies planted across the splits."""
    seeds = iter(range(1000))
    for split, count in (("train", 8), ("val", 4), ("test", 4)):
        for label in ("a", "b"):
            folder = root / split / label
            folder.mkdir(parents=True)
            for i in range(count):
                textured(next(seeds)).save(folder / f"{split}_{label}_{i}.png")
    source = root / "train" / "a" / "train_a_0.png"
    shutil.copyfile(source, root / "val" / "a" / "exact_copy.png")
    Image.open(root / "train" / "b" / "train_b_1.png").convert("RGB").save(
        root / "test" / "b" / "reencoded.jpg", quality=60)
    Image.open(root / "train" / "a" / "train_a_2.png").resize((24, 24)).save(
        root / "val" / "a" / "resized.png")
    shutil.copyfile(root / "train" / "a" / "train_a_3.png", root / "train" / "a" / "twin.png")
    return {split: root / split for split in ("train", "val", "test")}


def config(dirs: dict[str, Path], **extra: object) -> DataConfig:
    return DataConfig(train_dir=dirs["train"], val_dir=dirs["val"], test_dir=dirs["test"],
                      image_size=16, **extra)


def test_copies_across_splits_leave_val_and_test_for_training(tmp_path: Path) -> None:
    dirs = planted(tmp_path / "data")
    data = load_dataset(config(dirs), 0, SOURCE)
    report = data.duplicates
    assert report is not None and report.policy == "move"
    copies = {"exact_copy.png", "reencoded.jpg", "resized.png"}
    names = {Path(p).name for split in ("val", "test") for p in data.paths[split]}
    assert not names & copies
    # They grade nothing but still teach: train holds its 17 files and the 3 copies.
    assert copies <= {Path(p).name for p in data.paths["train"]}
    assert (len(data.y_train), len(data.y_val), len(data.y_test)) == (20, 8, 8)
    assert len(data.x_train) == len(data.paths["train"]) == 20
    moved = data.paths["train"].index(str(dirs["test"] / "b" / "reencoded.jpg"))
    assert data.y_train[moved] == data.class_names.index("b")
    kinds = sorted(g.kind for g in report.across_splits())
    assert kinds == ["exact", "perceptual", "perceptual"]
    assert [g.kind for g in report.within_split()] == ["exact"]  # the twin stays in train
    text = "\n".join(report.summary_lines())
    assert "exact_copy.png" in text and "moved 2 validation and 1 test" in text

    dropped = load_dataset(config(dirs, duplicates="drop"), 0, SOURCE)
    assert (len(dropped.y_train), len(dropped.y_val), len(dropped.y_test)) == (17, 8, 8)
    kept = load_dataset(config(dirs, duplicates="keep"), 0, SOURCE)
    assert (len(kept.y_train), len(kept.y_val), len(kept.y_test)) == (17, 10, 9)
    assert len(kept.duplicates.across_splits()) == 3


def test_a_test_split_is_carved_out_per_class_and_seeded(tmp_path: Path) -> None:
    root = write_class_images(tmp_path / "data", {"a": 20, "b": 10})
    data = DataConfig(dir=root, val_split=0.2, test_split=0.3, image_size=8)
    first, again = load_dataset(data, 3, SOURCE), load_dataset(data, 3, SOURCE)
    assert np.bincount(first.y_test).tolist() == [6, 3]
    assert np.bincount(first.y_val).tolist() == [4, 2]
    assert first.paths["test"] == again.paths["test"]
    split = [set(first.paths[name]) for name in ("train", "val", "test")]
    assert not (split[0] & split[1] or split[0] & split[2] or split[1] & split[2])
    assert sum(len(s) for s in split) == 30


def _refused(tmp_path: Path, *args: str) -> None:
    done = run_cli("run", *args, "--results-dir", str(tmp_path / "results"))
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) <= 3
    assert not (tmp_path / "results").exists()
    return done.stderr


@pytest.mark.parametrize("data,expected", [
    ("{dir: DATA, val_split: 0.5, test_split: 0.5, image_size: 32}",
     "test_split + val_split must be below 1"),
    ("{dir: DATA, val_split: 0.2, test_split: 0.2, image_size: 32}",
     "too few to appear in every split"),
    ("{train_dir: DATA, val_dir: DATA, test_dir: OTHER, image_size: 32}",
     "data.test_dir: its classes"),
    ("{train_dir: DATA, val_dir: DATA, test_split: 0.2, image_size: 32}",
     "test_split only applies to dir"),
])
def test_bad_test_sets_are_refused_before_anything_exists(tmp_path: Path, data: str,
                                                          expected: str) -> None:
    root = write_class_images(tmp_path / "data", {"a": 6, "b": 2})
    other = write_class_images(tmp_path / "other", {"a": 2, "c": 2})
    space = write_yaml(tmp_path / "space.yaml", tiny_space(
        None, backbone="{choices: {MobileNetV2: {weights: none}}}"))
    text = tiny_sweep(root, space, data=data.replace("DATA", str(root)).replace("OTHER",
                                                                                str(other)))
    sweep = write_yaml(tmp_path / "sweep.yaml", text)
    stderr = _refused(tmp_path, str(sweep))
    assert expected in " ".join(stderr.split()), stderr
    assert "sweep.yaml" in stderr


def test_a_link_back_up_the_tree_is_no_class(tmp_path: Path) -> None:
    root = write_class_images(tmp_path / "data", {"a": 4, "b": 4})
    (root / "loop").symlink_to(root, target_is_directory=True)
    (root / "up").symlink_to(tmp_path, target_is_directory=True)
    data = load_dataset(DataConfig(dir=root, val_split=0.25, image_size=8), 0, SOURCE)
    assert data.class_names == ["a", "b"]
    reasons = {Path(s.path).name: s.reason for s in data.skipped}
    assert "link back up" in reasons["loop"] and "link back up" in reasons["up"]


def test_a_damaged_checkpoint_pointer_starts_the_trial_again(tmp_path: Path) -> None:
    from tlsweep.training import TrialCheckpoints
    from tlsweep.training._checkpoint import LATEST

    (tmp_path / LATEST).write_text("{not json")
    assert TrialCheckpoints(tmp_path).latest() is None
