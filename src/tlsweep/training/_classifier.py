"""The classifier a trial trains: a backbone, pooling, dropout and a softmax head; which of its
layers train in each phase, and how it is compiled. Keras is imported lazily."""

from __future__ import annotations

from typing import Any

import numpy as np

from tlsweep.training.backbones import Backbone, block_starts, build


def build_classifier(backbone: Backbone, image_size: int, n_classes: int,
                     dropout: float) -> tuple[Any, Any]:
    """(classifier, backbone model). A pretrained backbone always runs in inference mode, so
    BatchNorm keeps its statistics even when its neighbours are unfrozen."""
    import keras

    base = build(backbone, image_size)
    inputs = keras.Input((image_size, image_size, 3))
    features = base(inputs, training=False) if backbone.pretrained else base(inputs)
    if len(features.shape) == 4:
        features = keras.layers.GlobalAveragePooling2D(name="pool")(features)
    features = keras.layers.Dropout(dropout, name="head_dropout")(features)
    outputs = keras.layers.Dense(n_classes, activation="softmax", dtype="float32",
                                 name="head")(features)
    return keras.Model(inputs, outputs, name=f"tlsweep_{backbone.name}"), base


def backbone_layers(base: Any) -> list[Any]:
    import keras

    return [layer for layer in base.layers if not isinstance(layer, keras.layers.InputLayer)]


def freeze_for_head(base: Any, pretrained: bool) -> None:
    base.trainable = not pretrained


def unfrozen_count(base: Any, depth: float) -> int:
    """How many top layers the ``depth`` fraction unfreezes, rounded to the nearest block
    boundary: a block is never half trained, and trials of nearby depths share one structure
    (and so one traced train function in a warm worker)."""
    layers = backbone_layers(base)
    wanted = depth * len(layers)
    cuts = [len(layers) - start for start in block_starts(
        [layer.name for layer in layers], [hasattr(layer, "kernel") for layer in layers])]
    return min(cuts, key=lambda n_top: (abs(n_top - wanted), n_top))


def unfreeze_top(base: Any, depth: float, pretrained: bool) -> int:
    """Unfreeze the top ``depth`` fraction of backbone layers (see ``unfrozen_count``);
    BatchNorm stays frozen when pretrained. Returns how many layers were unfrozen."""
    import keras

    layers = backbone_layers(base)
    if not pretrained:
        base.trainable = True
        return len(layers)
    n_top = unfrozen_count(base, depth)
    base.trainable = n_top > 0
    for index, layer in enumerate(layers):
        in_top = index >= len(layers) - n_top
        layer.trainable = in_top and not isinstance(layer, keras.layers.BatchNormalization)
    return n_top


def compile_for(model: Any, learning_rate: float, jit_compile: bool = False) -> None:
    import keras

    # XLA stays off by default: slower on CPU (execution.jit_compile; RESULTS.md, "Mixed
    # precision and XLA").
    model.compile(optimizer=keras.optimizers.Adam(learning_rate),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"],
                  jit_compile=jit_compile)


def build_training_state(model: Any, example: tuple[np.ndarray, ...]) -> None:
    """Create a compiled model's optimiser and metric variables before its first step, from an
    example batch. tf.function traces a step twice when its first trace creates variables: one
    trace less per training model (RESULTS.md, "From the code").
    ``_symbolic_build`` is the build Keras itself runs before ``fit`` under a distribution
    strategy; without it (another Keras), the first step builds as before."""
    build = getattr(model, "_symbolic_build", None)
    if build is not None:
        build(data_batch=example)


def predict(model: Any, inputs: np.ndarray, chunk: int = 256) -> np.ndarray:
    """Class probabilities in inference mode. ``Model.predict`` sets up a data pipeline on
    every call (as long as a small model's epoch, RESULTS.md); a traced forward pass kept on
    the model is reused from epoch to epoch, and across trials by a warm worker."""
    import tensorflow as tf

    forward = getattr(model, "_tlsweep_forward", None)
    if forward is None:
        def inference(x: Any) -> Any:
            return model(x, training=False)

        forward = tf.function(inference, reduce_retracing=True)
        model._tlsweep_forward = forward
    return np.concatenate([np.asarray(forward(tf.constant(inputs[i:i + chunk])),
                                      dtype=np.float32)
                           for i in range(0, len(inputs), chunk)])
