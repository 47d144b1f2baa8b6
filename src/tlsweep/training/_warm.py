"""Warm models: what a worker keeps from one trial to the next, and the frozen-feature cache.

Tracing a train function costs more than several epochs (DESIGN §6: 24 s for an unfrozen
MobileNetV2 against 1-3 s an epoch), and every ``compile()`` throws the trace away. So a worker
keeps one built classifier per backbone structure, and one compiled training model per phase:
the head, the head on cached features, and fine-tuning per unfrozen-block count. All of them share
the classifier's layers. A trial starts by resetting what it could inherit: the backbone weights
go back to their loaded values, the head is initialised from the trial's seed, the optimiser state
is zeroed and given the trial's learning rate, and every dropout seed is set from the trial's seed.
A cold worker does the same reset on a model it has just built, so that a trial gives the same
curve on a cold worker as on a warm one.

Frozen features. In phase 1 with augmentation strength 0, the pretrained backbone runs in
inference mode on the same images every epoch and in every trial, so its pooled output is
computed once per (images, backbone, image size), kept on disk, and the head trains on it alone.
With augmentation, each epoch sees new pixels and the backbone must see them too; what could still
be cached is the decoding (done: datasets/_data.py) and, at best, features of a finite set of
pre-augmented copies, which changes the recipe and is not done.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tlsweep.datasets import cache_root
from tlsweep.system import replacing
from tlsweep.training._batches import Preprocess, TrainingBatches, eval_inputs
from tlsweep.training.backbones import Backbone


class ArrayMemo:
    """Values made from an array, remembered by the array's identity and a key: a worker's
    dataset lives as long as the worker. The array is held too, so its id cannot pass to
    another. ``keep=False`` remembers nothing (a cold worker's behaviour)."""

    def __init__(self, keep: bool = True) -> None:
        self.keep = keep
        self.kept: dict[tuple[Any, ...], tuple[np.ndarray, Any]] = {}

    def get(self, x: np.ndarray, key: tuple[Any, ...], make: Callable[[], Any]) -> Any:
        kept = self.kept.get((id(x), *key))
        if kept is not None and kept[0] is x:
            return kept[1]
        value = make()
        if self.keep:
            self.kept[(id(x), *key)] = (x, value)
        return value


@dataclass(frozen=True)
class Structure:
    """What must match for two trials to share a model."""

    backbone: Backbone
    image_size: int
    n_classes: int
    dropout: float


def _seed_generators(model: Any) -> list[Any]:
    return [generator for layer in model._flatten_layers(include_self=True)
            for generator in getattr(layer, "_seed_generators", [])]


def reset_optimizer(model: Any, learning_rate: float) -> None:
    """A compiled model's optimiser as if new: zero state and step, the given rate."""
    optimizer = model.optimizer
    for variable in optimizer.variables:
        variable.assign(np.zeros(variable.shape, dtype=variable.dtype))
    optimizer.learning_rate = learning_rate


class WarmModels:
    """One classifier structure, built once, with its compiled training models."""

    def __init__(self, structure: Structure) -> None:
        from tlsweep.training._classifier import build_classifier

        self.structure = structure
        self.model, self.base = build_classifier(structure.backbone, structure.image_size,
                                                 structure.n_classes, structure.dropout)
        import tensorflow as tf

        # Held as tensors where the variables live: a reset copies them device-side, without
        # converting from NumPy (half the cost of set_weights, measured on the quickstart).
        self.loaded = [tf.identity(variable.value) for variable in self.base.weights]
        self.training: dict[Any, Any] = {}
        self._extractor: Any = None
        self.features = ArrayMemo()  # pooled backbone output, by image array

    def reset(self, seed: int) -> None:
        import keras

        for variable, value in zip(self.base.weights, self.loaded, strict=True):
            variable.assign(value)
        head = self.model.get_layer("head")
        kernel, bias = head.kernel, head.bias
        kernel.assign(keras.initializers.GlorotUniform(seed=seed)(kernel.shape))
        bias.assign(np.zeros(bias.shape, dtype=bias.dtype))
        for index, generator in enumerate(_seed_generators(self.model)):
            generator.state.assign(np.array([seed * 1009 + index, 0], dtype=generator.state.dtype))

    # ------------------------------------------------------------------ per-phase models
    def compiled(self, key: Any, make: Callable[[TrainingBatches], Any], batches: TrainingBatches,
                 learning_rate: float, jit_compile: bool = False) -> tuple[Any, bool]:
        """(training model for ``key`` on ``_batches``, whether its train function is already
        traced). The batches are part of the key: the train function makes them."""
        from tlsweep.training._classifier import build_training_state, compile_for

        if (key, batches) not in self.training:
            model = make(batches)
            compile_for(model, learning_rate, jit_compile)
            build_training_state(model, batches.example())
            self.training[(key, batches)] = model
            return model, False
        model = self.training[(key, batches)]
        reset_optimizer(model, learning_rate)
        return model, model.train_function is not None  # compile() would have dropped it

    def share_layers(self, batches: TrainingBatches) -> Any:
        from tlsweep.training._batches_in_step import BatchesInStep

        return BatchesInStep(self.model.inputs, self.model.outputs, batches, self.model.name)

    def features_head(self, batches: TrainingBatches) -> Any:
        """The head alone, on pooled backbone features: the same layer objects."""
        import keras

        from tlsweep.training._batches_in_step import BatchesInStep

        pooled = self.model.get_layer("head_dropout").input
        inputs = keras.Input(tuple(pooled.shape[1:]), name="features")
        x = self.model.get_layer("head_dropout")(inputs)
        outputs = self.model.get_layer("head")(x)
        return BatchesInStep(inputs, outputs, batches, "head_on_features")

    def extractor(self) -> Any:
        import keras

        if self._extractor is None:
            pooled = self.model.get_layer("head_dropout").input
            self._extractor = keras.Model(self.model.inputs, pooled, name="frozen_features")
        return self._extractor


@dataclass
class ModelPool:
    """A worker's warm models, by structure, and its training batches, by training set.
    ``keep=False`` gives a cold worker's behaviour: everything built afresh for every trial."""

    keep: bool = True
    models: dict[Structure, WarmModels] = field(default_factory=dict)
    derived: ArrayMemo = field(init=False)  # training batches and validation inputs

    def __post_init__(self) -> None:
        self.derived = ArrayMemo(self.keep)

    def eval_inputs(self, x: np.ndarray, preprocessing: str, preprocess: Preprocess) -> np.ndarray:
        """Validation images, preprocessed once per worker."""
        return self.derived.get(x, ("eval", preprocessing), lambda: eval_inputs(x, preprocess))

    def training_batches(self, x: np.ndarray, y: np.ndarray, batch_size: int,
                         preprocessing: str | None, preprocess: Preprocess) -> TrainingBatches:
        """Batches of images, or of features when ``preprocessing`` is None."""
        return self.derived.get(x, ("train", batch_size, preprocessing),
                                lambda: TrainingBatches(x, y, batch_size, preprocess,
                                                        images=preprocessing is not None))

    def probe_head(self, features: np.ndarray, labels: np.ndarray, n_classes: int,
                   class_weight: dict[int, float] | None, objective: str,
                   seed: int) -> tuple[np.ndarray, np.ndarray]:
        """A fitted probe as head weights (``_probe.head_weights``), fitted once per worker for
        each class weighting: trials that differ only in later settings share it."""
        from tlsweep.training._probe import fit_probe, head_weights

        weights = None if class_weight is None else tuple(sorted(class_weight.items()))
        return self.derived.get(features, ("probe", weights, objective, seed), lambda: head_weights(
            fit_probe(features, labels, objective, seed, class_weight), n_classes))

    def get(self, structure: Structure, seed: int) -> tuple[WarmModels, bool]:
        """(models, whether they were reused). A from-scratch backbone is never reused: its
        initial weights must come from each trial's own seed."""
        if structure in self.models:
            return self.models[structure], True
        import keras

        keep = self.keep and structure.backbone.pretrained
        if not self.models:
            keras.backend.clear_session()
        # Only when building: TensorFlow's set_seed also empties its kernel cache, and the
        # next step of every model then pays to make its kernels again. A reused
        # model needs no global seed: its reset draws from the trial's seed explicitly.
        keras.utils.set_random_seed(seed)
        models = WarmModels(structure)
        if keep:
            self.models[structure] = models
        return models, False


# ----------------------------------------------------------------------------- features
def _backbone_identity(backbone: Backbone) -> str:
    parts = [backbone.name, str(backbone.weights), str(backbone.model_path)]
    for path in (backbone.model_path, Path(str(backbone.weights))):
        if path is not None and Path(path).is_file():
            stat = Path(path).stat()
            parts.append(f"{stat.st_size}:{stat.st_mtime_ns}")
    return "|".join(parts)


def features_key(images: np.ndarray, structure: Structure, policy: str) -> str:
    digest = hashlib.sha256(_backbone_identity(structure.backbone).encode())
    digest.update(f"{structure.image_size}:{policy}:{images.shape}".encode())
    digest.update(np.ascontiguousarray(images).data)
    return digest.hexdigest()[:24]


def frozen_features(models: WarmModels, images: np.ndarray, preprocess: Any) -> np.ndarray:
    """Pooled backbone output for ``images`` (uint8): from this worker's memory, else from
    the disk cache (shared by workers and runs), else computed once and stored there."""
    return models.features.get(images, (), lambda: _cached_features(models, images, preprocess))


def _cached_features(models: WarmModels, images: np.ndarray, preprocess: Any) -> np.ndarray:
    import keras

    from tlsweep.training._classifier import predict

    policy = keras.mixed_precision.global_policy().name
    folder = cache_root() / "features"
    target = folder / f"{features_key(images, models.structure, policy)}.npy"
    if target.is_file():
        features = np.load(target)
    else:
        # Preprocessed a slice at a time: float32 copies of every image at once would not fit.
        features = np.concatenate([predict(models.extractor(),
                                           eval_inputs(images[i:i + 256], preprocess))
                                   for i in range(0, len(images), 256)])
        with replacing(target) as temporary, open(temporary, "wb") as out:
            np.save(out, features)  # atomic: another worker sees all of it or none
    return features
