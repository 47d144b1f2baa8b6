"""The embedded default sweep: real transfer, offline, in a few minutes on 2 CPU cores.

A small CNN is pretrained on scikit-learn's bundled digits 0-4 (seconds, cached) and saved as a
``.keras`` backbone; the sweep then fine-tunes it on digits 5-9, written out as an image folder so
the sweep runs through exactly the same data path as a user's own images.
"""

from __future__ import annotations

import shutil
from importlib import resources
from pathlib import Path

import numpy as np

from tlsweep.datasets import cache_root
from tlsweep.system import log_path, replacing, stderr_to_log

SIZE = 32
BACKBONE_FILE = "digits_cnn_0-4.keras"
DATA_DIR = "digits-5-9"


def workspace() -> Path:
    return cache_root() / "quickstart"


def _digit_images() -> tuple[np.ndarray, np.ndarray]:
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    small = (digits.images * (255.0 / 16.0)).astype(np.uint8)
    images = np.stack([np.asarray(Image.fromarray(im).resize((SIZE, SIZE),
                                                            Image.Resampling.BILINEAR))
                       for im in small])
    return images, digits.target.astype(np.int32)


def _write_transfer_folder(target: Path, images: np.ndarray, labels: np.ndarray) -> None:
    from PIL import Image

    staging = target.with_name(target.name + ".building")
    shutil.rmtree(staging, ignore_errors=True)
    for index, (image, label) in enumerate(zip(images, labels, strict=True)):
        folder = staging / f"digit_{label}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image, mode="L").save(folder / f"{index:04d}.png")  # grayscale on disk
    staging.rename(target)


def _pretrain_backbone(path: Path, images: np.ndarray, labels: np.ndarray) -> None:
    import keras

    keras.utils.set_random_seed(0)
    layers = keras.layers
    inputs = keras.Input((SIZE, SIZE, 3))
    x = inputs
    for filters, pool in ((32, True), (64, True), (128, False)):  # 32 -> 16 -> 8 px
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False)(x)
        # A short pretraining needs a faster BatchNorm average than Keras' 0.99, or the moving
        # statistics the fine-tuning relies on are still far from the data's.
        x = layers.BatchNormalization(momentum=0.9)(x)
        x = layers.ReLU()(x)
        x = layers.MaxPooling2D()(x) if pool else x
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dense(128, use_bias=False)(x)
    x = layers.ReLU()(layers.BatchNormalization(momentum=0.9)(x))
    backbone = keras.Model(inputs, x, name="digits_cnn")
    head = layers.Dense(5, activation="softmax")(layers.Dropout(0.3)(backbone.output))
    classifier = keras.Model(inputs, head)
    classifier.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    rgb = np.repeat(images[..., None], 3, axis=-1).astype(np.float32) / 255.0  # "unit"
    classifier.fit(rgb, labels, epochs=12, batch_size=32, verbose=0)
    backbone.save(path)


def prepare() -> Path:
    """Build the cached assets if needed; return the sweep file to run."""
    root = workspace()
    root.mkdir(parents=True, exist_ok=True)
    images, labels = None, None
    if not (root / DATA_DIR).is_dir() or not (root / BACKBONE_FILE).is_file():
        images, labels = _digit_images()
    if not (root / DATA_DIR).is_dir():
        _write_transfer_folder(root / DATA_DIR, images[labels >= 5], labels[labels >= 5])
    if not (root / BACKBONE_FILE).is_file():
        # TensorFlow's start-up lines go to a log beside the backbone they describe: the study's
        # folder does not exist yet (nothing of it is made before its checks), and the cache
        # keeps the log as long as the backbone, built once for every quickstart.
        with stderr_to_log(log_path(root), "quickstart pretraining"), \
                replacing(root / BACKBONE_FILE, suffix=".keras") as partial:
            _pretrain_backbone(partial, images[labels < 5], labels[labels < 5])
    assets = resources.files("tlsweep") / "assets"
    for name in ("quickstart.yaml", "quickstart_space.yaml"):
        (root / name).write_text(assets.joinpath(name).read_text(encoding="utf-8"))
    return root / "quickstart.yaml"
