"""What a store keeps: entries, the two store protocols, and how values become bytes.

A cache is split in two (SPEC 8.5). A :class:`MetaStore` answers every hit/miss decision from
small :class:`CacheEntry` records; a :class:`BlobStore` holds the pickled values and is read
only when a value is needed. Values are pickled (protocol 5, cloudpickle when pickle refuses)
and kept with their size and a checksum, so a truncated or corrupt value is detected.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import pickle
import time
from collections.abc import Sequence
from typing import Any, NamedTuple, Protocol

from nestflow.errors import CacheStoreError

__all__ = [
    "PICKLE_PROTOCOL",
    "BlobStore",
    "CacheEntry",
    "CacheMiss",
    "Generations",
    "MetaStore",
    "StoreReplaced",
    "blob_problem",
    "checksum_of",
    "new_blob_key",
    "serialize",
]

PICKLE_PROTOCOL = 5


class CacheEntry(NamedTuple):
    """What a MetaStore keeps per signature: where the value is and how to check and decode it.

    A named tuple rather than a frozen dataclass: a warm map builds one per node and
    item, and a tuple is built several times faster.
    """

    signature: str
    blob_key: str
    node: str
    outputs: tuple[str, ...]
    size: int
    serializer: str
    checksum: str
    created: float


class CacheMiss(Exception):
    """Internal signal: the entry cannot be used (it was reported and deleted); recompute."""


class StoreReplaced(CacheStoreError):
    """Internal signal: the store found its storage damaged, set it aside and started afresh.

    Raised by a write that met the damage; the operation may be retried at once, on the fresh
    storage. Anyone not expecting it sees a ``CacheStoreError`` that says what happened.
    """


class MetaStore(Protocol):
    """Signature -> :class:`CacheEntry`; consulted for every hit/miss decision, so batched."""

    def get_many(self, signatures: Sequence[str]) -> dict[str, CacheEntry]:
        """The entries present among ``signatures`` (absent ones are left out)."""

    def put_many(self, entries: Sequence[CacheEntry]) -> None:
        """Insert or replace entries."""

    def delete(self, signature: str) -> None:
        """Remove one entry; a missing one is not an error."""

    def clear(self) -> None:
        """Remove every entry."""

    def stats(self) -> dict[str, int]:
        """``{"entries": count, "bytes": total blob size}``."""


class Generations(Protocol):
    """Optional for a MetaStore that other processes can clear, replace or evict from.

    ``Cache`` keeps a memory front (entries known to be present, small values written lately)
    that is only right while the store keeps what it had. Once per run, ``Cache.refresh`` asks
    the store for its generation and drops the front when it changed, so a store cleared
    elsewhere gives misses and re-stores in every process from the next run on.
    """

    def generation(self) -> str:
        """A token that changes whenever stored entries may have gone (cleared, replaced,
        evicted); ``clear()`` changes it once everything is gone. Read once per run: keep it
        to one cheap read."""


class BlobStore(Protocol):
    """Key -> bytes; each write is atomic (a reader sees the old bytes, the new ones, or none)."""

    def read(self, key: str) -> bytes | None:
        """The bytes under ``key``, or None when missing."""

    def write_many(self, items: Sequence[tuple[str, bytes]]) -> None:
        """Write ``(key, bytes)`` pairs, replacing existing keys."""

    def delete(self, key: str) -> None:
        """Remove one blob; a missing one is not an error."""

    def clear(self) -> None:
        """Remove every blob."""


def checksum_of(data: bytes) -> str:
    """The hex digest stored with every blob (BLAKE2b, 16 bytes: fast and collision-safe)."""
    return hashlib.blake2b(data, digest_size=16).hexdigest()


_BLOB_COUNTER = itertools.count()


def new_blob_key() -> str:
    """A key no other write uses, in creation order (32 hex digits: time, process, counter).

    Unique keys make every write of a value a new blob, so a reader holding an entry never
    reads another write's bytes under it. Ordered keys let stores that index keys append to
    their index instead of inserting at random places, which keeps writes cheap as it grows.
    """
    count = next(_BLOB_COUNTER) & 0xFFFFFFFF
    return "%016x%08x%08x" % (time.time_ns(), _pid() & 0xFFFFFFFF, count)  # noqa: UP031  # faster


_pid = os.getpid


def serialize(value: Any) -> tuple[bytes, str]:
    """Pickle ``value`` (protocol 5), or cloudpickle it when plain pickle refuses.

    Returns the bytes and the serializer's name; raises whatever cloudpickle raised when
    neither works.
    """
    try:
        return pickle.dumps(value, protocol=PICKLE_PROTOCOL), "pickle"
    except Exception:  # pickle raises many types (PicklingError, TypeError, AttributeError)
        import cloudpickle

        return cloudpickle.dumps(value, protocol=PICKLE_PROTOCOL), "cloudpickle"


def blob_problem(entry: CacheEntry, data: bytes | None) -> str | None:
    if data is None:
        return "its stored value is missing"
    if len(data) != entry.size:
        return f"its stored value has {len(data)} bytes instead of {entry.size} (truncated)"
    if checksum_of(data) != entry.checksum:
        return "its stored value does not match its checksum (corrupt)"
    return None
