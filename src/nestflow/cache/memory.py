"""In-memory MetaStore and BlobStore: for tests, and caches that live as long as one process."""

from __future__ import annotations

from collections.abc import Sequence

from nestflow.cache.store import CacheEntry

__all__ = ["MemoryBlobStore", "MemoryMetaStore"]


class MemoryMetaStore:
    """A MetaStore in a dict: for tests and caches that live as long as one process.

    Several ``Cache`` objects may share one; ``generation`` tells them when another cleared it.
    """

    def __init__(self) -> None:
        self._entries: dict[str, CacheEntry] = {}
        self._generation = 0

    def get_many(self, signatures: Sequence[str]) -> dict[str, CacheEntry]:
        entries = self._entries
        return {s: entries[s] for s in signatures if s in entries}

    def put_many(self, entries: Sequence[CacheEntry]) -> None:
        self._entries.update((entry.signature, entry) for entry in entries)

    def delete(self, signature: str) -> None:
        self._entries.pop(signature, None)

    def clear(self) -> None:
        self._entries.clear()
        self._generation += 1

    def generation(self) -> str:
        """How many times the store was cleared, as a token."""
        return str(self._generation)

    def stats(self) -> dict[str, int]:
        entries = list(self._entries.values())
        return {"entries": len(entries), "bytes": sum(entry.size for entry in entries)}


class MemoryBlobStore:
    """A BlobStore in a dict: for tests and caches that live as long as one process."""

    def __init__(self) -> None:
        self._blobs: dict[str, bytes] = {}

    def read(self, key: str) -> bytes | None:
        return self._blobs.get(key)

    def write_many(self, items: Sequence[tuple[str, bytes]]) -> None:
        self._blobs.update(items)

    def delete(self, key: str) -> None:
        self._blobs.pop(key, None)

    def clear(self) -> None:
        self._blobs.clear()
