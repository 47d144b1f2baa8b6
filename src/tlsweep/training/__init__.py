"""One trial's training, in a worker process: backbones, the classifier, augmentation, batches, the
two-phase trial and its epochs, checkpoints, the warm model pool, the linear probe, the worker's
main loop and the typed messages it speaks. The finalists' stage (``tlsweep.finalists``) trains
its recipes with the pieces named here."""

from tlsweep.training._batches import eval_inputs
from tlsweep.training._checkpoint import FINAL_MODEL, TrialCheckpoints
from tlsweep.training._classifier import predict
from tlsweep.training._epochs import EpochRecord, confusion_matrix
from tlsweep.training._preflight import check_weights
from tlsweep.training._probe import (
    cross_validate_probe,
    fit_baseline,
    fit_probe,
    head_weights,
    probe_fits,
)
from tlsweep.training._trial import TrialSettings, TrialTask, TwoPhaseTrial
from tlsweep.training._warm import ModelPool, Structure, frozen_features
from tlsweep.training._worker import (
    FAILPOINT,
    WorkerSpec,
    enter_subprocess,
    gpu_capabilities,
    setup_tensorflow,
    worker_main,
)
from tlsweep.training.protocol import StopWorker

__all__ = [
    "FAILPOINT",
    "FINAL_MODEL",
    "EpochRecord",
    "ModelPool",
    "StopWorker",
    "Structure",
    "TrialCheckpoints",
    "TrialSettings",
    "TrialTask",
    "TwoPhaseTrial",
    "WorkerSpec",
    "check_weights",
    "confusion_matrix",
    "cross_validate_probe",
    "enter_subprocess",
    "eval_inputs",
    "fit_baseline",
    "fit_probe",
    "frozen_features",
    "gpu_capabilities",
    "head_weights",
    "predict",
    "probe_fits",
    "setup_tensorflow",
    "worker_main",
]
