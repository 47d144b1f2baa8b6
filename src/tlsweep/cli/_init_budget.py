"""``tlsweep init``'s budget: a rough cost model of a trial on this machine, and the image size,
epochs and number of trials that fit the wall time asked for."""

from __future__ import annotations

from dataclasses import dataclass

from tlsweep.config._schema import AnchorConfig, FinalistsConfig

FINALISTS = FinalistsConfig()  # the stage a scaffolded sweep gets
ANCHOR = AnchorConfig()  # the recipe it cross-validates beside the top k on small data
EPOCHS = ((2, 10), (2, 5))  # (head, fine-tune): the recipe benchmarks/RESULTS.md runs, then less
MIN_TRIALS, MAX_TRIALS = 10, 100  # TPE's 5 random start-up trials and some guided ones; past
# 100 a search over six parameters gains little (raise budget.trials by hand to disagree).

# A rough cost model: it only has to get the number of trials to the right order, since the
# timeout stops the sweep whatever it says. The pixel cost is the steady MobileNetV2 fine-tune
# step on CPU (benchmarks/RESULTS.md, "Mixed precision and XLA", float32 without XLA); the
# overheads are fitted to the trial durations of its "Honest answers" runs.
CORE_S_PER_PIXEL = 0.4e-6  # one training image, one epoch, one pixel, one core
EVAL_SHARE = 1 / 3  # a validation image costs a forward pass and no gradient
EPOCH_OVERHEAD_S = 1.0  # an epoch's validation set-up, checkpoint and messages
TRIAL_OVERHEAD_S = 5.0  # building or resetting the model, tracing, the sampler, the storage
STARTUP_S = 30.0  # the worker's TensorFlow import, decoding, the weights' pre-flight
USEFUL_CORES = 8  # TensorFlow's CPU kernels gain little from more
GPU_CORES = 40.0  # a GPU counted as this many cores: a guess (no TensorFlow GPU benchmark yet)
PRUNED_SHARE = 0.5  # mean share of its epochs a trial runs under successive halving
# One logistic-regression fit of the linear probe, per image it fits on: fitted to the probes'
# seconds on 2 cores in benchmarks/RESULTS.md, "The current code on the suite" (2.5-5 ms).
PROBE_S_PER_IMAGE = 3e-3
# Cost per image against MobileNetV2: the order of their multiply-adds, damped, since depthwise
# convolutions run far below peak on CPU. Rough.
COST = {"MobileNetV2": 1.0, "MobileNetV3Small": 0.4, "MobileNetV3Large": 0.9,
        "EfficientNetB0": 1.8, "EfficientNetV2B0": 2.0, "ResNet50": 4.0, "ResNet50V2": 4.0,
        "DenseNet121": 3.5, "ConvNeXtTiny": 5.0, "Xception": 6.0}


@dataclass(frozen=True)
class Plan:
    size: int
    head: int
    finetune: int
    trials: int
    full_s: float  # one trial that runs every epoch
    mean_s: float  # one trial, pruning counted
    finalists_s: float
    anchor: bool  # small data: the finalists cross-validate the anchor recipe too


def estimate(size: int, epochs: int, n_train: int, n_eval: int, factor: float,
             speed: float) -> float:
    """Seconds for one trial that runs every epoch; speed: cores, or GPU_CORES."""
    per_epoch = (n_train + EVAL_SHARE * n_eval) * size * size * CORE_S_PER_PIXEL * factor
    return TRIAL_OVERHEAD_S + epochs * (per_epoch / speed + EPOCH_OVERHEAD_S)


def plan_budget(seconds: float, sizes: list[int], n: tuple[int, int, int], factor: float,
                speed: float) -> Plan:
    """The first (size, epochs) that fits MIN_TRIALS trials in the time, else the cheapest."""
    n_train, n_val, n_test = n
    for size in sizes:
        for head, finetune in EPOCHS:
            full = estimate(size, head + finetune, n_train, n_val, factor, speed)
            mean = TRIAL_OVERHEAD_S + PRUNED_SHARE * (full - TRIAL_OVERHEAD_S)
            # The finalists (tlsweep.finalists): the baseline's and the test passes; below
            # small_data_images also k recipes on every fold, each on (folds-1)/folds of
            # train+val, and a refit: k (folds-1) + 1 trainings of train+val; and the anchor
            # recipe on every fold, for its own schedule: folds-1 more.
            final = estimate(size, 1, 0, n_train + n_val + n_test, factor, speed) \
                + FINALISTS.k * TRIAL_OVERHEAD_S + stage_probes_s(n_train, n_val)
            small = n_train + n_val < FINALISTS.small_data_images
            if small:
                final += (FINALISTS.k * (FINALISTS.folds - 1) + 1) * estimate(
                    size, head + finetune, n_train + n_val, 0, factor, speed)
                final += (FINALISTS.folds - 1) * estimate(
                    size, ANCHOR.total_epochs, n_train + n_val, 0, factor, speed)
            fits = int((seconds - STARTUP_S - trial_probe_s(n_train) - final) // mean)
            plan = Plan(size, head, finetune, min(MAX_TRIALS, max(3, fits)), full, mean, final,
                        small)
            if fits >= MIN_TRIALS:
                return plan
    return plan


def trial_probe_s(n_train: int) -> float:
    """The probe the first trial's head starts from (``training.probe_fits``)."""
    from tlsweep.training import probe_fits

    return _probe_s(probe_fits(), n_train)


def stage_probes_s(n_train: int, n_val: int) -> float:
    """The finalists' stage's probes (``finalists.EpochCosts.probes_s``): the baseline on
    train, both weightings, and, on small data, the search over the folds of train+val."""
    from tlsweep.training import probe_fits

    seconds = _probe_s(probe_fits(weightings=2), n_train)
    if n_train + n_val < FINALISTS.small_data_images:
        folds = FINALISTS.folds
        seconds += PROBE_S_PER_IMAGE * (probe_fits(folds, 2) + folds) * (n_train + n_val) \
            * (folds - 1) / folds
    return seconds


def _probe_s(fits: int, n_train: int) -> float:
    """``fits`` fits of a probe chosen by cross-validation on ``n_train`` images, each on the
    CV's training share (two thirds)."""
    return PROBE_S_PER_IMAGE * fits * n_train * 2 / 3


def duration(seconds: float) -> str:
    h, rest = divmod(int(seconds), 3600)
    return "".join(f"{v}{u}" for v, u in zip((h, *divmod(rest, 60)), "hms", strict=True)
                   if v) or "0s"
