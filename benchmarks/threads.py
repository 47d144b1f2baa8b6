"""TensorFlow's thread pools and the CPU a fine-tuning step uses, side by side.

Run by hand:  python benchmarks/threads.py [--image-size 128] [--batch-size 32] [--steps 15]

Each setting runs in its own process (the pools are fixed once TensorFlow starts): the classifier
tlsweep fine-tunes (``precision.classifier``: MobileNetV2 with the shared weights, top 30%
unfrozen) trains 3 epochs on synthetic images, and the steady epochs (the first traces) give
the steps per second and the process's CPU seconds over wall seconds. "default" is what a
one-worker sweep gets (tlsweep sets no pools then). Prints Markdown for benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
# (intra-op threads, inter-op threads); 0: TensorFlow's default (the machine's cores).
SETTINGS = {"default": (0, 0), "intra 2, inter 1": (2, 1), "intra 1, inter 1": (1, 1),
            "intra 3, inter 1": (3, 1), "intra 4, inter 2": (4, 2)}


def child(weights: Path, image_size: int, batch_size: int, steps: int) -> dict[str, float]:
    import keras
    from precision import classifier

    model = classifier(weights, image_size, 5)
    model.compile(optimizer=keras.optimizers.Adam(1e-4),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (batch_size * steps, image_size, image_size, 3)).astype(np.float32)
    y = rng.integers(0, 5, batch_size * steps).astype(np.int32)
    epochs: list[tuple[float, float]] = []

    class Clock(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
            self.began = (time.perf_counter(), time.process_time())

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            epochs.append((time.perf_counter() - self.began[0],
                           time.process_time() - self.began[1]))

    model.fit(x, y, batch_size=batch_size, epochs=3, verbose=0, callbacks=[Clock()])
    wall, cpu = (sum(e[i] for e in epochs[1:]) for i in (0, 1))
    return {"steps_per_s": steps * (len(epochs) - 1) / wall, "cpu": cpu / wall,
            "first_s": epochs[0][0], "first_cpu": epochs[0][1] / epochs[0][0]}


def run_setting(intra: int, inter: int, args: argparse.Namespace) -> dict[str, float]:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    if intra:
        env.update(TF_NUM_INTRAOP_THREADS=str(intra), TF_NUM_INTEROP_THREADS=str(inter))
    done = subprocess.run(
        [sys.executable, __file__, "--child", "--weights", str(args.weights), "--image-size",
         str(args.image_size), "--batch-size", str(args.batch_size), "--steps", str(args.steps)],
        env=env, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=Path,
                        default=Path(os.environ.get("TLSWEEP_SHARED", HERE.parent.parent /
                                                    "shared")) / "weights" /
                        "mobilenet_v2_1.0_notop.weights.h5")
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=15, help="training steps per epoch")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.weights, args.image_size, args.batch_size, args.steps)))
        return
    if not args.weights.is_file():
        sys.exit(f"skipped: {args.weights} is absent (../shared or $TLSWEEP_SHARED)")
    rows = {}
    for name, (intra, inter) in SETTINGS.items():
        rows[name] = run_setting(intra, inter, args)
        print(name, json.dumps(rows[name]), file=sys.stderr, flush=True)
    base = rows["default"]["steps_per_s"]
    print(f"## Thread pools and CPU use, fine-tuning steps ({datetime.now(UTC).date()})\n\n"
          f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python "
          f"{platform.python_version()}. Command: `python benchmarks/threads.py --image-size "
          f"{args.image_size} --batch-size {args.batch_size} --steps {args.steps}`.\n")
    print("| threads | steady steps/s | vs default | CPU in steady epochs | first epoch s "
          "(CPU) |\n| --- | --- | --- | --- | --- |")
    for name, row in rows.items():
        print(f"| {name} | {row['steps_per_s']:.2f} | {row['steps_per_s'] / base:.2f}x | "
              f"{row['cpu']:.0%} | {row['first_s']:.1f} ({row['first_cpu']:.0%}) |")


if __name__ == "__main__":
    main()
