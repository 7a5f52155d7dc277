"""The SQLite database of a DiskCache: one connection per thread and per process, opened lazily.

Connections are opened in WAL mode with a busy timeout, prepared (tables created) with
retries while other processes open the same file, reopened after a fork (inherited ones are
parked, never closed), and closed with their thread. Errors become ``CacheStoreError``, except
for three kinds of trouble, which heal:

* A damaged file (SQLite says "file is not a database" or "database disk image is
  malformed": a bad header, garbage, truncation) is moved aside to
  ``cache.sqlite3.corrupt-<time>`` with one ``CacheWarning`` naming it, and a fresh database
  takes its place. A read that met the damage is retried on it; a write raises
  ``StoreReplaced``, which ``Cache`` retries.
* A folder this process cannot write to is opened read-only, with one ``CacheWarning`` saying
  nothing will be stored: ``mode=ro`` while a writer's ``-shm`` index exists, else
  ``immutable=1`` (the file is complete). A read-only connection is reopened once per run,
  so a writer that started, or write access given back, shows from the next run on.
* When the folder's generation marker changes (cleared, or the file replaced, elsewhere),
  every thread reconnects at its next use, so no connection stays on a moved or deleted file.
"""

from __future__ import annotations

import os
import re
import sqlite3
import threading
import time
import warnings
import weakref
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from nestflow.cache.entries import StoreReplaced
from nestflow.cache.folder import (
    folder_lock,
    move_aside,
    read_generation,
    renew_generation,
    unwritable,
)
from nestflow.errors import CacheStoreError, CacheWarning

__all__ = ["BUSY_TIMEOUT", "DATABASE", "SqliteDatabase"]

BUSY_TIMEOUT = 30.0  # seconds a writer waits for another one
MMAP_BYTES = 256 * 1024 * 1024  # address space, not memory: pages are the file's, shared
DATABASE = "cache.sqlite3"
RETIRED_KEPT = 4  # sets of replaced connections kept until their threads close them
_KEY = re.compile(r"[0-9A-Za-z_][0-9A-Za-z_.-]*")
_DAMAGED = frozenset({sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB})
# What a read-only open of a WAL database says when there is no -shm index and none can be made.
_NO_INDEX = frozenset({sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_READONLY})

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


_OPEN: weakref.WeakValueDictionary[str, SqliteDatabase] = weakref.WeakValueDictionary()
"""The database of each folder open in this process (``SqliteDatabase.of``), by absolute path."""
_RECENT: OrderedDict[str, SqliteDatabase] = OrderedDict()
"""The folders opened last, kept open when no cache uses them any more: a script that makes a
new DiskCache per run (and drops the last) still opens the database once."""
RECENT_KEPT = 8
_OPEN_LOCK = threading.Lock()


def _database_of(root: Path) -> SqliteDatabase:
    return SqliteDatabase.of(root)


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


def _code(exc: sqlite3.Error) -> int:
    """SQLite's primary result code of ``exc`` (0 when it has none)."""
    return int(getattr(exc, "sqlite_errorcode", 0) or 0) & 0xFF


def _identity(path: Path) -> tuple[int, int] | None:
    """Which file ``path`` is now (device, inode), or None when it is missing."""
    try:
        found = os.stat(path)
    except OSError:
        return None
    return found.st_dev, found.st_ino


def _connect(database: str | Path, *, uri: bool = False) -> sqlite3.Connection:
    return sqlite3.connect(
        database,
        timeout=BUSY_TIMEOUT,
        isolation_level=None,
        check_same_thread=False,  # closed from other threads by close() and GC
        uri=uri,
    )


class _Handle:
    """Owns one thread's connection, so it closes when the thread's local storage goes away.

    ``identity`` is the file the connection opened: a damaged file is moved aside only while
    it is still the one at the database's path (another thread or process may have moved it).
    """

    __slots__ = ("__weakref__", "conn", "identity")

    def __init__(self, conn: sqlite3.Connection, identity: tuple[int, int] | None) -> None:
        self.conn: sqlite3.Connection | None = conn
        self.identity = identity

    def close(self) -> None:
        conn, self.conn = self.conn, None
        if conn is not None:
            conn.close()

    def __del__(self) -> None:
        self.close()


