"""Which Optuna storage a study lives in, opened one way for every command.

- one worker on one machine: SQLite, ``results/<study>/study.db``;
- several workers on one machine: Optuna's JournalStorage file, ``results/<study>/journal.log``
  (append-only with a file lock: no "database is locked" however many processes write);
- several machines: PostgreSQL (``postgresql://user:password@host/db``), with Optuna's heartbeat.

URLs: ``sqlite:///path``, ``journal:///path/journal.log`` (our name for the journal file) and any
SQLAlchemy URL Optuna's RDBStorage takes. A password in a URL is never printed: see ``_secrets``.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import optuna
from filelock import FileLock

from tlsweep.errors import ConfigError
from tlsweep.store._paths import STORAGE_FILE, sqlite_url
from tlsweep.store._secrets import mask, remember_storage, scrub

JOURNAL_FILE = "journal.log"
JOURNAL_SCHEME = "journal://"
LOCK_FILE = ".budget.lock"


def journal_url(directory: Path) -> str:
    return f"{JOURNAL_SCHEME}{(directory / JOURNAL_FILE).resolve()}"


def local_url(directory: Path, workers: int) -> str:
    return journal_url(directory) if workers > 1 else sqlite_url(directory)


def existing_local_url(directory: Path) -> str | None:
    if (directory / JOURNAL_FILE).is_file():
        return journal_url(directory)
    if (directory / STORAGE_FILE).is_file():
        return sqlite_url(directory)
    return None


@dataclass(frozen=True)
class StorageURL:
    """A storage URL, read once: which kind of storage it names and, for a local one, its file.
    Every question about a URL's kind is answered here, never by a prefix test elsewhere."""

    url: str
    kind: Literal["sqlite", "journal", "postgresql", "rdb"]

    @classmethod
    def parse(cls, url: str) -> StorageURL:
        if url.startswith(JOURNAL_SCHEME):
            return cls(url, "journal")
        if url.startswith("sqlite:"):
            return cls(url, "sqlite")
        if url.startswith(("postgresql:", "postgresql+", "postgres:")):
            return cls(url, "postgresql")
        return cls(url, "rdb")  # any other SQLAlchemy URL Optuna's RDBStorage takes

    @property
    def path(self) -> Path | None:
        """The file of a local storage (SQLite, journal), else None."""
        if self.kind == "journal":
            return Path(self.url.removeprefix(JOURNAL_SCHEME))
        if self.kind == "sqlite" and self.url.startswith("sqlite:///"):
            return Path(self.url.removeprefix("sqlite:///"))
        return None

    @property
    def local(self) -> bool:
        """On this machine's disk: workers elsewhere cannot reach it."""
        return self.kind in ("journal", "sqlite")

    @property
    def masked(self) -> str:
        return mask(self.url)


def local_path(url: str) -> Path | None:
    return StorageURL.parse(url).path


def is_local(url: str) -> bool:
    return StorageURL.parse(url).local


def open_storage(url: str, heartbeat_interval: int = 30,
                 grace_period: int = 120) -> optuna.storages.BaseStorage:
    """Open ``url``. RDB storages keep Optuna's heartbeat: a trial whose process stops beating
    for ``grace_period`` seconds is stale (``study.recover_stale`` fails and re-queues it)."""
    remember_storage(url)  # before any driver speaks: the CLI scrubs what it prints with it
    where = StorageURL.parse(url)
    require_driver(where)
    if where.kind == "journal":
        path = str(where.path)
        lock = optuna.storages.journal.JournalFileOpenLock(path)
        return optuna.storages.JournalStorage(
            optuna.storages.journal.JournalFileBackend(path, lock_obj=lock))
    try:
        with _schema_lock(url):
            return optuna.storages.RDBStorage(
                url, heartbeat_interval=heartbeat_interval, grace_period=grace_period,
                engine_kwargs=None if where.kind == "sqlite" else {"pool_pre_ping": True})
    except Exception as exc:
        cause = f"{type(exc).__name__}: {scrub(str(exc), url).splitlines()[0]}"
        path = where.path
        if path is not None and path.exists():
            raise ConfigError(f"{path}: the study's storage file cannot be read ({cause}). It is "
                              f"damaged or not an Optuna storage: restore it from a backup, or "
                              f"start a new study.") from None
        raise ConfigError(f"--storage {mask(url)}: cannot open the storage ({cause}). Check the "
                          f"URL, the server and that its driver is installed.") from None


