from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import write_class_images
from tlsweep.config import DataConfig
from tlsweep.datasets import class_weights, load_dataset, load_folder
from tlsweep.datasets._data import stratified_split
from tlsweep.errors import DataError

SOURCE = Path("sweep.yaml")


def messy_folder(root: Path) -> Path:
    """Real-world mess: a placeholder GIF, a .DS_Store, text, and every colour mode."""
    write_class_images(root, {"a": 6, "b": 6})
    folder = root / "a"
    Image.new("P", (20, 20)).save(folder / "placeholder.gif")
    (folder / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1" + bytes(100))
    (folder / "notes.txt").write_text("not an image")
    (folder / "truncated.jpg").write_bytes(b"\xff\xd8\xff\xe0" + bytes(20))
    Image.new("L", (30, 20), 128).save(folder / "gray.jpg")
    Image.new("CMYK", (20, 30), (0, 255, 255, 0)).save(folder / "cmyk.jpg")
    Image.new("RGBA", (20, 20), (255, 0, 0, 0)).save(folder / "transparent.png")
    palette = Image.new("P", (20, 20))
    palette.putpalette([0, 0, 255] * 256)
    palette.save(folder / "palette.png")
    (root / ".DS_Store").write_bytes(bytes(10))
    return root


def test_messy_folder_decodes_to_rgb_and_lists_skipped_once(tmp_path: Path) -> None:
    root = messy_folder(tmp_path / "messy")
    images = load_folder(root, 12, "data.dir", SOURCE)
    assert images.x.shape == (16, 12, 12, 3) and images.x.dtype == np.uint8
    assert images.class_names == ["a", "b"]
    skipped = {Path(s.path).name: s.reason for s in images.skipped}
    assert set(skipped) == {"placeholder.gif", ".DS_Store", "notes.txt", "truncated.jpg"}
    assert len(images.skipped) == 5  # .DS_Store twice: once in a class, once at the top
    assert "GIF" in skipped["placeholder.gif"]
    top_level = next(s for s in images.skipped if s.path == str(root / ".DS_Store"))
    assert top_level.reason == "not inside a class folder"


def test_colour_modes_become_rgb(tmp_path: Path) -> None:
    from tlsweep.datasets import decode_image

    Image.new("CMYK", (8, 8), (0, 255, 255, 0)).save(tmp_path / "cmyk.jpg")
    Image.new("RGBA", (8, 8), (255, 0, 0, 0)).save(tmp_path / "clear.png")
    Image.new("L", (8, 8), 77).save(tmp_path / "gray.png")
    red = decode_image(tmp_path / "cmyk.jpg", 4)
    assert red.shape == (4, 4, 3) and red[..., 0].mean() > 200 and red[..., 1].mean() < 60
    # Fully transparent pixels are composited on white, not left as black.
    assert (decode_image(tmp_path / "clear.png", 4) == 255).all()
    gray = decode_image(tmp_path / "gray.png", 4)
    assert (gray == 77).all()


def test_cache_is_reused_then_invalidated_by_a_changed_file(tmp_path: Path) -> None:
    root = write_class_images(tmp_path / "d", {"a": 4, "b": 4})
    first = load_folder(root, 8, "data.dir", SOURCE)
    second = load_folder(root, 8, "data.dir", SOURCE)
    assert first.cache_dir == second.cache_dir and isinstance(second.x, np.memmap)
    assert load_folder(root, 10, "data.dir", SOURCE).cache_dir != first.cache_dir
    changed = root / "a" / "a_000.png"
    Image.new("RGB", (16, 16), (0, 0, 0)).save(changed)
    os.utime(changed, ns=(1, 1))
    third = load_folder(root, 8, "data.dir", SOURCE)
    assert third.cache_dir != first.cache_dir
    assert not np.array_equal(third.x, first.x)


def test_stratified_split_is_seeded_and_keeps_class_ratios() -> None:
    y = np.array([0] * 80 + [1] * 20)
    train, val = stratified_split(y, 0.25, seed=3)
    again, _ = stratified_split(y, 0.25, seed=3)
    other, _ = stratified_split(y, 0.25, seed=4)
    assert np.array_equal(train, again) and not np.array_equal(train, other)
    assert np.bincount(y[val]).tolist() == [20, 5]
    assert len(set(train) & set(val)) == 0 and len(train) + len(val) == 100


def test_split_layout_and_explicit_layout(tmp_path: Path) -> None:
    write_class_images(tmp_path / "all", {"a": 10, "b": 10})
    split = load_dataset(DataConfig(dir=tmp_path / "all", val_split=0.2, image_size=8), 0, SOURCE)
    assert len(split.y_val) == 4 and len(split.y_train) == 16
    write_class_images(tmp_path / "train", {"a": 5, "b": 5})
    write_class_images(tmp_path / "val", {"a": 2, "b": 3}, seed=1)
    explicit = load_dataset(DataConfig(train_dir=tmp_path / "train", val_dir=tmp_path / "val",
                                       image_size=8), 0, SOURCE)
    assert np.bincount(explicit.y_val).tolist() == [2, 3]


@pytest.mark.parametrize("layout, expected", [
    ("missing", "does not exist"),
    ("empty_class", "is empty"),
    ("single_class", "single class"),
    ("undecodable_class", "no decodable images"),
    ("mismatched", "differ from data.train_dir"),
])
def test_data_errors_name_the_key_and_fix(tmp_path: Path, layout: str, expected: str) -> None:
    root = tmp_path / "data"
    config = DataConfig(dir=root, val_split=0.2, image_size=8)
    if layout == "empty_class":
        write_class_images(root, {"a": 3})
        (root / "b").mkdir()
    elif layout == "single_class":
        write_class_images(root, {"a": 3})
    elif layout == "undecodable_class":
        write_class_images(root, {"a": 3})
        (root / "b").mkdir()
        (root / "b" / "x.jpg").write_text("nope")
    elif layout == "mismatched":
        write_class_images(tmp_path / "t", {"a": 3, "b": 3})
        write_class_images(tmp_path / "v", {"a": 3, "c": 3})
        config = DataConfig(train_dir=tmp_path / "t", val_dir=tmp_path / "v", image_size=8)
    with pytest.raises(DataError) as caught:
        load_dataset(config, 0, SOURCE)
    message = str(caught.value)
    assert expected in message and "sweep.yaml" in message and "data." in message


def test_class_weights_for_each_mode() -> None:
    y = np.array([0] * 60 + [1] * 30 + [2] * 10)
    assert class_weights(y, 3, "none") is None
    balanced = class_weights(y, 3, "balanced")
    assert balanced == pytest.approx({0: 100 / 180, 1: 100 / 90, 2: 100 / 30})
    sqrt = class_weights(y, 3, "sqrt")
    assert sqrt == pytest.approx({k: v**0.5 for k, v in balanced.items()})
    # Balanced weights make every class carry the same total weight.
    totals = [balanced[c] * n for c, n in enumerate(np.bincount(y))]
    assert totals == pytest.approx([totals[0]] * 3)


def test_a_copy_of_a_folder_shares_the_cache_but_gets_its_own_paths(tmp_path: Path) -> None:
    """Same files, same fingerprint, one cache: the paths (and skips) it hands back are the
    folder's own, so the first folder can go away (the duplicate check reads the files)."""
    import shutil

    first = messy_folder(tmp_path / "first" / "data")
    cached = load_folder(first, 12, "data.dir", SOURCE)
    second = tmp_path / "second" / "data"
    shutil.copytree(first, second)  # copy2: sizes and modification times kept
    shutil.rmtree(first)
    again = load_folder(second, 12, "data.dir", SOURCE)
    assert again.cache_dir == cached.cache_dir  # shared, not decoded again
    assert again.paths and all(Path(p).is_file() and p.startswith(str(second))
                               for p in again.paths)
    assert {s.path for s in again.skipped} == {
        s.path.replace(str(first), str(second)) for s in cached.skipped}
    config = DataConfig(dir=second, val_split=0.3, image_size=12)
    assert len(load_dataset(config, 0, SOURCE).paths["val"]) > 0
