"""The study lease: a live holder refuses a second run; a dead holder's lease is stale."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tlsweep.sweep import Lease
from tlsweep.sweep._lease import StudyBusy


def _lease_of(directory: Path, pid: int) -> None:
    (directory / "lease.json").write_text(json.dumps({"pid": pid, "host": socket.gethostname(),
                                                      "since": 0.0}))


def test_acquire_then_release_leaves_no_lease(tmp_path: Path) -> None:
    lease = Lease(tmp_path)
    lease.acquire("s")
    assert lease.holder() is not None and lease.holder()["host"] == socket.gethostname()
    lease.release()
    assert lease.holder() is None and not lease.path.exists()


def test_a_live_holder_refuses_another_process(tmp_path: Path) -> None:
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        _lease_of(tmp_path, holder.pid)
        with pytest.raises(StudyBusy, match=str(holder.pid)):
            Lease(tmp_path).acquire("s")
        Lease(tmp_path).release()  # not ours: left in place
        assert Lease(tmp_path).holder()["pid"] == holder.pid
    finally:
        holder.kill()
        holder.wait()


def test_a_dead_holders_lease_is_stale_and_taken_over(tmp_path: Path) -> None:
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                           capture_output=True, text=True, check=True)
    _lease_of(tmp_path, int(ended.stdout))
    lease = Lease(tmp_path)
    assert lease.holder() is None
    lease.acquire("s")
    assert lease.holder() is not None
