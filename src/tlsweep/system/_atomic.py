"""Atomic file replacement, written once: a reader sees the old file or the whole new one."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# Names tried before giving up: each is random, so a clash means something else is wrong.
ATTEMPTS = 100


def create_beside(folder: Path, prefix: str, suffix: str) -> Path:
    """A new empty file in ``folder``, created as a plain ``open()`` creates one: mode 0o666
    less the umask (or the folder's default ACL). ``tempfile.mkstemp`` makes it 0o600, which
    the rename then gave the result files (Parquet, card.json), readable by their owner alone.
    The kernel applies the umask here, so it is never read or changed (``os.umask`` sets it
    for every thread of the process)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(ATTEMPTS):
        candidate = folder / f"{prefix}{secrets.token_hex(6)}{suffix}"
        try:
            os.close(os.open(candidate, flags, 0o666))
        except FileExistsError:
            continue
        return candidate
    raise FileExistsError(f"{folder}: no free name for a temporary {prefix}*{suffix} file "
                          f"after {ATTEMPTS} tries")


def folder_beside(parent: Path, prefix: str) -> Path:
    """A new empty folder in ``parent``, made as ``mkdir`` makes one: mode 0o777 less the umask.
    ``tempfile.mkdtemp`` makes it 0o700, which a rename into place gave the export folder,
    unreadable to colleagues sharing it."""
    for _ in range(ATTEMPTS):
        candidate = parent / f"{prefix}{secrets.token_hex(6)}"
        try:
            candidate.mkdir()
        except FileExistsError:
            continue
        return candidate
    raise FileExistsError(f"{parent}: no free name for a temporary {prefix}* folder after "
                          f"{ATTEMPTS} tries")


@contextmanager
def replacing(path: Path, suffix: str = ".tmp", staging: Path | None = None) -> Iterator[Path]:
    """Yield a temporary path in ``path``'s folder (or in ``staging``, a folder on the same
    file system); once the block ends without error it is renamed onto ``path`` (a rename
    within one file system is atomic), else removed. ``suffix``: what a writer that goes by
    the file's name needs (Keras saves only to ``.keras``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    folder = staging or path.parent
    folder.mkdir(parents=True, exist_ok=True)
    temporary = create_beside(folder, f".{path.name}.", suffix)
    try:
        yield temporary
        os.replace(temporary, path)
    finally:
        if temporary.exists():
            temporary.unlink()


def write_text(path: Path, text: str) -> None:
    with replacing(path) as temporary:
        temporary.write_text(text, encoding="utf-8")
