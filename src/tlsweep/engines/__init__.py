"""The search engines behind one Engine contract: Optuna's (the default) and keras-tuner's."""

from tlsweep.engines._keras_tuner import run_keras_tuner

__all__ = [
    "run_keras_tuner",
]