def require_driver(where: StorageURL) -> None:
    """A database URL whose driver is not installed is refused before anything is opened,
    naming what to install: SQLAlchemy's own error names a module, not the extra."""
    if where.local:
        return
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(where.url)
        dialect = parsed.get_dialect()
        # import_dbapi since SQLAlchemy 2.0; dbapi before (Optuna takes 1.4 too).
        load_driver = getattr(dialect, "import_dbapi", None) or dialect.dbapi
        load_driver()
    except (ArgumentError, ValueError):  # ValueError: a port that is no number
        return  # not a URL SQLAlchemy reads: RDBStorage says so below, with the URL masked
    except ImportError as exc:
        driver = parsed.get_driver_name()
        if where.kind == "postgresql" and driver == "psycopg":
            fix = "pip install 'tlsweep[postgres]'"
        elif where.kind == "postgresql":
            fix = (f"install {exc.name or driver}, or use psycopg 3: pip install "
                   f"'tlsweep[postgres]' and write postgresql+psycopg://")
        else:
            fix = f"install the {exc.name or driver} module of {parsed.drivername}://"
        raise ConfigError(f"--storage {where.masked}: its database driver is not installed "
                          f"here ({exc.name or driver} is missing): {fix}.") from None


# Workers started together (a Slurm array, a Kubernetes Job) on an empty database all create
# Optuna's tables at once, and PostgreSQL refuses all but one (a duplicate key in pg_type).
SCHEMA_LOCK = "tlsweep:optuna-schema"


def schema_lock_file(database: Path) -> Path:
    """The lock file of a SQLite database's schema: beside it, hidden (``.study.db.lock``)."""
    return database.with_name(f".{database.name}.lock")


def _sqlite_schema_needs_lock(database: Path) -> bool:
    """Whether opening ``database`` must wait for the schema lock: while the database does not
    exist, or once its lock file does. Its creator makes the lock file before the database, and
    on POSIX both stay, so a process that sees the database also sees the lock file; checked in
    this order, no creation goes unlocked. (On Windows filelock removes the file on release,
    once the schema is whole.) A study made before the lock file existed, or by another tool,
    is opened as it is, and nothing is written beside it."""
    if not database.exists():
        return True
    return schema_lock_file(database).exists()


@contextlib.contextmanager
def _schema_lock(url: str) -> Iterator[None]:
    """One process at a time opens (and, the first time, creates) the schema: on PostgreSQL
    under an advisory lock, on SQLite under a lock file beside the database (two `run`s of one
    new study otherwise race to create its tables)."""
    where = StorageURL.parse(url)
    path = where.path
    if path is not None and where.kind == "sqlite" and path.parent.is_dir():
        if not _sqlite_schema_needs_lock(path):
            yield
            return
        with _file_lock(schema_lock_file(path)):
            yield
        return
    if where.kind != "postgresql":
        yield
        return
    import sqlalchemy

    engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool)
    try:
        with _advisory_lock(engine, SCHEMA_LOCK):
            yield
    finally:
        engine.dispose()


# ----------------------------------------------------------------------------- the budget lock
@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """An exclusive lock on ``path`` across processes (and threads), waited for without a
    limit; not re-entrant: each use takes it anew. ``filelock`` takes flock on POSIX, as
    tlsweep did itself before (so an older version's workers still share the budget lock),
    and the Windows lock where there is no fcntl."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(path):
        yield


@contextlib.contextmanager
def _advisory_lock(storage: Any, key: str) -> Iterator[None]:
    from sqlalchemy import text

    number = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big", signed=True)
    # A storage's engine (a study wraps the storage in a cache), or an engine itself.
    backend = getattr(storage, "_backend", storage)
    engine = getattr(backend, "engine", backend)
    with engine.connect() as connection:
        connection.execute(text("SELECT pg_advisory_lock(:k)"), {"k": number})
        try:
            yield
        finally:
            connection.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": number})
            connection.commit()


def budget_lock(storage: Any, study: str, url: str,
                directory: Path) -> contextlib.AbstractContextManager:
    """A lock every worker of the study shares while it decides whether to start a trial, so
    the budget is exact: a PostgreSQL advisory lock across machines, else a file lock."""
    if StorageURL.parse(url).kind == "postgresql":
        return _advisory_lock(storage, f"tlsweep:{study}")
    return _file_lock(directory / LOCK_FILE)
