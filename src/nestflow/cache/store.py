"""``Cache``, which puts a pair of stores to work (the stores and entries: ``cache.entries``).

A cache is split in two (SPEC 8.5). A :class:`MetaStore` answers every hit/miss decision from
small :class:`CacheEntry` records; a :class:`BlobStore` holds the pickled values and is read only
when a value is needed. :class:`Cache` adds what every pair of stores needs, written once:

* serialization (pickle protocol 5, falling back to cloudpickle) with a size and a checksum, so
  a truncated or corrupt blob is detected, reported once and recomputed instead of returned;
* a write buffer flushed in batches, blobs before meta, so a crash never leaves an entry pointing
  at a missing blob and a store pays one round trip per batch instead of one per value;
* an in-process index of entries known to be present (this process's writes and earlier hits),
  so a warm run asks the store only about signatures it has not seen yet (an entry another
  process removed meanwhile then shows up as a missing value: one warning and a recompute).
  This memory front is checked once per run by :meth:`Cache.refresh`: a store cleared,
  replaced or evicted from elsewhere changes its generation, and the front is dropped;
* degraded operation: when a store cannot be reached, every operation becomes a miss or a no-op
  with one ``CacheWarning`` per failure episode, or raises ``CacheStoreError`` with
  ``strict=True``.

The in-memory stores (`cache.memory`) serve tests and short-lived caches.
"""

from __future__ import annotations

import pickle
import threading
import time
import warnings
from collections import OrderedDict
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any, TypeVar

from nestflow.cache.entries import (
    BlobStore,
    CacheEntry,
    CacheMiss,
    MetaStore,
    StoreReplaced,
    blob_problem,
    checksum_of,
    new_blob_key,
    serialize,
)
from nestflow.cache.evictions import EvictionTally
from nestflow.errors import CacheStoreError, CacheWarning

__all__ = [
    "BlobStore",
    "Cache",
    "CacheEntry",
    "CacheMiss",
    "MetaStore",
    "checksum_of",
    "new_blob_key",
    "serialize",
]

T = TypeVar("T")

FLUSH_ENTRIES = 2000  # a flush is one transaction; bigger batches stop paying off around here
FLUSH_BYTES = 4 * 1024 * 1024  # ...and values waiting in memory stay bounded
KNOWN_LIMIT = 200_000  # entries remembered as present; past this the index starts over
RECENT_BYTES = 32 * 1024 * 1024  # small values written lately, kept as bytes (never aliased)
RECENT_LIMIT = 64 * 1024  # only small values: a big one is read from its store every time


_REPLACED_RETRIES = 3
"""Attempts of one operation that meets a replaced store: each retires the connection that
met it, and another process may have been replacing the file at the same moment."""


