"""The SQLite database of a DiskCache: one connection per thread and per process, opened lazily.

Connections are opened in WAL mode with a busy timeout, prepared (tables created) with
retries while other processes open the same file, reopened after a fork (inherited ones are
parked, never closed), and closed with their thread. Errors become ``CacheStoreError``.
"""

from __future__ import annotations

import os
import re
import sqlite3
import threading
import time
import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from nestflow.errors import CacheStoreError

__all__ = ["BUSY_TIMEOUT", "SqliteDatabase"]

BUSY_TIMEOUT = 30.0  # seconds a writer waits for another one
MMAP_BYTES = 256 * 1024 * 1024  # address space, not memory: pages are the file's, shared
_KEY = re.compile(r"[0-9A-Za-z_][0-9A-Za-z_.-]*")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    id INTEGER NOT NULL UNIQUE, signature TEXT NOT NULL, blob_key TEXT NOT NULL,
    node TEXT NOT NULL, outputs TEXT NOT NULL, size INTEGER NOT NULL,
    serializer TEXT NOT NULL, checksum TEXT NOT NULL, created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS blobs (key TEXT PRIMARY KEY, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS code (key TEXT PRIMARY KEY, analysis BLOB NOT NULL);
"""


# Connections inherited through fork must be neither used nor closed in the child (closing one
# can checkpoint or unlink the parent's WAL); they are parked here for the child's lifetime.
_INHERITED: list[sqlite3.Connection] = []


def _prepare(conn: sqlite3.Connection, deadline: float) -> None:
    """Switch to WAL and create the tables, retrying while another process does the same.

    SQLite reports a journal-mode change that meets another connection as "locked" at once,
    without waiting for the busy timeout, so processes opening a new cache together retry.
    """
    while True:
        try:
            if conn.execute("PRAGMA journal_mode").fetchone() != ("wal",):
                conn.execute("PRAGMA journal_mode = WAL")
            conn.executescript(_SCHEMA)
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.005)


class _Handle:
    """Owns one thread's connection, so it closes when the thread's local storage goes away."""

    __slots__ = ("__weakref__", "conn")

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn: sqlite3.Connection | None = conn

    def close(self) -> None:
        conn, self.conn = self.conn, None
        if conn is not None:
            conn.close()

    def __del__(self) -> None:
        self.close()


class SqliteDatabase:
    """The SQLite file of a DiskCache: a connection per thread and per process, opened lazily."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self._reset()

    def _reset(self) -> None:
        self._pid = os.getpid()
        self._local = threading.local()
        self._handles: weakref.WeakSet[_Handle] = weakref.WeakSet()
        self._handles_lock = threading.Lock()

    def __getstate__(self) -> dict[str, Path]:
        return {"root": self.root}

    def __setstate__(self, state: dict[str, Path]) -> None:
        self.root = state["root"]
        self._reset()

    def connection(self) -> sqlite3.Connection:
        """This thread's connection, opened on first use (and again after a fork)."""
        if self._pid != os.getpid():
            for handle in list(self._handles):
                if handle.conn is not None:
                    _INHERITED.append(handle.conn)
                handle.conn = None
            self._reset()
        current: _Handle | None = getattr(self._local, "handle", None)
        conn = None if current is None else current.conn
        if conn is None:
            conn = self._open()
            current = _Handle(conn)
            self._local.handle = current
            with self._handles_lock:
                self._handles.add(current)
        return conn

    def _open(self) -> sqlite3.Connection:
        with self.failures("open its database"):
            self.root.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(
                self.root / "cache.sqlite3",
                timeout=BUSY_TIMEOUT,
                isolation_level=None,
                check_same_thread=False,  # closed from other threads by close() and GC
            )
            try:
                conn.execute("PRAGMA synchronous = NORMAL")
                # Reads through a memory map: lookups spread over a big cache stay cheap.
                conn.execute(f"PRAGMA mmap_size = {MMAP_BYTES}")
                _prepare(conn, time.monotonic() + BUSY_TIMEOUT)
            except BaseException:
                conn.close()
                raise
        return conn

    def close(self) -> None:
        """Close every connection of this process; the next use opens new ones."""
        if self._pid == os.getpid():
            with self._handles_lock:
                handles = list(self._handles)
            for handle in handles:
                handle.close()

    @contextmanager
    def failures(self, action: str) -> Iterator[None]:
        """Turn SQLite and file-system errors into a ``CacheStoreError`` saying what to do."""
        try:
            yield
        except CacheStoreError:
            raise
        except (sqlite3.Error, OSError) as exc:
            raise self.error(action, exc) from exc

    def error(self, action: str, exc: BaseException) -> CacheStoreError:
        """The error saying that ``action`` failed, and what to do about it."""
        return CacheStoreError(
            f"DiskCache at '{self.root}' could not {action}: {type(exc).__name__}: {exc}. "
            "Expected a writable directory on a local disk. Fix: check its permissions and "
            "free space, or point the cache at another directory."
        )

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, taken up front so concurrent writers queue instead of failing."""
        conn = self.connection()
        with self.failures("write"):
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                # A failed COMMIT (disk full, I/O error) can leave the transaction open,
                # holding the write lock: roll back so the connection stays usable.
                if conn.in_transaction:
                    conn.rollback()
                raise

    def query(self, sql: str, params: Sequence[object] = ()) -> list[Any]:
        """Rows of one read statement."""
        conn = self.connection()
        try:  # not `with self.failures(...)`: this runs for every lookup, and try is cheaper
            return conn.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise self.error("read", exc) from exc

    def file_path(self, key: str) -> Path:
        """Where the value under ``key`` lives when it is too big to be inline."""
        if not _KEY.fullmatch(key):
            raise ValueError(
                f"blob key {key!r} cannot name a file: use letters, digits, '_', '.' and '-', "
                "not starting with '.' or '-'."
            )
        return self.root / "blobs" / key[-2:] / key
