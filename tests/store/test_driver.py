"""A database URL whose driver is not installed: refused by ``open_storage`` before anything is
opened, naming what to install (``tlsweep[postgres]`` for psycopg 3), never the password. The
missing driver is simulated by ``None`` in ``sys.modules``; no server is needed."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tlsweep.errors import ConfigError
from tlsweep.store import open_storage

URL = "postgresql://tlsweep:Secret42@127.0.0.1:9/tl"  # port 9: nothing listens


def test_postgresql_without_psycopg_names_the_postgres_extra(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)
    for url in (URL, URL.replace("postgresql:", "postgresql+psycopg:")):
        with pytest.raises(ConfigError) as caught:
            open_storage(url)
        message = str(caught.value)
        assert message.startswith("--storage postgresql")
        assert "pip install 'tlsweep[postgres]'" in message and "psycopg is missing" in message
        assert "Secret42" not in message


def test_another_postgresql_driver_is_named_with_the_extra_as_the_other_way(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "psycopg2", None)
    with pytest.raises(ConfigError) as caught:
        open_storage(URL.replace("postgresql:", "postgresql+psycopg2:"))
    message = str(caught.value)
    assert "install psycopg2" in message and "postgresql+psycopg://" in message
    assert "tlsweep[postgres]" in message and "Secret42" not in message


def test_an_installed_driver_goes_on_to_the_server(monkeypatch: pytest.MonkeyPatch) -> None:
    """With psycopg there, the error is the server's (nothing listens on port 9), as before."""
    pytest.importorskip("psycopg")
    with pytest.raises(ConfigError) as caught:
        open_storage(URL)
    assert "cannot open the storage" in str(caught.value)
    assert "tlsweep[postgres]" not in str(caught.value)


def test_local_storages_need_no_driver(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)
    open_storage(f"sqlite:///{tmp_path / 'study.db'}")
    open_storage(f"journal://{tmp_path / 'journal.log'}")
