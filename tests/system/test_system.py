"""The mechanisms written once in tlsweep.system: atomic replacement, the process check and the
record mixin."""

from __future__ import annotations

import os
import stat
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


@pytest.mark.skipif(os.name == "nt", reason="POSIX permission bits")
@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)],
                         ids=["umask-022", "umask-077", "umask-002"])
def test_a_replaced_file_has_the_mode_a_plain_open_gives(tmp_path: Path, umask: int,
                                                         mode: int) -> None:
    """Results are shared like any file: a temporary from tempfile.mkstemp is 0o600, and the
    rename used to hand that mode to the Parquet files and card.json (issue 38)."""
    previous = os.umask(umask)
    try:
        write_text(tmp_path / "card.json", "{}")
        with replacing(tmp_path / "model.keras", suffix=".keras",
                       staging=tmp_path / "staging") as temporary:
            temporary.write_bytes(b"weights")
        (tmp_path / "plain.txt").write_text("as open() makes it")
    finally:
        os.umask(previous)
    modes = {name: stat.S_IMODE((tmp_path / name).stat().st_mode)
             for name in ("card.json", "model.keras", "plain.txt")}
    assert modes == dict.fromkeys(modes, mode)