class Cache:
    """A MetaStore and a BlobStore used together; what the runtime talks to.

    Thread-safe. Pickling keeps the configuration only (the stores pickle their own settings)
    and flushes pending writes first, so another process sees them; that process reconnects on
    first use. ``clock`` (default ``time.time``) stamps entries and ``retry_interval`` (seconds)
    is how long an unreachable store is left alone before the next attempt; both can be set
    per instance.

    The runtime calls :meth:`refresh` once per run before the first lookup, and
    :meth:`end_run` once the run is over.
    """

    clock: Callable[[], float] = time.time
    retry_interval: float = 1.0
    evicts: bool = False
    """Whether the store drops values by design (memory limits, expiry): a value missing under
    a present entry is then counted into one summary per run instead of warned about alone."""

    def __init__(
        self,
        meta: MetaStore,
        blobs: BlobStore,
        *,
        cache_version: str | None = None,
        strict: bool = False,
        label: str | None = None,
    ) -> None:
        default_label = f"Cache({type(meta).__name__}, {type(blobs).__name__})"
        self._configure(meta, blobs, cache_version, strict, label or default_label)

    def _configure(
        self, meta: MetaStore, blobs: BlobStore, cache_version: str | None, strict: bool, label: str
    ) -> None:
        self._meta = meta
        self._blobs = blobs
        self.cache_version = cache_version
        self.strict = strict
        self.label = label
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._pending: dict[str, tuple[CacheEntry, bytes]] = {}
        self._pending_bytes = 0
        self._known: dict[str, CacheEntry] = {}
        self._recent: OrderedDict[str, bytes] = OrderedDict()
        self._recent_bytes = 0
        self._failing = False
        self._retry_at = 0.0
        self._generation: str | None = None
        self._evicted = EvictionTally()

    @property
    def meta(self) -> MetaStore:
        """The MetaStore."""
        return self._meta

    @property
    def blobs(self) -> BlobStore:
        """The BlobStore."""
        return self._blobs

    def __repr__(self) -> str:
        return self.label

    # --- runs ------------------------------------------------------------------------------

    def refresh(self) -> None:
        """Called by the runtime once per run, before the first lookup; drops the memory front
        if the store was cleared elsewhere.

        The front (entries known to be present, small values written lately) spares the
        store a question per lookup, and holds only while the store keeps what it had. A
        MetaStore offering ``generation()`` (see :class:`~nestflow.cache.entries.Generations`)
        is asked once; when the answer differs from the last one, the front is dropped, so a
        store cleared, replaced or evicted from elsewhere gives misses and re-stores. Costs
        one cheap store read (DiskCache: one small file; RedisCache: one round trip). Also
        gives the summary of evicted values that no :meth:`end_run` collected.
        """
        self.end_run()
        read = getattr(self._meta, "generation", None)
        if read is None or self._failing:
            return  # a failing store dropped the front already; a lookup ends the episode
        current: str | None = self._guarded(read, None)
        with self._lock:
            if current is None or current == self._generation:
                return  # unreachable (the front was dropped then) or unchanged
            self._generation = current
            self._forget_locked()

    def end_run(self) -> None:
        """Called by the runtime once per run, after its last lookup: one ``CacheWarning``
        summing up the values the store had dropped on its own (evicted or expired), if any.
        """
        with self._lock:
            message = self._evicted.summary(self.label)
        if message is not None:
            warnings.warn(CacheWarning(message), stacklevel=2)

    def _forget_locked(self) -> None:
        self._known.clear()
        self._recent.clear()
        self._recent_bytes = 0

    # --- reading ---------------------------------------------------------------------------

    def lookup(self, signatures: Sequence[str]) -> dict[str, CacheEntry]:
        """The entries present among ``signatures``; this process's pending writes count."""
        found: dict[str, CacheEntry] = {}
        unknown: list[str] = []
        with self._lock:
            pending, known = self._pending, self._known
            for signature in signatures:
                waiting = pending.get(signature)
                entry = waiting[0] if waiting is not None else known.get(signature)
                if entry is None:
                    unknown.append(signature)
                else:
                    found[signature] = entry
        if unknown:
            nothing: dict[str, CacheEntry] = {}
            fetched = self._guarded(lambda: self._meta.get_many(unknown), nothing)
            found.update(fetched)
            self._remember(fetched)
        return found

    def contains(self, signature: str) -> bool:
        """Whether an entry is present under ``signature``."""
        return signature in self.lookup((signature,))

    def inspect(self, signature: str) -> CacheEntry | None:
        """The entry under ``signature``, or None."""
        return self.lookup((signature,)).get(signature)

    def load(self, entry: CacheEntry) -> Any:
        """The value of ``entry``; raises :class:`CacheMiss` when it cannot be used.

        A missing, truncated, corrupt or undecodable value is reported with one
        ``CacheWarning`` and its entry deleted, so the caller recomputes and stores it again.
        An unreachable store is a miss without deleting anything.
        """
        data = self._read(entry)
        problem = blob_problem(entry, data)
        if problem is None:
            try:
                return pickle.loads(data)  # type: ignore[arg-type]  # None ruled out above
            except Exception as exc:  # unpickling runs arbitrary reducers: anything can fail
                problem = f"its stored value cannot be unpickled ({type(exc).__name__}: {exc})"
        self._discard(entry, problem, missing=data is None)
        raise CacheMiss(problem)

    def load_many(self, entries: Sequence[CacheEntry]) -> dict[str, Any]:
        """The values of ``entries`` by signature, read in batches where the store can.

        Entries whose value cannot be used are left out (with the same warning and
        deletion as :meth:`load`); the caller recomputes them.
        """
        read_many = getattr(self._blobs, "read_many", None)
        if read_many is None:
            return self._load_each(entries)
        with self._lock:
            waiting = {sig: self._pending[sig] for sig in (e.signature for e in entries)
                       if sig in self._pending}  # fmt: skip
            recent = {e.blob_key: self._recent[e.blob_key] for e in entries
                      if e.blob_key in self._recent}  # fmt: skip
        keys = [
            e.blob_key for e in entries if e.signature not in waiting and e.blob_key not in recent
        ]
        datas = self._guarded(lambda: read_many(keys), None) if keys else {}
        if datas is None:  # unreachable store: every value is a miss
            return {}
        values: dict[str, Any] = {}
        for entry in entries:
            held = waiting.get(entry.signature)
            data = (
                held[1]
                if held and held[0].blob_key == entry.blob_key
                else recent.get(entry.blob_key) or datas.get(entry.blob_key)
            )
            problem = blob_problem(entry, data)
            if problem is None:
                try:
                    values[entry.signature] = pickle.loads(data)  # type: ignore[arg-type]
                    continue
                except Exception as exc:
                    problem = f"its stored value cannot be unpickled ({type(exc).__name__}: {exc})"
            self._discard(entry, problem, missing=data is None)
        return values

    def read_values(self, signatures: Sequence[str]) -> dict[str, Any]:
        """The usable values stored under ``signatures``, by signature, read in one pass.

        For callers that will load every value they find: absent and unusable ones (the
        latter warned about and deleted, as by :meth:`load`) are left out. Stores that can
        read entries and values together override this.
        """
        return self.load_many(list(self.lookup(signatures).values()))

    def read_apart(self, signature: str, blob_key: str) -> Any:
        """The value under ``signature`` read through its full entry: for a value that is held
        apart (a file) or was unusable when read with its entry (reported as by :meth:`load`).
        """
        entry = self.lookup((signature,)).get(signature)
        if entry is None or entry.blob_key != blob_key:
            raise CacheMiss("its entry changed while it was read")
        return self.load(entry)

    def _load_each(self, entries: Sequence[CacheEntry]) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for entry in entries:
            try:
                values[entry.signature] = self.load(entry)
            except CacheMiss:
                continue
        return values

    def _read(self, entry: CacheEntry) -> bytes | None:
        with self._lock:
            waiting = self._pending.get(entry.signature)
            recent = self._recent.get(entry.blob_key)
        if waiting is not None and waiting[0].blob_key == entry.blob_key:
            return waiting[1]
        if recent is not None:
            return recent
        unreachable: tuple[bool, bytes | None] = (False, None)
        reached, data = self._guarded(lambda: (True, self._blobs.read(entry.blob_key)), unreachable)
        if not reached:
            raise CacheMiss(f"{self.label} is unavailable")
        return data

    def _discard(self, entry: CacheEntry, problem: str, missing: bool = False) -> None:
        if missing and self.evicts:
            with self._lock:
                self._evicted.add(entry.node)
        else:
            warnings.warn(
                CacheWarning(
                    f"{self.label}: the cached value of node '{entry.node}' (signature "
                    f"{entry.signature[:12]}) is unusable: {problem}. The entry was deleted; "
                    "the node will be recomputed and stored again."
                ),
                stacklevel=3,
            )
        with self._lock:
            self._known.pop(entry.signature, None)
            dropped = self._recent.pop(entry.blob_key, None)
            self._recent_bytes -= len(dropped or b"")

        def delete() -> None:
            self._meta.delete(entry.signature)
            self._blobs.delete(entry.blob_key)

        self._guarded(delete, None)

    def _remember(self, entries: dict[str, CacheEntry]) -> None:
        if entries:
            with self._lock:
                self._remember_locked(entries)

    def _remember_locked(self, entries: dict[str, CacheEntry]) -> None:
        if len(self._known) + len(entries) > KNOWN_LIMIT:
            self._known.clear()  # bounded memory; forgotten entries are asked for again
        self._known.update(entries)

    # --- writing ---------------------------------------------------------------------------

    def store(self, signature: str, node: str, outputs: tuple[str, ...], value: Any) -> bool:
        """Buffer ``value`` under ``signature``; False (and one warning) if it cannot be pickled.

        The value is serialized now, so later mutation of ``value`` does not change what is
        stored. It is written by the next :meth:`flush`, or sooner when the buffer is full.
        """
        try:
            data, serializer = serialize(value)
        except Exception as exc:
            warnings.warn(
                CacheWarning(
                    f"{self.label}: the value of node '{node}' was not cached: it cannot be "
                    f"pickled, even with cloudpickle ({type(exc).__name__}: {exc}). The run goes "
                    "on and the node will run again next time. Return a picklable value, or set "
                    "cache=False on the node."
                ),
                stacklevel=2,
            )
            return False
        checksum = checksum_of(data)
        entry = CacheEntry(
            signature, new_blob_key(), node, tuple(outputs), len(data), serializer,
            checksum, self.clock(),
        )  # fmt: skip
        with self._lock:
            replaced = self._pending.get(signature)
            if replaced is not None:
                self._pending_bytes -= replaced[0].size
            self._pending[signature] = (entry, data)
            self._pending_bytes += len(data)
            full = len(self._pending) >= FLUSH_ENTRIES or self._pending_bytes >= FLUSH_BYTES
        if full:
            self.flush()
        return True

    def flush(self) -> None:
        """Write buffered entries: blobs first, then meta. Safe to call at any time."""
        with self._flush_lock:
            with self._lock:
                batch = list(self._pending.values())
            if not batch:
                return
            written = False
            try:
                written = self._guarded(lambda: self._written(batch), False)
            finally:
                self._settle(batch, written)

    def _written(self, batch: list[tuple[CacheEntry, bytes]]) -> bool:
        return self._write(batch)

    def _write(self, batch: list[tuple[CacheEntry, bytes]]) -> bool:
        """Persist a batch; stores that can write blob and meta in one transaction override it.

        Returns whether it was persisted: a store that cannot take writes (a read-only
        folder) returns False, and the batch is dropped without being remembered.
        """
        self._blobs.write_many([(entry.blob_key, data) for entry, data in batch])
        self._meta.put_many([entry for entry, _ in batch])
        return True

    def _settle(self, batch: list[tuple[CacheEntry, bytes]], written: bool) -> None:
        # Entries leave the buffer only now, so concurrent lookups never see a gap; a value
        # stored again while the batch was being written stays pending for the next flush.
        with self._lock:
            for entry, data in batch:
                if self._pending.get(entry.signature, (None,))[0] is entry:
                    del self._pending[entry.signature]
                    self._pending_bytes -= len(data)
            if written:
                self._remember_locked({entry.signature: entry for entry, _ in batch})
                for entry, data in batch:
                    self._keep_recent_locked(entry.blob_key, data)

    def _keep_recent_locked(self, key: str, data: bytes) -> None:
        # Bytes, not objects: every load unpickles a fresh value, so nothing is shared
        # between runs however callers mutate what they get.
        if len(data) > RECENT_LIMIT:
            return
        self._recent[key] = data
        self._recent_bytes += len(data)
        while self._recent_bytes > RECENT_BYTES:
            _, dropped = self._recent.popitem(last=False)
            self._recent_bytes -= len(dropped)

    # --- management ------------------------------------------------------------------------

    def clear(self) -> None:
        """Remove every entry and value, including pending ones.

        The store's generation changes, so other processes drop what they remember of it at
        their next run (:meth:`refresh`).
        """
        with self._flush_lock, self._lock:
            self._pending.clear()
            self._pending_bytes = 0
            self._forget_locked()
            self._generation = None

        def clear_stores() -> None:
            self._meta.clear()
            self._blobs.clear()

        self._guarded(clear_stores, None)

    def stats(self) -> dict[str, int]:
        """``{"entries": count, "bytes": total value size}``, after flushing pending writes."""
        self.flush()
        return self._guarded(self._meta.stats, {"entries": 0, "bytes": 0})

    def close(self) -> None:
        """Flush, then release connections; the cache reconnects if it is used again.

        Also gives the summary of evicted values that no :meth:`end_run` collected.
        """
        self.flush()
        self.end_run()
        for store in (self._meta, self._blobs):
            closer = getattr(store, "close", None)
            if callable(closer):
                closer()

    def __enter__(self) -> Cache:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __getstate__(self) -> dict[str, Any]:
        self.flush()
        return {
            "meta": self._meta,
            "blobs": self._blobs,
            "cache_version": self.cache_version,
            "strict": self.strict,
            "label": self.label,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._configure(**state)

    # --- failures --------------------------------------------------------------------------

    def _guarded(self, call: Callable[[], T], default: T) -> T:
        """Run a store operation; an unreachable store yields ``default`` (or raises if strict)."""
        if self._retry_at and not self.strict and time.monotonic() < self._retry_at:
            return default
        try:
            for attempt in range(_REPLACED_RETRIES):
                try:
                    result = call()
                    break
                except StoreReplaced:  # reported by the store; the fresh storage takes the retry
                    if attempt == _REPLACED_RETRIES - 1:
                        raise
        except OSError as exc:  # CacheStoreError is an OSError; stores convert their own errors
            return self._degrade(exc, default)
        self._failing = False
        self._retry_at = 0.0
        return result

    def _degrade(self, exc: OSError, default: T) -> T:
        error = exc
        if not isinstance(exc, CacheStoreError):
            error = CacheStoreError(
                f"{self.label} failed: {type(exc).__name__}: {exc}. Expected its store to be "
                "reachable and writable. Fix the store, or pass strict=False to run without the "
                "cache while it is unavailable."
            )
        if self.strict:
            raise error from (exc if error is not exc else None)
        self._retry_at = time.monotonic() + self.retry_interval
        if not self._failing:
            self._failing = True
            with self._lock:  # the store may come back without what it held (a restart)
                self._forget_locked()
            warnings.warn(
                CacheWarning(
                    f"{error} Caching is off until the store answers again: lookups miss and "
                    "values are not stored; results stay correct. Pass strict=True to fail "
                    "instead."
                ),
                stacklevel=4,
            )
        return default
