"""Training batches made inside the train step, and evaluation inputs. TensorFlow, lazily."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import tensorflow as tf

Preprocess = Callable[[Any], Any]


class TrainingBatches:
    """One training set's batches for any trial: shuffled per epoch, augmented (image sets only)
    at the trial's strength, preprocessed for the backbone, with the trial's class weights.

    The batches are made inside the train step (``_batches_in_step.BatchesInStep``), not by a
    tf.data pipeline: each ``fit`` made a pipeline iterator, instantiating its functions and
    waiting for its first batch, a cost as large as a small epoch (RESULTS.md, "From the
    code"). Keras iterates a dummy dataset instead (``_batches_in_step``), and the step reads
    the trial's seed, strength, first epoch and class weights from variables, so one traced
    train function serves every trial of a worker. Every shuffle and draw is keyed by (seed,
    epoch, batch): epoch e of a trial is the same batches however it is reached."""

    def __init__(self, x: np.ndarray, y: np.ndarray, batch_size: int,
                 preprocess: Preprocess, images: bool = True) -> None:
        import tensorflow as tf

        self.x, self.y = tf.constant(x), tf.constant(y)
        self.n_images, self.batch_size = len(y), batch_size
        self.preprocess, self.images = preprocess, images
        variable = lambda value, dtype: tf.Variable(value, dtype=dtype,  # noqa: E731
                                                    trainable=False)
        self.seed, self.first_epoch = variable(0, tf.int64), variable(0, tf.int64)
        self.taken = variable(0, tf.int64)  # batches made since ``start``
        self.strength = variable(0.0, tf.float32)
        self.n_classes = int(np.max(y)) + 1 if len(y) else 1
        self.weights = variable(np.ones(self.n_classes, np.float32), tf.float32)
        self._steps: tf.data.Dataset | None = None
        self._make_batch: Any = None

    @property
    def steps_per_epoch(self) -> int:
        return -(-self.n_images // self.batch_size)  # the last batch may be short

    def start(self, strength: float, seed: int, first_epoch: int = 0,
              class_weights: dict[int, float] | None = None) -> None:
        """The next batch is the first of ``first_epoch`` for this trial."""
        self.seed.assign(seed)
        self.first_epoch.assign(first_epoch)
        self.taken.assign(0)
        self.strength.assign(strength if self.images else 0.0)
        weights = class_weights or {}
        self.weights.assign(np.array([weights.get(c, 1.0) for c in range(self.n_classes)],
                                     np.float32))

    def example(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """A batch's shapes and dtypes (zeros), to build a model's training state ahead."""
        return (np.zeros((self.batch_size, *self.x.shape[1:]), np.float32),
                np.zeros(self.batch_size, self.y.dtype.as_numpy_dtype),
                np.zeros(self.batch_size, np.float32))

    def steps(self) -> tf.data.Dataset:
        """What ``fit`` iterates: one placeholder element per step (cheap to make an iterator
        of); the train step ignores it and calls ``next_batch``."""
        import tensorflow as tf

        if self._steps is None:
            # Without the autotuner: its thread makes some fits wait at their end while it
            # stops (RESULTS.md, "From the code"), and there is nothing here to tune.
            options = tf.data.Options()
            options.autotune.enabled = False
            self._steps = (tf.data.Dataset.from_tensors(tf.constant(0, tf.int64)).repeat()
                           .with_options(options))
        return self._steps

    def next_batch(self) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        """(inputs, labels, sample weights) of the next batch; in a graph or eagerly.

        One function, traced once per training set and called by every training model's step:
        traced into each of them, it made each new model's trace slower (measured in
        benchmarks/overhead.py)."""
        import tensorflow as tf

        if self._make_batch is None:
            self._make_batch = tf.function(self._next_batch)
        return self._make_batch()

    def _next_batch(self) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        import tensorflow as tf

        from tlsweep.training._augment import augment

        taken = self.taken.assign_add(1) - 1
        n_batches = self.steps_per_epoch
        epoch, batch = self.first_epoch + taken // n_batches, taken % n_batches
        order = tf.random.experimental.stateless_shuffle(
            tf.range(self.n_images, dtype=tf.int64), tf.stack([self.seed, epoch]))
        indices = order[batch * self.batch_size:(batch + 1) * self.batch_size]
        inputs = tf.cast(tf.gather(self.x, indices), tf.float32)
        if self.images:
            draw_seed = tf.random.experimental.stateless_fold_in(tf.stack([self.seed, epoch]),
                                                                 batch)
            inputs = tf.cond(self.strength > 0.0,
                             lambda: augment(inputs, self.strength, draw_seed),
                             lambda: inputs)
        labels = tf.gather(self.y, indices)
        return self.preprocess(inputs), labels, tf.gather(self.weights, labels)


def eval_inputs(x: np.ndarray, preprocess: Preprocess) -> np.ndarray:
    """Validation (and evaluation) inputs: preprocessed, never augmented."""
    return np.asarray(preprocess(np.asarray(x, dtype=np.float32)))
