"""A study's lease: which live process runs it. It tells a live run from a dead one on every
storage, including those that keep no heartbeat (SQLite, the journal file)."""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path
from typing import Any

from tlsweep.errors import TlsweepError
from tlsweep.system import process_alive, write_text

LEASE_FILE = "lease.json"


class StudyBusy(TlsweepError):
    """Another live process is running this study."""


class Lease:
    """A study's lease file: who runs it. A lease whose process is gone is stale."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / LEASE_FILE

    def holder(self) -> dict[str, Any] | None:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return None
        same_host = data.get("host") == socket.gethostname()
        if same_host and not process_alive(int(data.get("pid", -1))):
            return None
        return data

    def acquire(self, study: str) -> None:
        holder = self.holder()
        if holder is not None and holder.get("pid") != os.getpid():
            raise StudyBusy(f"{self.path}: study {study!r} is being run by process "
                            f"{holder['pid']} on {holder['host']}. Wait for it, or stop it first.")
        write_text(self.path, json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                          "since": time.time()}))

    def release(self) -> None:
        holder = self.holder()
        if holder is not None and holder.get("pid") == os.getpid():
            self.path.unlink(missing_ok=True)
