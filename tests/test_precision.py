"""Mixed precision is chosen per device: on by default only where tensor cores gain from it."""

from __future__ import annotations

import pytest

from tlsweep.worker import precision_policy


@pytest.mark.parametrize("setting, gpus, expected", [
    ("auto", [], "float32"),  # CPU: float16 is emulated there, and slower
    ("auto", [(8, 0)], "mixed_float16"),  # A100
    ("auto", [(9, 0), (9, 0)], "mixed_float16"),
    ("auto", [(6, 1)], "float32"),  # no tensor cores
    ("auto", [(8, 6), (6, 1)], "float32"),  # one slow card decides
    ("on", [], "mixed_float16"),
    ("off", [(9, 0)], "float32"),
])
def test_precision_policy(setting: str, gpus: list[tuple[int, int]], expected: str) -> None:
    assert precision_policy(setting, gpus) == expected
