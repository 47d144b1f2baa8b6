"""The augmentation recipe, as one stateless TensorFlow function.

The recipe is the one Keras' random layers give at ``strength`` s: horizontal flip, rotation up to
0.1 s turns, zoom within 1 +- 0.2 s, translation up to 0.1 s of the size, contrast within
1 +- 0.2 s; bilinear, reflecting at the borders. Two reasons not to chain those layers:

- speed: the flip, rotation, zoom and translation become one projective transform (one pass and
  one interpolation instead of four), traced once per worker and shared by every trial, where
  chained layers cost time every batch and a trace every trial (RESULTS.md, "From the code");
- reproducibility: every draw comes from a stateless generator keyed by (trial seed, epoch,
  batch), not by a generator's state, so a batch is the same on a warm worker or a cold one,
  and after a resume.
"""

from __future__ import annotations

import math
from typing import Any

ROTATION, ZOOM, TRANSLATION, CONTRAST = 0.1, 0.2, 0.1, 0.2  # at strength 1


def projective_transforms(flip: Any, angle: Any, zoom: Any, shift_x: Any, shift_y: Any,
                          height: Any, width: Any) -> Any:
    """Rows of ``ImageProjectiveTransformV3``: for each output pixel, where to read the input.

    Around the image centre, an output point p reads ``zoom * R(angle) p - shift``, mirrored
    left-right where ``flip``; the arguments are per image (float32 vectors, flip 0 or 1)."""
    import tensorflow as tf

    cx, cy = (width - 1.0) / 2.0, (height - 1.0) / 2.0
    cos, sin = tf.cos(angle) * zoom, tf.sin(angle) * zoom
    a0, a1 = cos, -sin
    a2 = cx - shift_x - cos * cx + sin * cy
    b0, b1 = sin, cos
    b2 = cy - shift_y - sin * cx - cos * cy
    sign = 1.0 - 2.0 * flip  # mirroring x_in -> (width - 1) - x_in
    a0, a1, a2 = sign * a0, sign * a1, sign * a2 + flip * (width - 1.0)
    zeros = tf.zeros_like(angle)
    return tf.stack([a0, a1, a2, b0, b1, b2, zeros, zeros], axis=1)


def augment(images: Any, strength: Any, seed: Any) -> Any:
    """``images``: float32 (batch, h, w, c) in 0..255; ``strength``: float32 scalar;
    ``seed``: int64 pair. Returns images of the same shape, still in 0..255."""
    import tensorflow as tf

    shape = tf.shape(images)
    batch, height, width = shape[0], tf.cast(shape[1], tf.float32), tf.cast(shape[2], tf.float32)
    draws = tf.random.stateless_uniform(tf.stack([batch, 6]), seed, -1.0, 1.0)
    flip = tf.cast(draws[:, 0] < 0.0, tf.float32)
    angle = draws[:, 1] * (ROTATION * strength * 2.0 * math.pi)
    zoom = 1.0 + draws[:, 2] * (ZOOM * strength)
    shift_x = draws[:, 3] * (TRANSLATION * strength) * width
    shift_y = draws[:, 4] * (TRANSLATION * strength) * height
    transforms = projective_transforms(flip, angle, zoom, shift_x, shift_y, height, width)
    moved = tf.raw_ops.ImageProjectiveTransformV3(
        images=images, transforms=transforms, output_shape=shape[1:3], fill_value=0.0,
        interpolation="BILINEAR", fill_mode="REFLECT")
    factor = tf.reshape(1.0 + draws[:, 5] * (CONTRAST * strength), (-1, 1, 1, 1))
    mean = tf.reduce_mean(moved, axis=(1, 2), keepdims=True)
    return tf.clip_by_value((moved - mean) * factor + mean, 0.0, 255.0)
