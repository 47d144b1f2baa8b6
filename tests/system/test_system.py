"""The mechanisms written once in tlsweep.system: atomic replacement, the process check and the
record mixin."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tlsweep.system import Record, process_alive, replacing, write_text


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "board.json"
    write_text(target, "old")
    with pytest.raises(RuntimeError), replacing(target) as temporary:
        temporary.write_text("half")
        raise RuntimeError("crash mid-write")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["board.json"]


def test_a_finished_write_replaces_the_file_from_a_staging_folder(tmp_path: Path) -> None:
    target, staging = tmp_path / "deep" / "model.keras", tmp_path / "staging"
    with replacing(target, suffix=".keras", staging=staging) as temporary:
        assert temporary.parent == staging and temporary.suffix == ".keras"
        temporary.write_bytes(b"weights")
    assert target.read_bytes() == b"weights" and not any(staging.iterdir())


def test_process_alive_tells_a_running_process_from_an_ended_one() -> None:
    assert process_alive(os.getpid())
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                           capture_output=True, text=True, check=True)
    assert not process_alive(int(ended.stdout))


def test_a_record_is_its_fields_as_a_dict() -> None:
    @dataclass(frozen=True)
    class Point(Record):
        x: float
        label: str

    assert Point(0.5, "a").as_dict() == {"x": 0.5, "label": "a"}
