"""The log redirect (``tflog``), in a tiny subprocess that writes as TensorFlow's C++ runtime does:
straight to file descriptor 2. No TensorFlow needed."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from tlsweep.system import log_path
from tlsweep.system._tflog import LOG_FILE

WHOLE_PROCESS = """
import os, sys, warnings
from pathlib import Path
from tlsweep.system import redirect_to_log
print("before", flush=True)
redirect_to_log(Path(sys.argv[1]), "test worker")
os.write(2, b"I0000 00:00:1.0  1 port.cc:153] oneDNN custom operations are on\\n")
os.write(1, b"raw stdout\\n")
print("python stdout")
print("python stderr", file=sys.stderr)
warnings.warn("a keras warning")
import ctypes
ctypes.string_at(0)  # a segfault: its stack goes to the log too
"""

SCOPED = """
import os, sys
from pathlib import Path
from tlsweep.system import stderr_to_log
with stderr_to_log(Path(sys.argv[1]), "test pretraining"):
    os.write(2, b"inside the block\\n")
    print("stdout stays", flush=True)
os.write(2, b"after the block\\n")
"""


def run(script: str, log: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", script, str(log)], capture_output=True,
                          text=True, timeout=60)


def test_a_redirected_process_writes_nothing_to_the_terminal(tmp_path: Path) -> None:
    log = log_path(tmp_path / "study")  # the folder is made if needed
    done = run(WHOLE_PROCESS, log)
    assert done.returncode == -signal.SIGSEGV
    assert done.stdout == "before\n" and done.stderr == ""
    text = log.read_text()
    assert log.name == LOG_FILE and text.startswith("=== ")
    assert "test worker, pid " in text.splitlines()[0]
    for line in ("oneDNN custom operations are on", "raw stdout", "python stdout",
                 "python stderr", "UserWarning: a keras warning", "Segmentation fault"):
        assert line in text, line


def test_processes_append_to_one_log(tmp_path: Path) -> None:
    log = log_path(tmp_path)
    run(WHOLE_PROCESS, log)
    run(WHOLE_PROCESS, log)
    headers = [line for line in log.read_text().splitlines() if line.startswith("=== ")]
    assert len(headers) == 2 and headers[0] != headers[1]  # each with its own pid


def test_a_scoped_redirect_gives_fd_2_back(tmp_path: Path) -> None:
    log = log_path(tmp_path)
    done = run(SCOPED, log)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "stdout stays\n" and done.stderr == "after the block\n"
    text = log.read_text()
    assert "test pretraining, pid " in text and "inside the block" in text
    assert "after the block" not in text
