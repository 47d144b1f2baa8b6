"""Image folders -> decoded arrays, cached: each folder is decoded and resized once per image
size (Pillow, never TensorFlow) and stored as ``.npy`` files that later trials and other
processes memory-map instead of decoding again. Messy files are skipped, each with its reason.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tlsweep.errors import DataError
from tlsweep.system import environment, process_alive

# 2: the decoded images' paths are kept (duplicate reports); 3: relative paths; 4: JPEGs
# decoded whole (no draft), as the exported model sees them.
CACHE_FORMAT = 4
# GIFs in image folders are almost always web placeholders ("image not found"), not samples.
SKIPPED_FORMATS = {"GIF": "GIF (usually a web placeholder); convert it to PNG or JPEG to use it"}


def cache_root() -> Path:
    return Path(os.environ.get(environment.CACHE, Path.home() / ".cache" / "tlsweep"))


@dataclass(frozen=True)
class Skipped:
    path: str
    reason: str


@dataclass
class FolderImages:
    """Every decodable image of one class-per-folder directory, at one size."""

    x: np.ndarray  # uint8, (n, size, size, 3)
    y: np.ndarray  # int32 class index
    class_names: list[str]
    skipped: list[Skipped] = field(default_factory=list)
    cache_dir: Path | None = None
    paths: list[str] = field(default_factory=list)  # of each decoded image, in order


def _class_folders(root: Path, key: str, source: Path) -> tuple[list[Path], list[Skipped]]:
    if not root.is_dir():
        raise DataError(f"{source}: {key}: data directory {root} does not exist. Point {key} at "
                        f"a folder with one sub-folder of images per class.")
    entries = sorted(root.iterdir())
    # A link to the folder itself or above it would be read as one more class, of every image.
    loops = [p for p in entries if p.is_symlink() and p.is_dir()
             and (p.resolve() == root.resolve() or p.resolve() in root.resolve().parents)]
    folders = [p for p in entries if p.is_dir() and not p.name.startswith(".") and p not in loops]
    stray = [Skipped(str(p), "not inside a class folder") for p in entries if p.is_file()]
    stray += [Skipped(str(p), "a link back up the data folder's tree, not a class") for p in loops]
    if not folders:
        raise DataError(f"{source}: {key}: {root} has no class sub-folders. Put each class's "
                        f"images in a sub-folder named after the class.")
    return folders, stray


def scan_classes(root: Path, key: str, source: Path) -> tuple[list[str], list[tuple[Path, int]],
                                                       list[Skipped]]:
    folders, skipped = _class_folders(root, key, source)
    files: list[tuple[Path, int]] = []
    for label, folder in enumerate(folders):
        entries = sorted(p for p in folder.rglob("*") if p.is_file())
        if not entries:
            raise DataError(f"{source}: {key}: class folder {folder} is empty. Add images to it "
                            f"or remove the folder.")
        files += [(p, label) for p in entries]
    if len(folders) < 2:
        raise DataError(f"{source}: {key}: {root} has a single class ({folders[0].name}); a "
                        f"classifier needs at least two class sub-folders.")
    return [f.name for f in folders], files, skipped


def _fingerprint(root: Path, files: list[tuple[Path, int]], size: int) -> str:
    digest = hashlib.sha256(f"{CACHE_FORMAT}:{size}".encode())
    for path, label in files:
        stat = path.stat()
        digest.update(f"{path.relative_to(root)}:{label}:{stat.st_size}:{stat.st_mtime_ns}\n"
                      .encode())
    return digest.hexdigest()[:20]


def decode_image(path: Path, size: int) -> np.ndarray:
    """Decode one file to an RGB uint8 array of (size, size, 3); raises ValueError if unusable."""
    from PIL import Image, ImageOps

    with Image.open(path) as image:
        if image.format in SKIPPED_FORMATS:
            raise ValueError(SKIPPED_FORMATS[image.format])
        # Decoded whole, never with JPEG's draft (a reduced-scale decode): the exported model
        # resizes a raw image as PIL does here, and only a full decode gives it the same pixels
        # (one pixel path, issue 38). Each image is decoded once into the cache.
        image = ImageOps.exif_transpose(image)
        if image.mode in ("RGBA", "LA", "P", "PA") or "transparency" in image.info:
            rgba = image.convert("RGBA")
            image = Image.new("RGB", rgba.size, (255, 255, 255))
            image.paste(rgba, mask=rgba.getchannel("A"))
        image = image.convert("RGB").resize((size, size), Image.Resampling.BILINEAR)
        return np.asarray(image, dtype=np.uint8)


def decode_or_skip(path: Path, size: int) -> np.ndarray | Skipped:
    """The decoded image, or why the file was skipped."""
    try:
        return decode_image(path, size)
    except Exception as exc:  # PIL raises many types for broken files
        reason = str(exc) if isinstance(exc, ValueError) and str(exc) else \
            f"cannot be decoded as an image ({type(exc).__name__})"
        return Skipped(str(path), reason)


def _decode_all(files: list[tuple[Path, int]], size: int) -> tuple[np.ndarray, np.ndarray,
                                                                   list[Skipped], list[str]]:
    images, labels, skipped, decoded = [], [], [], []
    for path, label in files:
        image = decode_or_skip(path, size)
        if isinstance(image, Skipped):
            skipped.append(image)
            continue
        images.append(image)
        labels.append(label)
        decoded.append(str(path))
    x = np.stack(images) if images else np.zeros((0, size, size, 3), np.uint8)
    return x, np.asarray(labels, dtype=np.int32), skipped, decoded


def _remove_abandoned_builds(folder: Path) -> None:
    """Staging folders of builds whose process died (killed mid-decode, say)."""
    for staging in folder.glob(".building-*"):
        if not process_alive(int(staging.name.split("-")[1])):
            shutil.rmtree(staging, ignore_errors=True)


def _build_cache(target: Path, root: Path, files: list[tuple[Path, int]], size: int,
                 class_names: list[str], stray: list[Skipped]) -> None:
    """Decode into a staging folder, then rename it into place: readers never see half."""
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_abandoned_builds(target.parent)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".building-{os.getpid()}-"))
    x, y, skipped, decoded = _decode_all(files, size)
    images = FolderImages(x, y, class_names, stray + skipped, paths=decoded)
    np.save(staging / "x.npy", images.x)
    np.save(staging / "y.npy", images.y)
    # Relative to the folder: another folder with the same files (a copy, the same links) has
    # the same fingerprint and shares this cache, and must not be handed the first one's paths.
    meta = {"class_names": images.class_names,
            "paths": [os.path.relpath(p, root) for p in images.paths],
            "skipped": [[os.path.relpath(s.path, root), s.reason] for s in images.skipped]}
    (staging / "meta.json").write_text(json.dumps(meta))
    try:
        staging.rename(target)  # atomic: another process sees all of it or none
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)  # someone else finished first


def _read_cache(target: Path, root: Path) -> FolderImages:
    meta = json.loads((target / "meta.json").read_text())
    return FolderImages(
        x=np.load(target / "x.npy", mmap_mode="r"),
        y=np.load(target / "y.npy"),
        class_names=meta["class_names"],
        skipped=[Skipped(str(root / p), r) for p, r in meta["skipped"]],
        cache_dir=target,
        paths=[str(root / p) for p in meta["paths"]],
    )


def load_folder(root: Path, size: int, key: str, source: Path) -> FolderImages:
    """Decode ``root`` at ``size``, or reuse the cache when no file changed (size and mtime)."""
    class_names, files, stray = scan_classes(root, key, source)
    target = cache_root() / "datasets" / f"{root.name}-{size}px-{_fingerprint(root, files, size)}"
    if not (target / "meta.json").is_file():
        _build_cache(target, root, files, size, class_names, stray)
    images = _read_cache(target, root)
    counts = np.bincount(images.y, minlength=len(class_names))
    for name, count in zip(class_names, counts, strict=True):
        if count == 0:
            raise DataError(f"{source}: {key}: class folder {root / name} has no decodable "
                            f"images. Add images to it or remove the folder.")
    return images
