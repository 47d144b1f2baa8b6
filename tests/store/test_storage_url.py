"""StorageURL: a URL's kind, decided in one place."""

from __future__ import annotations

from pathlib import Path

import pytest

from tlsweep.store import StorageURL


@pytest.mark.parametrize("url, kind, path, local", [
    ("sqlite:////tmp/r/study.db", "sqlite", Path("/tmp/r/study.db"), True),
    ("journal:///tmp/r/journal.log", "journal", Path("/tmp/r/journal.log"), True),
    ("postgresql://u:secret@db/tl", "postgresql", None, False),
    ("postgresql+psycopg2://u:secret@db/tl", "postgresql", None, False),
    ("mysql://u:secret@db/tl", "rdb", None, False),
])
def test_kind_path_and_locality(url: str, kind: str, path: Path | None, local: bool) -> None:
    found = StorageURL.parse(url)
    assert (found.kind, found.path, found.local) == (kind, path, local)
    assert "secret" not in found.masked
