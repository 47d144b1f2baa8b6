"""Atomic file replacement, written once: a reader sees the old file or the whole new one."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def replacing(path: Path, suffix: str = ".tmp", staging: Path | None = None) -> Iterator[Path]:
    """Yield a temporary path in ``path``'s folder (or in ``staging``, a folder on the same
    file system); once the block ends without error it is renamed onto ``path`` (a rename
    within one file system is atomic), else removed. ``suffix``: what a writer that goes by
    the file's name needs (Keras saves only to ``.keras``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    folder = staging or path.parent
    folder.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=suffix)
    os.close(handle)
    try:
        yield Path(temporary)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


def write_text(path: Path, text: str) -> None:
    with replacing(path) as temporary:
        temporary.write_text(text, encoding="utf-8")
