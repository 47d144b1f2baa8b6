"""What ``tlsweep init`` reads: an image folder's layout, classes and images (decoded as the run
decodes them, small), and the machine: its cores, a GPU, and which backbones' weights exist.
Pillow and NumPy only, never TensorFlow."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property
from importlib import metadata
from pathlib import Path

import numpy as np
from PIL import Image

from tlsweep.datasets import Skipped, decode_or_skip, scan_classes
from tlsweep.errors import ConfigError, DataError
from tlsweep.system import usable_cores
from tlsweep.training import backbones as bb

SOURCE = Path("tlsweep init")
VAL_NAMES = ("val", "valid", "validation")
DECODE_PX = 64  # duplicates are judged on 32 px thumbnails: a finer decode only costs time
FULL_SCAN_FILES = 20_000  # above this a sample is read: the all-pairs duplicate search is O(n^2)
CPU_BACKBONES = ("MobileNetV2", "MobileNetV3Small", "EfficientNetB0")
GPU_BACKBONES = ("MobileNetV2", "EfficientNetB0", "EfficientNetV2B0", "ResNet50V2")


@dataclass
class Folder:
    """One folder of class folders as the run reads it: its decodable images, in order."""

    root: Path
    classes: list[str]
    labels: list[int] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    images: list[np.ndarray] = field(default_factory=list)
    short_sides: list[int] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    sampled: bool = False

    @property
    def counts(self) -> list[int]:
        return np.bincount(self.labels, minlength=len(self.classes)).tolist()

    @cached_property
    def array(self) -> np.ndarray:
        return np.stack(self.images)

    def part(self, index: np.ndarray | None = None) -> tuple[list[str], np.ndarray, np.ndarray]:
        index = np.arange(len(self.labels)) if index is None else index
        return [self.paths[i] for i in index], self.array[index], np.asarray(self.labels)[index]


# ----------------------------------------------------------------------------- reading the data
def find_layout(data_dir: Path) -> dict[str, Path]:
    """{"dir": ...} or {"train": ..., "val": ...}, and "test" where there is one. A train
    folder without a validation folder is split like a class-per-folder one."""
    hint = "a folder with one sub-folder of images per class, or with train/ and val/ folders"
    if not data_dir.is_dir():
        what = "is a file, not a folder" if data_dir.exists() else "does not exist"
        raise DataError(f"DATA_DIR: {data_dir} {what}. Give {hint}.")
    folders = {p.name.lower(): p for p in sorted(data_dir.iterdir())
               if p.is_dir() and not p.name.startswith(".")}
    if "train" not in folders:
        return {"dir": data_dir}
    others = [p.name for n, p in folders.items() if n not in ("train", "test", *VAL_NAMES)]
    vals = [p for n, p in folders.items() if n in VAL_NAMES]
    if others or len(vals) > 1:
        raise DataError(f"DATA_DIR: {data_dir} holds a train folder beside "
                        f"{', '.join(others or [p.name for p in vals])}. Keep only train, one of "
                        f"val, valid or validation, and test there, or give {hint}.")
    layout = {"train": folders["train"], "val": vals[0]} if vals else {"dir": folders["train"]}
    return layout | ({"test": folders["test"]} if "test" in folders else {})


def _read(folder: Folder, path: Path, label: int) -> None:
    pixels = decode_or_skip(path, DECODE_PX)  # the run's notion of usable: GIFs are skipped
    if isinstance(pixels, Skipped):
        folder.skipped.append((pixels.path, pixels.reason))
        return
    with Image.open(path) as image:  # the header only
        short = min(image.size)
    folder.labels.append(label)
    folder.paths.append(str(path))
    folder.images.append(pixels)
    folder.short_sides.append(short)


def read_folder(root: Path, key: str, found: list[str]) -> Folder:
    classes, files, stray = scan_classes(root, key, SOURCE)
    folder = Folder(root, classes, skipped=[(s.path, s.reason) for s in stray])
    if len(files) > FULL_SCAN_FILES:  # every k-th file: each class keeps its share
        files, folder.sampled = files[::math.ceil(len(files) / FULL_SCAN_FILES)], True
        found.append(f"{root}: over {FULL_SCAN_FILES} files, so a sample was read: counts, "
                     f"skipped files and duplicates are estimates")
    for path, label in files:
        _read(folder, path, label)
    counts = folder.counts
    if 0 in counts and not folder.sampled:
        raise DataError(f"{SOURCE}: {key}: class folder {root / classes[counts.index(0)]} has "
                        f"no decodable images. Add images to it or remove the folder.")
    pairs = ", ".join(f"{c} {n}" for c, n in zip(classes, counts, strict=True))
    found.append(f"{root}: {len(classes)} classes, {sum(counts)} images ({pairs}; max/min "
                 f"{max(counts) / max(1, min(counts)):.2f})")
    found += [f"skipped (so will the run be): {p}: {r}" for p, r in folder.skipped[:3]]
    found += [f"... and {len(folder.skipped) - 3} more skipped"] if folder.skipped[3:] else []
    return folder


def read_layout(data_dir: Path, layout: dict[str, Path], found: list[str]) -> dict[str, Folder]:
    folders = {role: read_folder(path, "DATA_DIR" if path == data_dir else
                                 f"DATA_DIR/{path.relative_to(data_dir)}", found)
               for role, path in layout.items()}
    first = folders.get("dir") or folders["train"]
    for folder in folders.values():
        if folder.classes != first.classes:
            raise DataError(f"DATA_DIR: the classes of {folder.root} ({folder.classes}) differ "
                            f"from those of {first.root} ({first.classes}). Give every split "
                            f"the same class folders.")
    return folders


# ----------------------------------------------------------------------------- the machine
def machine() -> tuple[int, bool]:
    """(CPU cores this process may use, whether TensorFlow here can use an NVIDIA GPU)."""
    cores = usable_cores()
    try:
        metadata.distribution("tensorflow-cpu")
        return cores, False
    except metadata.PackageNotFoundError:
        return cores, Path("/dev/nvidiactl").exists()


def available_backbones(local: dict[str, Path], gpu: bool) -> tuple[dict[str, str], str]:
    """{name: weights} that the run can load, and where they come from."""
    if local:
        return {n: str(p) for n, p in local.items()}, "local weights given with --weights"
    wanted = GPU_BACKBONES if gpu else CPU_BACKBONES
    cached = [n for n in wanted if bb._imagenet_cached(bb.REGISTRY[n])]
    if len(cached) < len(wanted) and bb._network_reachable():
        return dict.fromkeys(wanted, "imagenet"), "imagenet weights, which Keras downloads"
    if cached:
        return dict.fromkeys(cached, "imagenet"), \
            f"imagenet weights in the Keras cache ({bb.keras_cache_dir()})"
    raise ConfigError(
        f"no backbone weights are available: imagenet weights for {', '.join(wanted)} are not "
        f"in the Keras cache ({bb.keras_cache_dir()}) and the network is unreachable (or "
        f"TLSWEEP_OFFLINE is set). Point init at a local file with --weights "
        f"MobileNetV2=path/to/mobilenet_v2_1.0_notop.weights.h5 (or another registered "
        f"backbone: {', '.join(bb.REGISTRY)}).")


# ----------------------------------------------------------------------------- weights files
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"  # at byte 0 of every file Keras saves weights to


def weights_problem(path: Path) -> str | None:
    """Why ``run``'s pre-flight would refuse this weights file, where that shows without
    TensorFlow; None when it looks like weights. Without this, init wrote files it said run as
    written, and run refused them (issue 38). Whether the weights fit the architecture is
    left to run's pre-flight, which needs TensorFlow."""
    with path.open("rb") as handle:
        if handle.read(len(HDF5_SIGNATURE)) != HDF5_SIGNATURE:
            return "is not an HDF5 file (it lacks the HDF5 signature at its start)"
    try:
        import h5py  # installed with TensorFlow, but imports without it
    except ImportError:
        return None
    try:
        # HDF5 compares the file's size with the end it recorded: a truncated file fails here.
        with h5py.File(path, "r") as weights:
            groups = list(weights.keys())
            weights.visit(lambda name: None)  # every object header is read
    except (OSError, RuntimeError, KeyError, ValueError) as exc:
        cause = (str(exc).strip().splitlines() or ["no message"])[0][:200]
        return f"cannot be read as HDF5 ({cause}): truncated or damaged"
    return None if groups else "holds no weights (an empty HDF5 file)"

