"""The files of a DiskCache folder around its database: generation marker, lock, damaged files.

* ``generation`` holds a random token, replaced (written aside, renamed into place) whenever
  the cache is cleared, pruned or its database replaced. Every process reads it once per run
  (three system calls) and drops what it remembers of the cache when the token changed; a
  folder deleted outright reads as a change too.
* A damaged database is moved aside to ``cache.sqlite3.corrupt-<time>``, its ``-wal`` and
  ``-shm`` files first (SQLite would otherwise replay the old log into the fresh database),
  under an exclusive lock on the folder, so two processes never both move it.
* Whether the folder can be written is asked as the process's *effective* user: the answer
  the kernel will give, also for a read-only mount, where even root cannot write.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

__all__ = ["GENERATION", "folder_lock", "move_aside", "read_generation", "renew_generation",
           "unwritable"]  # fmt: skip

GENERATION = "generation"
_TOKEN_BYTES = 8
_EFFECTIVE = os.access in os.supports_effective_ids


def _new_token() -> str:
    return os.urandom(_TOKEN_BYTES).hex()


def _read(marker: Path) -> str:
    fd = os.open(marker, os.O_RDONLY)  # os-level: three system calls, no buffered file object
    try:
        return os.read(fd, 64).decode("ascii", "replace")
    finally:
        os.close(fd)


def _write_new(path: Path, token: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)  # readable by every user
    try:
        os.write(fd, token.encode("ascii"))
    finally:
        os.close(fd)


def read_generation(folder: Path) -> str:
    """The folder's generation token; made when missing and the folder can be written.

    A folder that cannot be written and has no marker answers ``""`` every time (nothing can
    change it); a marker that cannot be read answers a new token every time, so whoever asks
    drops what it remembers rather than trust it.
    """
    marker = folder / GENERATION
    try:
        return _read(marker)
    except FileNotFoundError:
        pass
    except OSError:
        return "unreadable " + _new_token()
    token = _new_token()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        _write_new(marker, token)
    except FileExistsError:  # another process made it meanwhile: a reader may see it empty
        return _read(marker)
    except OSError:
        return ""
    return token


def renew_generation(folder: Path) -> str:
    """Replace the folder's generation token with a new one (atomically) and return it."""
    token = _new_token()
    temp = folder / f".{GENERATION}-{token}"
    _write_new(temp, token)
    try:
        os.replace(temp, folder / GENERATION)
    except BaseException:
        with suppress(OSError):
            os.unlink(temp)
        raise
    return token


@contextmanager
def folder_lock(folder: Path) -> Iterator[None]:
    """An exclusive lock on ``folder`` across processes (a no-op where ``flock`` is missing)."""
    if sys.platform == "win32":
        yield
        return
    import fcntl

    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def move_aside(database: Path) -> Path:
    """Rename ``database`` with its -wal and -shm to ``<name>.corrupt-<time>``; the new path."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    target = database.with_name(f"{database.name}.corrupt-{stamp}")
    number = 1
    while target.exists():
        number += 1
        target = database.with_name(f"{database.name}.corrupt-{stamp}-{number}")
    for suffix in ("-wal", "-shm", ""):  # the log first: never leave it next to a new database
        with suppress(FileNotFoundError):
            os.replace(f"{database}{suffix}", f"{target}{suffix}")
    return target


def unwritable(folder: Path, database: Path) -> str | None:
    """Why this process cannot write the cache in ``folder``, or None when it can."""
    if not os.access(folder, os.W_OK | os.X_OK, effective_ids=_EFFECTIVE):
        return "the folder is not writable"
    if os.path.exists(database) and not os.access(database, os.W_OK, effective_ids=_EFFECTIVE):
        return f"'{database.name}' is not writable"
    return None
