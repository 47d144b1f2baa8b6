"""Image folders -> decoded, cached, split arrays -> augmented training batches.

Decoding (PIL) and caching need no TensorFlow; only the training batches import it, lazily.
Each image folder is decoded and resized once per image size and stored as ``.npy`` files that later
trials (and other processes) memory-map instead of decoding again.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tlsweep.config import DataConfig
from tlsweep.errors import DataError

if TYPE_CHECKING:
    import tensorflow as tf

CACHE_FORMAT = 1
# GIFs in image folders are almost always web placeholders ("image not found"), not samples.
SKIPPED_FORMATS = {"GIF": "GIF (usually a web placeholder); convert it to PNG or JPEG to use it"}


def cache_root() -> Path:
    return Path(os.environ.get("TLSWEEP_CACHE", Path.home() / ".cache" / "tlsweep"))


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


@dataclass
class Dataset:
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    class_names: list[str]
    skipped: list[Skipped]
    cache_dirs: list[Path] = field(default_factory=list)  # the decoded arrays, memory-mapped

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    def cache_size_mb(self) -> float:
        return sum(f.stat().st_size for d in self.cache_dirs for f in d.iterdir()) / 2**20


# ----------------------------------------------------------------------------- scanning
def _class_folders(root: Path, key: str, source: Path) -> tuple[list[Path], list[Skipped]]:
    if not root.is_dir():
        raise DataError(f"{source}: {key}: data directory {root} does not exist. Point {key} at "
                        f"a folder with one sub-folder of images per class.")
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    stray = [Skipped(str(p), "not inside a class folder") for p in sorted(root.iterdir())
             if p.is_file()]
    if not folders:
        raise DataError(f"{source}: {key}: {root} has no class sub-folders. Put each class's "
                        f"images in a sub-folder named after the class.")
    return folders, stray


def _scan(root: Path, key: str, source: Path) -> tuple[list[str], list[tuple[Path, int]],
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


# ----------------------------------------------------------------------------- decoding
def decode_image(path: Path, size: int) -> np.ndarray:
    """Decode one file to an RGB uint8 array of (size, size, 3); raises ValueError if unusable."""
    from PIL import Image, ImageOps

    with Image.open(path) as image:
        if image.format in SKIPPED_FORMATS:
            raise ValueError(SKIPPED_FORMATS[image.format])
        image.draft("RGB", (size, size))  # JPEG: decode at a reduced scale, much faster
        image = ImageOps.exif_transpose(image)
        if image.mode in ("RGBA", "LA", "P", "PA") or "transparency" in image.info:
            rgba = image.convert("RGBA")
            image = Image.new("RGB", rgba.size, (255, 255, 255))
            image.paste(rgba, mask=rgba.getchannel("A"))
        image = image.convert("RGB").resize((size, size), Image.Resampling.BILINEAR)
        return np.asarray(image, dtype=np.uint8)


def _decode_all(files: list[tuple[Path, int]], size: int) -> tuple[np.ndarray, np.ndarray,
                                                                   list[Skipped]]:
    images, labels, skipped = [], [], []
    for path, label in files:
        try:
            images.append(decode_image(path, size))
            labels.append(label)
        except Exception as exc:  # PIL raises many types for broken files
            reason = str(exc) if isinstance(exc, ValueError) and str(exc) else \
                f"cannot be decoded as an image ({type(exc).__name__})"
            skipped.append(Skipped(str(path), reason))
    x = np.stack(images) if images else np.zeros((0, size, size, 3), np.uint8)
    return x, np.asarray(labels, dtype=np.int32), skipped


def _remove_abandoned_builds(folder: Path) -> None:
    """Staging folders of builds whose process died (killed mid-decode, say)."""
    for staging in folder.glob(".building-*"):
        pid = int(staging.name.split("-")[1])
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            shutil.rmtree(staging, ignore_errors=True)
        except PermissionError:
            continue


def _build_cache(target: Path, files: list[tuple[Path, int]], size: int,
                 class_names: list[str], stray: list[Skipped]) -> None:
    """Decode into a staging folder, then rename it into place: readers never see half."""
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_abandoned_builds(target.parent)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".building-{os.getpid()}-"))
    x, y, skipped = _decode_all(files, size)
    images = FolderImages(x, y, class_names, stray + skipped)
    np.save(staging / "x.npy", images.x)
    np.save(staging / "y.npy", images.y)
    meta = {"class_names": images.class_names,
            "skipped": [[s.path, s.reason] for s in images.skipped]}
    (staging / "meta.json").write_text(json.dumps(meta))
    try:
        staging.rename(target)  # atomic: another process sees all of it or none
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)  # someone else finished first


def _read_cache(target: Path) -> FolderImages:
    meta = json.loads((target / "meta.json").read_text())
    return FolderImages(
        x=np.load(target / "x.npy", mmap_mode="r"),
        y=np.load(target / "y.npy"),
        class_names=meta["class_names"],
        skipped=[Skipped(p, r) for p, r in meta["skipped"]],
        cache_dir=target,
    )


def load_folder(root: Path, size: int, key: str, source: Path) -> FolderImages:
    """Decode ``root`` at ``size``, or reuse the cache when no file changed (size and mtime)."""
    class_names, files, stray = _scan(root, key, source)
    target = cache_root() / "datasets" / f"{root.name}-{size}px-{_fingerprint(root, files, size)}"
    if not (target / "meta.json").is_file():
        _build_cache(target, files, size, class_names, stray)
    images = _read_cache(target)
    counts = np.bincount(images.y, minlength=len(class_names))
    for name, count in zip(class_names, counts, strict=True):
        if count == 0:
            raise DataError(f"{source}: {key}: class folder {root / name} has no decodable "
                            f"images. Add images to it or remove the folder.")
    return images


# ----------------------------------------------------------------------------- splitting
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


def check_layout(data: DataConfig, source: Path) -> None:
    """The folder checks that need no decoding: folders exist, classes are present and match."""
    if data.dir is not None:
        _scan(data.dir, "data.dir", source)
        return
    assert data.train_dir is not None and data.val_dir is not None
    train_classes = _scan(data.train_dir, "data.train_dir", source)[0]
    val_classes = _scan(data.val_dir, "data.val_dir", source)[0]
    if train_classes != val_classes:
        raise DataError(f"{source}: data.val_dir: its classes {val_classes} differ from "
                        f"data.train_dir's {train_classes}. Give both the same class folders.")


def load_dataset(data: DataConfig, seed: int, source: Path) -> Dataset:
    if data.dir is not None:
        images = load_folder(data.dir, data.image_size, "data.dir", source)
        train, val = stratified_split(images.y, data.split, seed)
        return Dataset(images.x[train], images.y[train], images.x[val], images.y[val],
                       images.class_names, images.skipped, [images.cache_dir])
    assert data.train_dir is not None and data.val_dir is not None
    tr = load_folder(data.train_dir, data.image_size, "data.train_dir", source)
    va = load_folder(data.val_dir, data.image_size, "data.val_dir", source)
    if tr.class_names != va.class_names:
        raise DataError(f"{source}: data.val_dir: its classes {va.class_names} differ from "
                        f"data.train_dir's {tr.class_names}. Give both the same class folders.")
    return Dataset(np.asarray(tr.x), tr.y, np.asarray(va.x), va.y, tr.class_names,
                   tr.skipped + va.skipped, [tr.cache_dir, va.cache_dir])


# ----------------------------------------------------------------------------- class weights
def class_weights(y: np.ndarray, n_classes: int, mode: str) -> dict[int, float] | None:
    """``balanced``: n / (k * n_c); ``sqrt``: its square root; ``none``: no weighting."""
    if mode == "none":
        return None
    counts = np.bincount(y, minlength=n_classes).astype(float)
    balanced = len(y) / (n_classes * np.maximum(counts, 1.0))
    weights = np.sqrt(balanced) if mode == "sqrt" else balanced
    return {i: float(w) for i, w in enumerate(weights)}


# ----------------------------------------------------------------------------- batches (TF)
Preprocess = Callable[[Any], Any]


class TrainingBatches:
    """One training set's batches for any trial: shuffled per epoch, augmented (image sets only)
    at the trial's strength, preprocessed for the backbone, with the trial's class weights.

    The batches are made inside the train step (``steps.BatchesInStep``), not by a tf.data
    pipeline: each ``fit`` made a pipeline iterator, instantiating its functions and waiting for
    its first batch, 30-70 ms a fit with augmentation on the quickstart. Keras
    iterates a dummy dataset instead (``steps``), and the step reads the trial's seed,
    strength, first epoch and class weights from variables, so one traced train function serves
    every trial of a worker. Every shuffle and draw is keyed by (seed, epoch, batch): epoch e of
    a trial is the same batches however it is reached."""

    def __init__(self, x: np.ndarray, y: np.ndarray, batch_size: int,
                 preprocess: Preprocess, images: bool = True) -> None:
        import tensorflow as tf

        self.x, self.y = tf.constant(x), tf.constant(y)
        self.n_images, self.batch_size = len(y), batch_size
        self.preprocess, self.images = preprocess, images
        variable = lambda value, dtype: tf.Variable(value, dtype=dtype,  # noqa: E731
                                                    trainable=False)
        self.seed, self.first_epoch = variable(0, tf.int64), variable(0, tf.int64)
        self.taken = variable(0, tf.int64)  # batches made since ``start``
        self.strength = variable(0.0, tf.float32)
        self.n_classes = int(np.max(y)) + 1 if len(y) else 1
        self.weights = variable(np.ones(self.n_classes, np.float32), tf.float32)
        self._steps: tf.data.Dataset | None = None
        self._make_batch: Any = None

    @property
    def steps_per_epoch(self) -> int:
        return -(-self.n_images // self.batch_size)  # the last batch may be short

    def start(self, strength: float, seed: int, first_epoch: int = 0,
              class_weights: dict[int, float] | None = None) -> None:
        """The next batch is the first of ``first_epoch`` for this trial."""
        self.seed.assign(seed)
        self.first_epoch.assign(first_epoch)
        self.taken.assign(0)
        self.strength.assign(strength if self.images else 0.0)
        weights = class_weights or {}
        self.weights.assign(np.array([weights.get(c, 1.0) for c in range(self.n_classes)],
                                     np.float32))

    def example(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """A batch's shapes and dtypes (zeros), to build a model's training state ahead."""
        return (np.zeros((self.batch_size, *self.x.shape[1:]), np.float32),
                np.zeros(self.batch_size, self.y.dtype.as_numpy_dtype),
                np.zeros(self.batch_size, np.float32))

    def steps(self) -> tf.data.Dataset:
        """What ``fit`` iterates: one placeholder element per step (cheap to make an iterator
        of); the train step ignores it and calls ``next_batch``."""
        import tensorflow as tf

        if self._steps is None:
            # Without the autotuner: its thread makes about one fit in three wait 0.2-1 s at
            # its end while it stops (measured), and there is nothing here to tune.
            options = tf.data.Options()
            options.autotune.enabled = False
            self._steps = (tf.data.Dataset.from_tensors(tf.constant(0, tf.int64)).repeat()
                           .with_options(options))
        return self._steps

    def next_batch(self) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        """(inputs, labels, sample weights) of the next batch; in a graph or eagerly.

        One function, traced once per training set and called by every training model's step:
        traced into each of them, it made each new model's trace slower (measured in
        benchmarks/overhead.py)."""
        import tensorflow as tf

        if self._make_batch is None:
            self._make_batch = tf.function(self._next_batch)
        return self._make_batch()

    def _next_batch(self) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        import tensorflow as tf

        from tlsweep.augment import augment

        taken = self.taken.assign_add(1) - 1
        n_batches = self.steps_per_epoch
        epoch, batch = self.first_epoch + taken // n_batches, taken % n_batches
        order = tf.random.experimental.stateless_shuffle(
            tf.range(self.n_images, dtype=tf.int64), tf.stack([self.seed, epoch]))
        indices = order[batch * self.batch_size:(batch + 1) * self.batch_size]
        inputs = tf.cast(tf.gather(self.x, indices), tf.float32)
        if self.images:
            draw_seed = tf.random.experimental.stateless_fold_in(tf.stack([self.seed, epoch]),
                                                                 batch)
            inputs = tf.cond(self.strength > 0.0,
                             lambda: augment(inputs, self.strength, draw_seed),
                             lambda: inputs)
        labels = tf.gather(self.y, indices)
        return self.preprocess(inputs), labels, tf.gather(self.weights, labels)


def eval_inputs(x: np.ndarray, preprocess: Preprocess) -> np.ndarray:
    """Validation (and evaluation) inputs: preprocessed, never augmented."""
    return np.asarray(preprocess(np.asarray(x, dtype=np.float32)))
