"""Where TensorFlow's chatter goes: a study's log file, never the user's terminal.

TensorFlow's C++ runtime and absl write their start-up lines (oneDNN, CPU features, CUDA) to
file descriptor 2 directly, below Python, so replacing ``sys.stderr`` cannot catch them: fd 2
itself is pointed at the log file, before TensorFlow is imported. ``sys.stderr`` writes to fd 2,
so Keras' and Python's warnings, and a traceback that kills the process, land there too. Every
process that imports TensorFlow appends to one file per study, after a header naming its role
and pid, and a message about a dead one names the file. Import-light: no TensorFlow here.
"""

from __future__ import annotations

import contextlib
import faulthandler
import os
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

LOG_FILE = "tlsweep.log"


def log_path(directory: Path) -> Path:
    """The log file of the study whose results are in ``directory``."""
    return directory / LOG_FILE


def see_log(path: Path) -> str:
    """The words a death message ends with, so the user knows where its last words are."""
    return f" (its log: {path})"


def _open_log(path: Path, role: str) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    # O_APPEND: the processes of a study share the file, and each write lands at its end.
    log = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    stamp = datetime.now().isoformat(timespec="seconds")
    os.write(log, f"=== {stamp} {role}, pid {os.getpid()} (parent {os.getppid()})\n".encode())
    return log


def _point(fds: tuple[int, ...], target: int) -> None:
    # Python's own buffers first, so that nothing written before goes to the new place.
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(AttributeError, OSError, ValueError):
            stream.flush()
    for fd in fds:
        os.dup2(target, fd)


def redirect_to_log(path: Path, role: str) -> None:
    """For a process that never talks to the user itself (a trial worker, the final stage: its
    words travel over a pipe): from now on its fds 1 and 2 append to ``path``."""
    log = _open_log(path, role)
    _point((1, 2), log)
    os.close(log)
    # A segfault or an abort then leaves the Python stack in the log the death message names.
    faulthandler.enable()


@contextlib.contextmanager
def stderr_to_log(path: Path, role: str) -> Iterator[None]:
    """Within the block, fd 2 appends to ``path``; for a process that goes on talking to the user
    afterwards. fd 1 stays: the user's console may be writing to it."""
    log = _open_log(path, role)
    saved = os.dup(2)
    try:
        _point((2,), log)
        yield
    finally:
        _point((2,), saved)
        os.close(saved)
        os.close(log)
