"""Training models that make their own batches inside the train step.

Imports Keras: only the worker's trial code imports this module.
"""

from __future__ import annotations

from typing import Any

import keras

from tlsweep.training._batches import TrainingBatches


class BatchesInStep(keras.Model):
    """A functional model (sharing the classifier's layers) whose train step takes its batch
    from ``_batches`` and ignores what ``fit`` iterates (``TrainingBatches.steps``).

    The batch is made in the same traced function as the step, so a ``fit`` costs no data
    pipeline iterator, and the function is traced once per training model, whatever the trial's
    seed, strength or class weights."""

    def __init__(self, inputs: Any, outputs: Any, batches: TrainingBatches, name: str) -> None:
        super().__init__(inputs, outputs, name=name)
        self.batches = batches

    def train_step(self, data: Any) -> Any:
        return super().train_step(self.batches.next_batch())
