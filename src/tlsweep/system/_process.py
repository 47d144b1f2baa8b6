"""Whether a process of this machine is still running, the cores this one may use, and its
resident memory: asked in one place each."""

from __future__ import annotations

import os
import resource

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


def rss_mb() -> float:
    """This process's resident memory now, in MiB (Linux's /proc; elsewhere its peak)."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return peak_rss_mb()


def peak_rss_mb() -> float:
    """The most resident memory this process has held, in MiB (Linux counts KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
