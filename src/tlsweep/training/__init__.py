"""One trial's training, in a worker process: backbones, the classifier, augmentation, batches, the
two-phase trial and its epochs, checkpoints, the warm model pool, the linear probe, the
finalists' run, the worker's main loop and the typed messages it speaks."""

from tlsweep.training._checkpoint import FINAL_MODEL, TrialCheckpoints
from tlsweep.training._epochs import EpochRecord
from tlsweep.training._final import DELIVERED, FINAL_DIR, Finalist, FinalTask, final_main
from tlsweep.training._preflight import check_weights
from tlsweep.training._trial import TrialSettings, TrialTask, TwoPhaseTrial
from tlsweep.training._worker import FAILPOINT, WorkerSpec, worker_main

__all__ = [
    "DELIVERED",
    "FAILPOINT",
    "FINAL_DIR",
    "FINAL_MODEL",
    "EpochRecord",
    "FinalTask",
    "Finalist",
    "TrialCheckpoints",
    "TrialSettings",
    "TrialTask",
    "TwoPhaseTrial",
    "WorkerSpec",
    "check_weights",
    "final_main",
    "worker_main",
]
