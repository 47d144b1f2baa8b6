"""The fused augmentation: its geometry, its ranges and its reproducibility."""

from __future__ import annotations

import math

import numpy as np
import pytest

pytestmark = pytest.mark.slow


def transform(images: np.ndarray, flip: float = 0.0, angle: float = 0.0, zoom: float = 1.0,
              shift_x: float = 0.0, shift_y: float = 0.0) -> np.ndarray:
    import tensorflow as tf

    from tlsweep.training._augment import projective_transforms

    n, height, width = images.shape[:3]
    rows = projective_transforms(*(tf.fill([n], float(v)) for v in (flip, angle, zoom, shift_x,
                                                                    shift_y)),
                                 float(height), float(width))
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=tf.constant(images), transforms=rows, output_shape=[height, width],
        fill_value=0.0, interpolation="BILINEAR", fill_mode="REFLECT").numpy()


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    return np.random.default_rng(0).uniform(0, 255, (2, 9, 9, 3)).astype(np.float32)


def test_each_movement_is_the_one_it_names(images: np.ndarray) -> None:
    np.testing.assert_allclose(transform(images), images, atol=1e-4)
    np.testing.assert_allclose(transform(images, flip=1.0), images[:, :, ::-1], atol=1e-4)
    # A quarter turn of a square image is a rotation of the pixel grid (either direction is one
    # draw of a symmetric range; this fixes which one the sign means).
    np.testing.assert_allclose(transform(images, angle=math.pi / 2),
                               np.rot90(images, k=1, axes=(1, 2)), atol=1e-3)
    # Shifted by two pixels: output x reads input x - 2; the first columns come from reflection.
    np.testing.assert_allclose(transform(images, shift_x=2.0)[:, :, 2:], images[:, :, :-2],
                               atol=1e-4)
    # Zoom 0.5 reads the centre at half scale: the centre pixel stays, a pixel two away from it
    # shows the one one away.
    zoomed = transform(images, zoom=0.5)
    np.testing.assert_allclose(zoomed[:, 4, 4], images[:, 4, 4], atol=1e-4)
    np.testing.assert_allclose(zoomed[:, 4, 6], images[:, 4, 5], atol=1e-4)


def test_draws_are_keyed_by_seed_and_stay_in_range(images: np.ndarray) -> None:
    import tensorflow as tf

    from tlsweep.training._augment import augment

    def run(strength: float, seed: tuple[int, int]) -> np.ndarray:
        return augment(tf.constant(images), tf.constant(strength),
                       tf.constant(seed, tf.int64)).numpy()

    np.testing.assert_array_equal(run(0.5, (1, 2)), run(0.5, (1, 2)))
    assert not np.allclose(run(0.5, (1, 2)), run(0.5, (1, 3)))
    out = run(1.0, (4, 5))
    assert out.shape == images.shape and out.min() >= 0.0 and out.max() <= 255.0
    # At strength 0 only the flip is left: every image is itself or its mirror.
    for index, image in enumerate(run(0.0, (6, 7))):
        assert (np.allclose(image, images[index], atol=1e-4)
                or np.allclose(image, images[index][:, ::-1], atol=1e-4))


def test_an_epoch_is_the_same_batches_however_it_is_reached() -> None:
    """Resuming at epoch 3 sees what an uninterrupted run saw at epoch 3; epochs differ."""
    from tlsweep.training._batches import TrainingBatches

    rng = np.random.default_rng(1)
    x = rng.integers(0, 256, (21, 8, 8, 3)).astype(np.uint8)
    y = np.arange(21, dtype=np.int32)
    batches = TrainingBatches(x, y, 4, lambda images: images / 255.0)
    steps = batches.steps_per_epoch
    assert steps == 6

    def take(count: int) -> list[tuple[np.ndarray, ...]]:
        return [tuple(np.asarray(part) for part in batches.next_batch()) for _ in range(count)]

    def epochs(first: int, count: int, strength: float = 0.6) -> list[np.ndarray]:
        batches.start(strength, seed=3, first_epoch=first)
        flat = take(steps * count)
        return [np.concatenate([images for images, _, _ in flat[i:i + steps]])
                for i in range(0, len(flat), steps)]

    straight, resumed = epochs(0, 4), epochs(3, 1)
    np.testing.assert_array_equal(straight[3], resumed[0])
    assert not np.allclose(straight[2], straight[3])
    batches.start(0.0, 3)
    labels = [labels for _, labels, _ in take(steps)]
    assert sorted(np.concatenate(labels)) == list(range(21)), "each image once an epoch"
    assert [len(b) for b in labels] == [4] * 5 + [1], "batches never cross an epoch"


def test_batches_carry_the_trial_class_weights() -> None:
    from tlsweep.training._batches import TrainingBatches

    y = np.array([0, 1, 2, 0, 1, 2], dtype=np.int32)
    batches = TrainingBatches(np.zeros((6, 4, 4, 3), np.uint8), y, 6, lambda images: images)
    batches.start(0.0, seed=0, class_weights={0: 2.0, 1: 0.5, 2: 1.0})
    _, labels, weights = (np.asarray(part) for part in batches.next_batch())
    np.testing.assert_array_equal(weights, np.array([2.0, 0.5, 1.0])[labels])
    batches.start(0.0, seed=0)  # the next trial weights nothing
    _, _, weights = (np.asarray(part) for part in batches.next_batch())
    np.testing.assert_array_equal(weights, np.ones(6))
