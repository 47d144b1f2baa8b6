"""PIL's bilinear resize, inside the exported model.

Training, ``predict`` and ``evaluate`` shrink each image with ``Image.resize(size, BILINEAR)`` on
RGB uint8 (``datasets.decode_image``). The exported model takes raw images of any size, so it
must resize them itself, and only the same resize gives the probabilities ``tlsweep predict``
gives and the accuracy the study measured: Keras' antialiased ``Resizing`` is close but not
equal, and TFLite has no antialiased resize at all (issue 38). This is Pillow's algorithm
(``libImaging/Resample.c``) in Keras ops that every format carries, TFLite included:

* per axis, output pixel ``i`` of ``n`` from ``L`` input pixels has ``center = (i + 0.5) L / n``
  and ``support = max(L / n, 1)``; input pixel ``x`` weighs ``max(0, 1 - |x + 0.5 - center| /
  support)`` (a triangle widened by the reduction: PIL antialiases), normalised over the pixels
  inside the image and rounded to 22-bit fixed point, as PIL does;
* each pass sums ``pixel * weight`` in int32 (as PIL does, so exactly), adds half, shifts by 22
  bits and clips to 0..255: the image is uint8 again after each pass;
* Pillow 13 resamples vertically first when the height shrinks, and by more than twice as
  many pixels as the width does (found by comparing both orders with Pillow 13.0 on some 1,500
  random and swept shapes, no exception; the Resample.c read for this always went horizontal
  first); the rounding between passes makes the order visible, so both orders are computed and
  the one Pillow takes is kept.

A pass gathers the taps of each output pixel (at most ``2 ceil(support) + 1``), so its work
grows with the input's size, not with input size times output size as a dense matrix would.
Only ops that Keras serialises, SavedModel keeps and TFLite's builtins run are used; lengths come
from the image itself (a row summed, a strided slice), since a Keras input's shape is unknown
when the model is built. The weights are computed in float32 where PIL uses double: a weight can
round to the neighbouring 22-bit value, which moves a pixel by one level only when its sum lies
within ``pixel / 2**22`` of a rounding edge (measured on 146 random shapes: 15 values in 10**5
one level off, none at the 2x and 8x reductions, whose weights are exact binary fractions).
"""

from __future__ import annotations

from typing import Any

import numpy as np

PRECISION_BITS = 22  # Resample.c: 32 bits - 8 for the result - 2 of headroom


def pil_bilinear(images: Any, height: int, width: int) -> Any:
    """uint8 (batch, H, W, 3) of any H, W -> float32 (batch, height, width, 3), each value a
    whole number 0..255: what ``Image.resize((width, height), BILINEAR)`` gives per image."""
    from keras import ops

    pixels = ops.cast(images, "int32")
    rows, columns = _length(pixels, 1), _length(pixels, 2)
    horizontal_first = _pass(_pass(pixels, 2, width), 1, height)
    vertical_first = _pass(_pass(pixels, 1, height), 2, width)
    vertical = ops.logical_and(rows > height, rows - height > 2 * (columns - width))
    return ops.cast(ops.where(vertical, vertical_first, horizontal_first), "float32")


def _line(pixels: Any, axis: int, step: int = 1) -> Any:
    """Ones along ``axis`` (every ``step``-th pixel), whatever the batch, even an empty one."""
    from keras import ops

    index = [slice(None), slice(0, 1), slice(0, 1), slice(0, 1)]
    index[axis] = slice(None, None, step)
    line = ops.sum(ops.cast(pixels[tuple(index)], "float32"), axis=[a for a in range(4)
                                                                   if a != axis])
    return ops.ones_like(line)


def _length(pixels: Any, axis: int) -> Any:
    from keras import ops

    return ops.cast(ops.sum(_line(pixels, axis)), "int32")


def _taps(pixels: Any, axis: int, size: int) -> tuple[Any, Any]:
    """(indices, weights), both int32 (size, taps): the input pixels behind each output pixel
    and their fixed-point weights; taps = 2 ceil(L / size) + 1, Resample.c's ``ksize``."""
    from keras import ops

    length = _length(pixels, axis)
    stride = _line(pixels, axis, size)  # ceil(L / size) ones
    count = ops.concatenate([stride, stride, ops.sum(stride, keepdims=True) * 0 + 1])
    tap = ops.cast(ops.cumsum(count) - 1, "int32")[None, :]
    # In units of 1 / (2 size) input pixels every quantity below is a whole number, so int32
    # holds it exactly: center = (2i + 1) L, support = 2 max(L, size).
    odd = np.arange(1, 2 * size, 2, dtype=np.int32)[:, None]  # 2i + 1
    support = 2 * ops.maximum(length, size)
    first = ops.maximum(ops.floor_divide(length * odd - support + size, 2 * size), 0)
    x = first + tap
    triangle = ops.maximum(support - ops.abs((2 * x + 1) * size - length * odd), 0)
    triangle = ops.where(x < length, triangle, 0)  # beyond the image: left out, as PIL does
    share = ops.cast(triangle, "float32") / ops.cast(
        ops.sum(triangle, axis=1, keepdims=True), "float32")
    # Scaled in two steps: float16 LiteRT stores float constants as float16, whose largest
    # value (65504) is below 2**22, while 2**11 is exact in it.
    half = 2.0 ** (PRECISION_BITS // 2)
    weights = ops.cast(ops.floor(share * half * half + 0.5), "int32")
    return ops.minimum(x, length - 1), weights


def _pass(pixels: Any, axis: int, size: int) -> Any:
    """One of Resample.c's two passes: int32 0..255 in, int32 0..255 out, ``axis`` resized."""
    from keras import ops

    indices, weights = _taps(pixels, axis, size)
    gathered = ops.take(pixels, indices, axis=axis)  # the taps' axis follows ``axis``
    shape = (size, -1, 1) if axis == 2 else (size, -1, 1, 1)
    total = ops.sum(gathered * ops.reshape(weights, shape), axis=axis + 1)
    rounded = ops.floor_divide(total + 2 ** (PRECISION_BITS - 1), 2 ** PRECISION_BITS)
    return ops.clip(rounded, 0, 255)
