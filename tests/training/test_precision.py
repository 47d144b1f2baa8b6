"""Mixed precision is chosen per device: on by default only where tensor cores gain from it
(Volta and Turing; later GPUs already run float32 on tensor cores as TF32)."""

from __future__ import annotations

import pytest

from tlsweep.training._worker import precision_policy


@pytest.mark.parametrize("setting, gpus, expected", [
    ("auto", [], "float32"),  # CPU: float16 is emulated there, and slower
    ("auto", [(7, 0)], "mixed_float16"),  # V100
    ("auto", [(7, 5), (7, 5)], "mixed_float16"),  # T4s
    ("auto", [(8, 0)], "float32"),  # A100: TF32 already
    ("auto", [(9, 0)], "float32"),  # H100: measured no gain
    ("auto", [(6, 1)], "float32"),  # no tensor cores
    ("auto", [(7, 0), (6, 1)], "float32"),  # one card without the gain decides
    ("on", [], "mixed_float16"),
    ("off", [(9, 0)], "float32"),
])
def test_precision_policy(setting: str, gpus: list[tuple[int, int]], expected: str) -> None:
    assert precision_policy(setting, gpus) == expected
