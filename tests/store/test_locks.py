"""The storage's two file locks, now through ``filelock`` rather than fcntl (issue 38): the
budget lock and SQLite's schema lock each exclude another process, an existing study gets no
file written beside it, and nothing of the store needs fcntl (Windows has none). No
TensorFlow."""

from __future__ import annotations

import multiprocessing
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import optuna

from tlsweep.store import budget_lock, open_storage
from tlsweep.store._paths import STORAGE_FILE, sqlite_url
from tlsweep.store._storage import LOCK_FILE, _file_lock, schema_lock_file

HELD_S = 2.0


def _hold(lock: str, ready: str, witness: str, report: str) -> None:
    """In another process: take the lock, say so, keep it HELD_S seconds, and before letting
    go write down whether ``witness`` (made only inside the lock) appeared meanwhile."""
    with _file_lock(Path(lock)):
        Path(ready).touch()
        time.sleep(HELD_S)
        Path(report).write_text("entered" if Path(witness).exists() else "kept out")


def kept_out(lock: Path, witness: Path, tmp_path: Path, action: Callable[[], object]) -> str:
    """Run ``action``, which makes ``witness`` inside the lock, while another process holds
    ``lock`` from before it begins: what that process saw ("kept out" if the lock held)."""
    ready, report = tmp_path / "ready", tmp_path / "report"
    holder = multiprocessing.get_context("spawn").Process(
        target=_hold, args=(str(lock), str(ready), str(witness), str(report)))
    holder.start()
    try:
        deadline = time.monotonic() + 120
        while not ready.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert ready.exists(), "the holder never took the lock"
        action()
    finally:
        holder.join(60)
    assert witness.exists(), "the action did not run"
    return report.read_text()


def test_the_budget_lock_keeps_another_process_out(tmp_path: Path) -> None:
    witness = tmp_path / "inside"

    def take() -> None:
        with budget_lock(None, "demo", sqlite_url(tmp_path), tmp_path):
            witness.touch()

    assert kept_out(tmp_path / LOCK_FILE, witness, tmp_path, take) == "kept out"


def test_a_new_sqlite_study_is_created_under_its_schema_lock(tmp_path: Path) -> None:
    database = tmp_path / STORAGE_FILE
    seen = kept_out(schema_lock_file(database), database, tmp_path,
                    lambda: open_storage(sqlite_url(tmp_path)).engine.dispose())
    assert seen == "kept out"
    assert schema_lock_file(database).is_file()  # it stays: later openers wait on it too


def test_a_study_made_without_the_lock_file_is_opened_writing_nothing_beside_it(
        tmp_path: Path) -> None:
    """A study from an older tlsweep (or another tool) is read as it is: an inspection of it
    must not add a file to its folder."""
    storage = optuna.storages.RDBStorage(sqlite_url(tmp_path))
    optuna.create_study(study_name="old", storage=storage)
    storage.engine.dispose()
    before = sorted(p.name for p in tmp_path.iterdir())
    assert optuna.get_all_study_names(open_storage(sqlite_url(tmp_path))) == ["old"]
    assert sorted(p.name for p in tmp_path.iterdir()) == before == [STORAGE_FILE]


def test_the_store_and_the_command_line_start_without_fcntl(tmp_path: Path) -> None:
    """As on Windows: importing them, and taking the budget lock, needs no fcntl."""
    code = ("import sys; sys.modules['fcntl'] = None\n"
            "from pathlib import Path\n"
            "import tlsweep.cli._app, tlsweep.sweep\n"
            "from tlsweep.store import budget_lock\n"
            f"with budget_lock(None, 'demo', 'sqlite:///x', Path({str(tmp_path)!r})):\n"
            "    print('locked')\n")
    done = subprocess.run([sys.executable, "-W", "ignore", "-c", code], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.strip() == "locked", done.stderr[-2000:]
