"""Phase 1 on cached frozen features against phase 1 through the backbone, side by side.

Run by hand:  python benchmarks/feature_cache.py [--image-size 96] [--epochs 3]

../shared/data/flowers (all of it, seeded 20% validation split), MobileNetV2 with
../shared/weights, augmentation 0: the same head trained for the same epochs on the same seed,
once through the frozen backbone and once on its cached pooled features. Reports the steady
epoch time of each (first epochs excluded: they trace), the one-off cost of computing the
features, and both validation accuracies. Prints Markdown for benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from statistics import median

HERE = Path(__file__).resolve().parent
SHARED = Path(os.environ.get("TLSWEEP_SHARED", HERE.parent.parent / "shared"))


class Quiet:
    def epoch_started(self, *args: object) -> None: ...
    def epoch_finished(self, record: object) -> None: ...


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image-size", type=int, default=96)
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    sys.path.insert(0, str(HERE.parent / "src"))
    from tlsweep.config import DataConfig, TrialParams
    from tlsweep.datasets import cache_root, load_dataset
    from tlsweep.training import TrialSettings
    from tlsweep.training._trial import run_trial
    from tlsweep.training._warm import ModelPool
    from tlsweep.training.backbones import Backbone

    weights = SHARED / "weights" / "mobilenet_v2_1.0_notop.weights.h5"
    data = SHARED / "data" / "flowers"
    if not weights.is_file() or not data.is_dir():
        raise SystemExit(f"needs {data} and {weights}; set TLSWEEP_SHARED")
    began = time.perf_counter()
    dataset = load_dataset(DataConfig(dir=data, val_split=0.2, image_size=args.image_size), 0,
                           Path(__file__))
    decode_s = time.perf_counter() - began
    shutil.rmtree(cache_root() / "features", ignore_errors=True)  # measure the first build
    backbone = Backbone("MobileNetV2", str(weights), None, "MobileNetV2", 32)
    params = TrialParams("MobileNetV2", 0.0, 1e-3, 1e-5, 0.0, "none")
    results = {}
    for cached in (False, True):
        settings = TrialSettings(args.image_size, args.epochs, 0, 32, 0.2, "val_accuracy",
                                 seed=0, cache_features=cached)
        results[cached] = run_trial(params, backbone, dataset, settings, Quiet(),
                                    pool=ModelPool(keep=False))
    steady = {c: median(s for _, s, traced, _ in r.timings["epochs"] if not traced)
              for c, r in results.items()}
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    print(f"## Frozen-feature cache, phase 1 ({datetime.now(UTC).date()})\n\n"
          f"Machine: {machine}; command: `python benchmarks/feature_cache.py --image-size "
          f"{args.image_size} --epochs {args.epochs}`. flowers: {len(dataset.y_train)} training "
          f"and {len(dataset.y_val)} validation images at {args.image_size} px (decoded or read "
          f"from the cache in {decode_s:.1f} s); MobileNetV2 with the shared weights; seed 0.\n")
    print("| phase 1 | steady epoch (s) | first epoch (s) | one-off feature pass (s) | "
          "val accuracy after the phase |\n| --- | --- | --- | --- | --- |")
    for cached, label in ((False, "through the frozen backbone"), (True, "on cached features")):
        result = results[cached]
        print(f"| {label} | {steady[cached]:.3f} | {result.timings['epochs'][0][1]:.2f} | "
              f"{result.timings['features_s']:.1f} | {result.value:.3f} |")
    print(f"\nSteady epoch speed-up: {steady[False] / steady[True]:.0f}x (target >= 10x); "
          f"validation accuracy difference {abs(results[True].value - results[False].value):.3f}"
          f" (test tolerance 0.02).")


if __name__ == "__main__":
    main()
