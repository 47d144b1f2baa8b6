"""The leaderboard at 80 and 100 columns keeps the columns that fit whole, the scores first, and
never splits a number across lines; --wide shows every column. No TensorFlow."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from rich.console import Console

from tests.inspection.test_diagnostics import stored_study
from tests.store.test_parquet import curve
from tlsweep.inspection import show_leaderboard


def board(tmp_path: Path) -> Path:
    return stored_study(tmp_path / "results", [curve([0.5, 0.6 + i / 100, 0.711 + i / 1000, 0.65])
                                               for i in range(12)])


def rendered(directory: Path, width: int, wide: bool = False) -> str:
    console = Console(width=width, record=True, color_system=None)
    show_leaderboard(directory, "fake", console, wide=wide)
    return console.export_text()


def table_lines(text: str) -> list[str]:
    """The table's rows: from the header to the blank line after the last row."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.split()[:2] == ["rank", "trial"])
    end = next((i for i in range(start + 2, len(lines)) if not lines[i].strip()), len(lines))
    return lines[start:end]


@pytest.mark.parametrize("width", [80, 100])
def test_a_narrow_terminal_gets_whole_numbers(tmp_path: Path, width: int) -> None:
    rows = table_lines(rendered(board(tmp_path), width))
    assert all(len(line) <= width for line in rows)
    header, data = rows[0].split(), [line for line in rows[2:] if line.strip()]
    assert header[:4] == ["rank", "trial", "state", "value"]
    assert len(data) == 12, "one line per trial: nothing folded onto a second line"
    for line in data:  # every number whole, on the row's one line
        assert re.search(r"\b0\.7\d*\b", line) and "…" not in line, line


def test_wide_shows_every_column(tmp_path: Path) -> None:
    directory = board(tmp_path)
    narrow = table_lines(rendered(directory, 80))[0].split()
    wide = table_lines(rendered(directory, 400, wide=True))[0].split()
    assert set(narrow) < set(wide) and {"unfreeze", "ft_lr", "best_phase"} <= set(wide)