class SqliteDatabase:
    """The SQLite file of a DiskCache: a connection per thread and per process, opened lazily.

    ``SqliteDatabase.of(folder)`` gives one object per folder and process while any cache
    uses it, so a new ``DiskCache`` on a folder already open reuses its prepared connections
    (a connect and its pragmas cost more than a cached run's whole lookup) and its
    read-only and salvage state, which belong to the folder, not to one cache object.
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.path = self.root / DATABASE
        self._told_read_only = False
        self._users: weakref.WeakSet[Any] = weakref.WeakSet()
        self._reset()

    @classmethod
    def of(cls, root: str | os.PathLike[str]) -> SqliteDatabase:
        """The database of folder ``root`` in this process, shared by every cache using it."""
        key = os.path.abspath(root)
        with _OPEN_LOCK:
            found = _OPEN.get(key)
            if found is None:
                found = _OPEN[key] = cls(key)  # absolute: the working directory may change
            _RECENT[key] = found
            _RECENT.move_to_end(key)
            if len(_RECENT) > RECENT_KEPT:
                _RECENT.popitem(last=False)
        return found

    def __reduce__(self) -> tuple[Any, tuple[Path]]:
        return _database_of, (self.root,)  # a plain function: cloudpickle ships it by name

    def _reset(self) -> None:
        self._pid = os.getpid()
        self._local = threading.local()
        self._retired: list[threading.local] = []  # connections of files since replaced
        self._handles: weakref.WeakSet[_Handle] = weakref.WeakSet()
        self._handles_lock = threading.Lock()
        self._salvage_lock = threading.Lock()
        self._token: str | None = None
        self.read_only = False
        """Whether the last connection opened is read-only (the folder cannot be written)."""

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
            conn = self._connect_here()
        return conn

    def _connect_here(self) -> sqlite3.Connection:
        for retired in self._retired:  # this thread's connection to a file since replaced
            old: _Handle | None = getattr(retired, "handle", None)
            if old is not None:
                old.close()
        conn, identity = self._open()
        current = _Handle(conn, identity)
        self._local.handle = current
        with self._handles_lock:
            self._handles.add(current)
        return conn

    def _open(self) -> tuple[sqlite3.Connection, tuple[int, int] | None]:
        with self.failures("open its database"):
            self.root.mkdir(parents=True, exist_ok=True)
            reason = unwritable(self.root, self.path)
            if reason is not None:
                return self._open_read_only(reason), None
            self.read_only = False
            identity = _identity(self.path)
            try:
                return self._open_prepared(), identity or _identity(self.path)
            except sqlite3.DatabaseError as exc:
                if _code(exc) not in _DAMAGED:
                    raise
                self._salvage(identity, exc)
            return self._open_prepared(), _identity(self.path)

    def _open_prepared(self) -> sqlite3.Connection:
        conn = _connect(self.path)
        try:
            conn.execute("PRAGMA synchronous = NORMAL")
            # Reads through a memory map: lookups spread over a big cache stay cheap.
            conn.execute(f"PRAGMA mmap_size = {MMAP_BYTES}")
            _prepare(conn, time.monotonic() + BUSY_TIMEOUT)
        except BaseException:
            conn.close()
            raise
        return conn

    def _open_read_only(self, reason: str) -> sqlite3.Connection:
        self.read_only = True
        if not self.path.exists():
            self._tell_read_only(f"{reason}, and it holds no database yet, so every lookup misses")
            conn = _connect(":memory:")
            conn.executescript(_SCHEMA)
            return conn
        self._tell_read_only(reason)
        uri = self.path.absolute().as_uri()
        conn = _connect(f"{uri}?mode=ro", uri=True)
        try:
            conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()  # opens the WAL index
            return conn
        except sqlite3.Error as exc:
            conn.close()
            if _code(exc) in _DAMAGED:
                self._salvage(None, exc)
            if _code(exc) not in _NO_INDEX:
                raise
        # No writer has it open (no -shm) and none can be made here: read the file as it is,
        # which is complete unless its log holds writes not yet copied into it.
        log = Path(f"{self.path}-wal")
        if log.exists() and log.stat().st_size > 0:
            raise CacheStoreError(
                f"DiskCache at '{self.root}' cannot read its database read-only: '{log.name}' "
                "holds writes that only a process able to write the folder can apply. Expected "
                "a database closed cleanly before the folder was made read-only. Fix: run "
                "anything on the cache once with write access, then make it read-only again."
            )
        return _connect(f"{uri}?mode=ro&immutable=1", uri=True)

    def read_only_error(self, action: str) -> CacheStoreError:
        """The error saying that ``action`` is impossible in a read-only folder."""
        return CacheStoreError(
            f"DiskCache at '{self.root}' could not {action}: it is read-only for this process. "
            "Expected a folder this process can write to. Fix: make the folder and its files "
            "writable, or point the cache at a writable folder."
        )

    def _tell_read_only(self, reason: str) -> None:
        with self._handles_lock:
            told, self._told_read_only = self._told_read_only, True
        if not told:
            warnings.warn(
                CacheWarning(
                    f"DiskCache at '{self.root}' is read-only for this process ({reason}): "
                    "cached values are served, but nothing new will be stored. Expected a "
                    "folder this process can write to. Fix: make the folder and its files "
                    "writable (or mount it read-write) to store again, or point the cache at "
                    "a writable folder."
                ),
                stacklevel=2,
            )

    # --- healing ---------------------------------------------------------------------------

    def generation(self) -> str:
        """The folder's generation token. When it changed, every thread reconnects; so does a
        read-only connection, which may have frozen the file (``immutable``) or outlived the
        folder's being read-only."""
        token = read_generation(self.root)
        if (token != self._token and self._token is not None) or self.read_only:
            self._retire()
        self._token = token
        return token

    def renew_generation(self) -> None:
        """Give the folder a new generation: other processes drop what they remember of it."""
        with self.failures("renew its generation marker"):
            self._token = renew_generation(self.root)

    def _retire(self) -> None:
        """Make every thread open a new connection at its next use (the file was replaced).

        Each thread closes its old connection when it opens the new one. Older sets are let
        go (their idle connections close with them): a query in progress holds a connection
        of the latest set, never of one retired several runs ago.
        """
        with self._handles_lock:
            self._retired = [*self._retired[-RETIRED_KEPT + 1 :], self._local]
            self._local = threading.local()

    def _salvage_here(self, exc: sqlite3.Error) -> None:
        current: _Handle | None = getattr(self._local, "handle", None)
        identity = None if current is None else current.identity
        if current is not None:
            current.close()
        self._salvage(identity, exc)

    def _salvage(self, identity: tuple[int, int] | None, exc: sqlite3.Error) -> None:
        """Move the damaged database aside (once across threads and processes) and say so."""
        if self.read_only:
            raise CacheStoreError(
                f"DiskCache at '{self.root}' found its database damaged ({type(exc).__name__}: "
                f"{exc}) and cannot set it aside: the folder is read-only for this process. "
                f"Expected a valid SQLite database at '{self.path}'. Fix: delete that file, or "
                "make the folder writable so the cache can move it aside and start afresh."
            ) from exc
        moved = None
        aside = self.failures("set its damaged database aside")
        with self._salvage_lock, aside, folder_lock(self.root):
            if identity is not None and _identity(self.path) == identity:
                moved = move_aside(self.path)
                self._token = renew_generation(self.root)
        self._retire()
        if moved is not None:
            warnings.warn(
                CacheWarning(
                    f"DiskCache at '{self.root}': its database was damaged "
                    f"({type(exc).__name__}: {exc}) and was moved aside to '{moved}'; a fresh, "
                    "empty database replaces it, so values cached before are recomputed and "
                    f"stored again. Expected a valid SQLite database at '{self.path}'. Fix: "
                    "nothing is needed to go on; check the disk (or whatever else writes into "
                    "the cache folder), and delete the moved file when done with it."
                ),
                stacklevel=2,
            )

    def use(self, user: object) -> None:
        """``user`` (a cache) works with this database: ``release`` leaves it open for it."""
        with self._handles_lock:
            self._users.add(user)

    def release(self, user: object) -> None:
        """``user`` is done: the connections close when no other user is left.

        Closing a connection another thread is using can crash the interpreter, so a cache
        closing (``DiskCache.close``, the end of a ``with``) never closes them under the feet
        of the other caches on its folder.
        """
        with self._handles_lock:
            self._users.discard(user)
            last = not self._users
        if last:
            self.close()

    def close(self) -> None:
        """Close every connection of this process; the next use opens new ones."""
        if self._pid == os.getpid():
            with self._handles_lock:
                handles = list(self._handles)
                self._retired.clear()
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
        """One write transaction, taken up front so concurrent writers queue instead of failing.

        Raises ``StoreReplaced`` when it met a damaged file (moved aside by then): the caller
        may retry at once, on the fresh database.
        """
        conn = self.connection()
        if self.read_only:
            raise self.read_only_error("write")
        with self.failures("write"):
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    yield conn
                    conn.execute("COMMIT")
                except BaseException:
                    # A failed COMMIT (disk full, I/O error) can leave the transaction open,
                    # holding the write lock: roll back so the connection stays usable.
                    if conn.in_transaction:
                        with suppress(sqlite3.Error):
                            conn.rollback()
                    raise
            except sqlite3.DatabaseError as exc:
                if _code(exc) not in _DAMAGED:
                    raise
                self._salvage_here(exc)
                raise StoreReplaced(
                    f"DiskCache at '{self.root}' could not write: its database was damaged and "
                    "has been replaced by a fresh one. Retry the write."
                ) from exc

    def query(self, sql: str, params: Sequence[object] = ()) -> list[Any]:
        """Rows of one read statement; a damaged file is set aside and the read retried."""
        conn = self.connection()
        try:  # not `with self.failures(...)`: this runs for every lookup, and try is cheaper
            return conn.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            if _code(exc) not in _DAMAGED:
                raise self.error("read", exc) from exc
            self._salvage_here(exc)
        try:
            return self.connection().execute(sql, params).fetchall()
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
