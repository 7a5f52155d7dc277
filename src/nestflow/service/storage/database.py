"""The database behind the service store: one engine per URL, and its transactions.

SQLite (``sqlite:///path``, the default) is embedded and needs no setup. It runs in WAL mode,
so readers never wait for a writer, with a busy timeout, so writers queue for the lock. A
writing transaction starts with ``BEGIN IMMEDIATE``: a deferred transaction that read first
and then writes cannot wait for the lock (SQLite answers "database is locked" at once), while
an immediate one takes it before reading. Reading transactions start with a plain ``BEGIN``.

PostgreSQL (``postgresql://...``) is reached through psycopg 3 (extra ``postgres``), under
READ COMMITTED; writers that re-read what they change lock those rows (``FOR UPDATE``).

One ``Database`` is safe to share between threads: every transaction checks out its own
connection from the engine's pool.
"""

from __future__ import annotations

import contextlib
import importlib
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Final

from sqlalchemy import create_engine, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

if TYPE_CHECKING:
    from sqlalchemy import Connection, Engine, Table

__all__ = ["Database", "redact_url", "upsert"]

BUSY_TIMEOUT_S: Final = 30
"""How long a SQLite writer waits for another process's write lock before failing."""

POOL_SIZE: Final = 16
"""Connections kept open per store: enough for the threads of a service (its run workers and
its checkers) to each hold one; up to as many more are opened for a burst."""
_WRITE: Final = "nestflow_write"  # execution option: this transaction writes
_SQLITE_DRIVERS: Final = frozenset({"sqlite", "sqlite+pysqlite"})
_POSTGRES_DRIVERS: Final = frozenset({"postgresql", "postgres", "postgresql+psycopg"})
_FORMS: Final = "sqlite:///path/to/file.db or postgresql://user:password@host:port/database"


class Database:
    """An engine for a store URL, with reading and writing transactions."""

    def __init__(self, url: str) -> None:
        parsed = _parse(url)
        self.url = parsed.render_as_string(hide_password=True)
        self._turn: contextlib.AbstractContextManager[Any]
        if parsed.drivername in _SQLITE_DRIVERS:
            self.engine = _sqlite_engine(parsed)
            self._turn = threading.Lock()
        else:
            self.engine = _postgres_engine(parsed)
            self._turn = contextlib.nullcontext()

    @property
    def is_postgres(self) -> bool:
        """Whether this is a PostgreSQL database (else SQLite)."""
        return self.engine.dialect.name == "postgresql"

    @contextmanager
    def reading(self) -> Iterator[Connection]:
        """A transaction that only reads; it sees one consistent state."""
        with self.engine.connect() as connection, connection.begin():
            yield connection

    @contextmanager
    def writing(self) -> Iterator[Connection]:
        """A transaction that writes, committed when the block ends without an exception.

        On SQLite the threads of this process take turns first (one lock): a writer that
        meets SQLite's own lock waits in its busy handler, which sleeps in growing steps,
        while a thread waiting here starts the moment the writer before it commits.
        """
        with self._turn, self.engine.connect() as connection:
            connection.execution_options(**{_WRITE: True})
            with connection.begin():
                yield connection

    def close(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()


def upsert(connection: Connection, table: Table) -> postgresql.Insert | sqlite.Insert:
    """An INSERT of the connection's dialect: it has ``on_conflict_do_nothing``/``_do_update``."""
    is_postgres = connection.dialect.name == "postgresql"
    return postgresql.insert(table) if is_postgres else sqlite.insert(table)


def redact_url(url: str) -> str:
    """``url`` without its password, for messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparseable URL>"


def _parse(url: str) -> URL:
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ValueError(f"{redact_url(url)} is not a database URL. Use {_FORMS}.") from None
    if parsed.drivername not in _SQLITE_DRIVERS | _POSTGRES_DRIVERS:
        raise ValueError(
            f"The service store runs on SQLite or PostgreSQL (through psycopg), not "
            f"{parsed.drivername!r}. Use {_FORMS}."
        )
    if parsed.drivername in _SQLITE_DRIVERS and parsed.database in (None, "", ":memory:"):
        raise ValueError(
            "The service store needs a SQLite file that every thread and process can open, "
            f"not an in-memory database ({redact_url(url)}). Use sqlite:///path/to/file.db."
        )
    return parsed


def _sqlite_engine(url: URL) -> Engine:
    engine = create_engine(
        url.set(drivername="sqlite+pysqlite"),
        connect_args={"timeout": BUSY_TIMEOUT_S, "check_same_thread": False},
        # Kept open for every thread that may use the store at once (the service's workers
        # and checkers): a connection past the pool's size is closed on return, and opening
        # one again (with its pragmas) costs more than the statements of a call.
        pool_size=POOL_SIZE,
        max_overflow=POOL_SIZE,
    )
    event.listen(engine, "connect", _prepare_sqlite)
    event.listen(engine, "begin", _begin_sqlite)
    return engine


def _prepare_sqlite(dbapi_connection: Any, _record: Any) -> None:
    # The sqlite3 module would open transactions by itself, deferred; _begin_sqlite does it.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_S * 1000}")
    _switch_to_wal(cursor)
    # Safe in WAL mode: a crash may lose the last commits, never corrupt the file.
    cursor.execute("PRAGMA synchronous = NORMAL")
    cursor.execute("PRAGMA foreign_keys = ON")
    cursor.close()


def _switch_to_wal(cursor: Any) -> None:
    """Put the file in WAL mode, retrying while another process opens it too.

    SQLite reports a journal-mode change that meets another connection as "locked" at once,
    without waiting for the busy timeout, so processes opening a new file together retry.
    """
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    while cursor.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.005)


def _begin_sqlite(connection: Connection) -> None:
    writes = connection.get_execution_options().get(_WRITE, False)
    # On the driver's connection itself: a statement with nothing to bind or read back
    # needs none of SQLAlchemy's execution machinery, and every call begins two of these.
    connection.connection.dbapi_connection.execute("BEGIN IMMEDIATE" if writes else "BEGIN")  # type: ignore[union-attr]


def _postgres_engine(url: URL) -> Engine:
    try:
        importlib.import_module("psycopg")
    except ImportError as exc:
        raise ImportError(
            "The service store on PostgreSQL needs psycopg, which is not installed. "
            "Install it with: pip install 'nestflow[postgres]'"
        ) from exc
    # Pre-ping: a pooled connection that a PostgreSQL restart dropped is replaced, not used.
    return create_engine(
        url.set(drivername="postgresql+psycopg"),
        pool_pre_ping=True,
        pool_size=POOL_SIZE,
        max_overflow=POOL_SIZE,
    )
