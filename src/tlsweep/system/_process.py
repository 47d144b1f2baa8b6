"""Whether a process of this machine is still running, and the cores this one may use: asked in
one place each."""

from __future__ import annotations

import os

from tlsweep.system import environment


def process_alive(pid: int) -> bool:
    """True while ``pid`` runs here. A process we may not signal (another user's) is alive."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def usable_cores() -> int:
    """The CPU cores this process may use: its affinity, capped by ``TLSWEEP_THREADS`` (the
    share a launcher gave it) when that is set."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else \
        os.cpu_count() or 1
    threads = os.environ.get(environment.THREADS, "0")
    return min(cores, int(threads)) if threads.isdigit() and int(threads) > 0 else cores
