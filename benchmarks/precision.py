"""Mixed precision and XLA for fine-tuning MobileNetV2, on whatever device Keras finds.

Run by hand:  python benchmarks/precision.py [--image-size 160] [--batch-size 64] [--steps 30]

Times steady training steps of the classifier tlsweep fine-tunes (MobileNetV2 with the shared
ImageNet weights, pooling, dropout, softmax head; the top 30% of the backbone unfrozen,
BatchNorm frozen) for each of float32 and mixed_float16, with XLA (``jit_compile``) on and off.
It uses Keras alone, so it runs on any Keras backend (``KERAS_BACKEND``): the product runs on
TensorFlow, and a machine without TensorFlow's GPU build can still show what the precision
policy does on its accelerator through JAX. Synthetic images: speed does not depend on pixels.
Prints Markdown for benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
WEIGHTS = "mobilenet_v2_1.0_notop.weights.h5"


def device_name() -> str:
    import keras

    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        return f"{jax.devices()[0].device_kind} (JAX {jax.__version__})"
    if backend == "tensorflow":
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        if gpus:
            return tf.config.experimental.get_device_details(gpus[0]).get("device_name", "GPU")
        return f"CPU, {os.cpu_count()} cores (TensorFlow {tf.__version__})"
    return backend


def classifier(weights: Path, image_size: int, n_classes: int) -> object:
    import keras

    base = keras.applications.MobileNetV2(input_shape=(image_size, image_size, 3),
                                          include_top=False, weights=None)
    base.load_weights(weights)
    layers = base.layers[1:]
    for index, layer in enumerate(layers):
        top = index >= int(0.7 * len(layers))
        layer.trainable = top and not isinstance(layer, keras.layers.BatchNormalization)
    inputs = keras.Input((image_size, image_size, 3))
    x = base(inputs, training=False)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dropout(0.2)(x)
    outputs = keras.layers.Dense(n_classes, activation="softmax", dtype="float32")(x)
    return keras.Model(inputs, outputs)


def steps_per_second(weights: Path, policy: str, jit: bool, image_size: int, batch_size: int,
                     steps: int) -> tuple[float, float]:
    """(steady steps per second, seconds of the first, compiling, epoch)."""
    import keras

    keras.backend.clear_session()
    keras.mixed_precision.set_global_policy(policy)
    model = classifier(weights, image_size, 5)
    model.compile(optimizer=keras.optimizers.Adam(1e-4),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"],
                  jit_compile=jit)
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (batch_size * steps, image_size, image_size, 3)).astype(np.float32)
    y = rng.integers(0, 5, batch_size * steps).astype(np.int32)
    times: list[float] = []

    class Clock(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
            self.began = time.perf_counter()

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            times.append(time.perf_counter() - self.began)

    model.fit(x, y, batch_size=batch_size, epochs=3, verbose=0, callbacks=[Clock()])
    return steps / min(times[1:]), times[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=Path,
                        default=Path(os.environ.get("TLSWEEP_SHARED", HERE.parent.parent /
                                                    "shared")) / "weights" / WEIGHTS)
    parser.add_argument("--image-size", type=int, default=160)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=30, help="training steps per epoch")
    parser.add_argument("--policies", default="float32,mixed_float16",
                        help="Keras dtype policies, comma-separated; the first is the baseline")
    parser.add_argument("--jit", choices=("both", "off", "on"), default="both")
    args = parser.parse_args()
    import keras

    rows = []
    for jit in {"both": (False, True), "off": (False,), "on": (True,)}[args.jit]:
        for policy in args.policies.split(","):
            rate, first = steps_per_second(args.weights, policy, jit, args.image_size,
                                           args.batch_size, args.steps)
            rows.append((policy, jit, rate, first))
            print(f"{policy} jit={jit}: {rate:.2f} steps/s, first epoch {first:.1f} s",
                  flush=True)
    base, (base_policy, base_jit) = rows[0][2], rows[0][:2]
    print(f"\n## Mixed precision and XLA ({datetime.now(UTC).date()})\n\n"
          f"Device: {device_name()}; Keras {keras.__version__} on {keras.backend.backend()}; "
          f"host {platform.machine()}, {os.cpu_count()} cores. Command: `python "
          f"benchmarks/precision.py --image-size {args.image_size} --batch-size "
          f"{args.batch_size} --steps {args.steps} --policies {args.policies} --jit {args.jit}`. "
          f"MobileNetV2 with the shared weights, top "
          f"30% unfrozen, {args.image_size} px, batch {args.batch_size}.\n")
    print(f"| policy | XLA (jit_compile) | steady steps/s | images/s | vs {base_policy} "
          f"{'with' if base_jit else 'without'} XLA | first epoch, compiling (s) |")
    print("| --- | --- | --- | --- | --- | --- |")
    for policy, jit, rate, first in rows:
        print(f"| {policy} | {'on' if jit else 'off'} | {rate:.2f} | "
              f"{rate * args.batch_size:.0f} | {rate / base:.2f}x | {first:.1f} |")


if __name__ == "__main__":
    main()
