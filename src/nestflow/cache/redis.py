"""RedisCache: entries and values as strings in a Redis server (extra ``redis``).

Keys live under a prefix: ``<prefix>:entry:<signature>`` holds an entry's fields as a JSON
list, ``<prefix>:blob:<key>`` its value, and ``<prefix>:generation`` a token that ``clear``
renews. A flush writes each chunk of entries in one MULTI/EXEC transaction, every value
before its entry, so a reader never sees an entry without its value; ``ttl`` (seconds)
applies to both. A lookup is one MGET per chunk of 500 signatures: one command to pack and
one array to parse, where a hash per entry cost a command each. Any Redis error becomes a
``CacheStoreError``, which ``Cache`` turns into one warning and misses (or raises, with
``strict=True``). The extra installs ``hiredis``, which parses replies in C.

A Redis server drops keys by itself (``maxmemory`` eviction, ``ttl`` expiry, ``FLUSHALL``), so
the generation ``Cache.refresh`` reads once per run (one round trip) is the token together
with the server's count of evicted keys (and of expired ones when the cache has a ttl): any
of them moving makes every process drop what it remembers. A token gone is made anew, which
reads as a change. A value missing under a present entry is counted, not warned about one by
one: ``Cache.end_run`` gives one summary per run.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from nestflow.cache import fingerprint as _rules  # noqa: F401 (a cached run signs: load them with the cache)
from nestflow.cache.store import Cache, CacheEntry
from nestflow.errors import CacheStoreError

__all__ = ["RedisBlobStore", "RedisCache", "RedisConnection", "RedisMetaStore", "redact_url"]

T = TypeVar("T")
CHUNK = 500
_GLOB = re.compile(r"([*?\[\]\\])")
_ENTRY = "entry"  # the key kind of entries (``<prefix>:entry:<signature>``)


def _new_token() -> str:
    return os.urandom(8).hex()


def _import_redis() -> Any:
    try:
        return importlib.import_module("redis")
    except ImportError as exc:
        raise ImportError(
            "RedisCache needs the 'redis' client library, which is not installed. "
            "Install it with: pip install 'nestflow[redis]'"
        ) from exc


def redact_url(url: str) -> str:
    """``url`` without its password (in the user part or the query), for labels and messages."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if parts.password is not None:
        host = netloc.rpartition("@")[2]
        netloc = f"{parts.username}@{host}" if parts.username else host
    query = parts.query
    if "password" in query:
        query = urlencode([(k, v) for k, v in parse_qsl(query) if k != "password"])
    return urlunsplit(parts._replace(netloc=netloc, query=query))


class RedisConnection:
    """A lazily created Redis client for one url, recreated after a fork; pickles as its url."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.safe_url = redact_url(url)
        self._reset()

    def _reset(self) -> None:
        self._client: Any = None
        self._pid = os.getpid()
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, str]:
        return {"url": self.url}

    def __setstate__(self, state: dict[str, str]) -> None:
        self.url = state["url"]
        self.safe_url = redact_url(self.url)
        self._reset()

    def _client_here(self) -> Any:
        with self._lock:
            if self._client is None or self._pid != os.getpid():
                redis = _import_redis()
                # One quick retry only: an unreachable server must turn into a miss at once,
                # not after redis-py's default exponential backoff.
                retry = redis.retry.Retry(redis.backoff.NoBackoff(), 1)
                self._client = redis.Redis.from_url(
                    self.url, retry=retry, socket_connect_timeout=5, socket_timeout=30
                )
                self._pid = os.getpid()
            return self._client

    def run(self, action: str, call: Callable[[Any], T]) -> T:
        """``call(client)``, with every Redis error turned into a ``CacheStoreError``."""
        redis = _import_redis()
        try:
            return call(self._client_here())
        except redis.exceptions.OutOfMemoryError as exc:
            raise CacheStoreError(
                f"RedisCache could not {action} at {self.safe_url}: the server is full "
                f"({type(exc).__name__}: {exc}). Expected room for new values: a server at its "
                "maxmemory refuses writes unless its maxmemory-policy evicts. Fix: raise "
                "maxmemory, or set maxmemory-policy to allkeys-lru (evicted values are then "
                "recomputed, with one warning per run), or set ttl= on the cache."
            ) from exc
        except redis.RedisError as exc:
            raise CacheStoreError(
                f"RedisCache could not {action} at {self.safe_url}: {type(exc).__name__}: {exc}. "
                "Expected a redis-server answering at that address. Fix: start redis-server "
                "there, or correct the url (host, port, password)."
            ) from exc

    def close(self) -> None:
        """Close the client's connections; the next use reconnects."""
        with self._lock:
            client, self._client = self._client, None
        if client is not None and self._pid == os.getpid():
            client.close()


class _Keys:
    def __init__(self, connection: RedisConnection, prefix: str, ttl: float | None) -> None:
        self.connection = connection
        self.prefix = prefix
        self.ttl_ms = None if ttl is None else max(1, round(ttl * 1000))
        self.pattern = _GLOB.sub(r"\\\1", prefix)  # the prefix, escaped for SCAN MATCH
        self.generation = f"{prefix}:generation"

    def meta(self, signature: str) -> str:
        return f"{self.prefix}:{_ENTRY}:{signature}"

    def blob(self, key: str) -> str:
        return f"{self.prefix}:blob:{key}"

    def delete_matching(self, kind: str) -> None:
        pattern = f"{self.pattern}:{kind}:*"

        def delete(client: Any) -> None:
            batch: list[bytes] = []
            for key in client.scan_iter(match=pattern, count=1000):
                batch.append(key)
                if len(batch) >= CHUNK:
                    client.unlink(*batch)
                    batch.clear()
            if batch:
                client.unlink(*batch)

        self.connection.run("clear", delete)

    def scan(self, client: Any, kind: str) -> Iterator[bytes]:
        pattern = f"{self.pattern}:{kind}:*"
        return iter(client.scan_iter(match=pattern, count=1000))


def _packed(entry: CacheEntry) -> str:
    return json.dumps(
        [entry.blob_key, entry.node, list(entry.outputs), entry.size, entry.serializer,
         entry.checksum, entry.created],
        separators=(",", ":"),
    )  # fmt: skip


def _entry(signature: str, packed: bytes | None) -> CacheEntry | None:
    if packed is None:
        return None
    try:
        key, node, outputs, size, serializer, checksum, created = json.loads(packed)
        return CacheEntry(
            signature, key, node, tuple(outputs), int(size), serializer, checksum, float(created)
        )
    except (ValueError, TypeError):  # written by another version, or damaged: a miss
        return None


def _dropped(stats: object, expiring: bool) -> str:
    """The server's counts of keys it dropped by itself, from INFO stats ("?" if refused)."""
    if not isinstance(stats, dict):
        return "?"
    evicted = stats.get("evicted_keys", "?")
    return f"{evicted}/{stats.get('expired_keys', '?')}" if expiring else f"{evicted}"


class RedisMetaStore:
    """Entries as strings ``<prefix>:entry:<signature>`` (a JSON list of the fields)."""

    def __init__(self, keys: _Keys) -> None:
        self.keys = keys

    def get_many(self, signatures: Sequence[str]) -> dict[str, CacheEntry]:
        def fetch(client: Any) -> dict[str, CacheEntry]:
            found: dict[str, CacheEntry] = {}
            entry_key = self.keys.meta
            for start in range(0, len(signatures), CHUNK):
                chunk = signatures[start : start + CHUNK]
                packed = client.mget([entry_key(signature) for signature in chunk])
                for signature, fields in zip(chunk, packed, strict=True):
                    entry = _entry(signature, fields)
                    if entry is not None:
                        found[signature] = entry
            return found

        return self.keys.connection.run("look up entries", fetch)

    def put_many(self, entries: Sequence[CacheEntry]) -> None:
        def put(client: Any) -> None:
            for start in range(0, len(entries), CHUNK):
                pipe = client.pipeline(transaction=True)
                for entry in entries[start : start + CHUNK]:
                    self.add_to(pipe, entry)
                pipe.execute()

        self.keys.connection.run("write entries", put)

    def add_to(self, pipe: Any, entry: CacheEntry) -> None:
        """Queue the command writing ``entry`` on a pipeline."""
        pipe.set(self.keys.meta(entry.signature), _packed(entry), px=self.keys.ttl_ms)

    def delete(self, signature: str) -> None:
        self.keys.connection.run("delete an entry", lambda c: c.delete(self.keys.meta(signature)))

    def clear(self) -> None:
        self.keys.delete_matching(_ENTRY)
        self.keys.delete_matching("meta")  # entries kept as hashes by earlier versions
        key = self.keys.generation
        self.keys.connection.run("renew the cache generation", lambda c: c.set(key, _new_token()))

    def generation(self) -> str:
        """The token and the server's eviction count, read in one round trip (once per run)."""
        key, expiring = self.keys.generation, self.keys.ttl_ms is not None

        def read(client: Any) -> str:
            pipe = client.pipeline(transaction=False)
            pipe.get(key)
            pipe.info("stats")  # may be refused (a renamed command): then the token alone
            token, stats = pipe.execute(raise_on_error=False)
            if isinstance(token, Exception):
                raise token
            if token is None:  # never made, or gone: FLUSHALL, a restart, evicted
                made = _new_token()
                token = made if client.set(key, made, nx=True) else client.get(key) or made
            if isinstance(token, bytes):
                token = token.decode("ascii", "replace")
            return f"{token} {_dropped(stats, expiring)}"

        return self.keys.connection.run("read the cache generation", read)

    def stats(self) -> dict[str, int]:
        def count(client: Any) -> dict[str, int]:
            keys = list(self.keys.scan(client, _ENTRY))
            entries = [
                entry
                for start in range(0, len(keys), CHUNK)
                for entry in (_entry("", v) for v in client.mget(keys[start : start + CHUNK]))
                if entry is not None
            ]
            return {"entries": len(entries), "bytes": sum(entry.size for entry in entries)}

        return self.keys.connection.run("count entries", count)

    def close(self) -> None:
        """Close the client's connections."""
        self.keys.connection.close()


class RedisBlobStore:
    """Values as strings ``<prefix>:blob:<key>``."""

    def __init__(self, keys: _Keys) -> None:
        self.keys = keys

    def read(self, key: str) -> bytes | None:
        data: bytes | None = self.keys.connection.run(
            "read a value", lambda c: c.get(self.keys.blob(key))
        )
        return data

    def read_many(self, keys: Sequence[str]) -> dict[str, bytes]:
        """The values of ``keys`` that exist, with one MGET per chunk."""

        def read(client: Any) -> dict[str, bytes]:
            found: dict[str, bytes] = {}
            for start in range(0, len(keys), CHUNK):
                chunk = keys[start : start + CHUNK]
                values = client.mget([self.keys.blob(key) for key in chunk])
                found.update((k, v) for k, v in zip(chunk, values, strict=True) if v is not None)
            return found

        found: dict[str, bytes] = self.keys.connection.run("read values", read)
        return found

    def write_many(self, items: Sequence[tuple[str, bytes]]) -> None:
        def write(client: Any) -> None:
            for start in range(0, len(items), CHUNK):
                pipe = client.pipeline(transaction=True)
                for key, data in items[start : start + CHUNK]:
                    self.add_to(pipe, key, data)
                pipe.execute()

        self.keys.connection.run("write values", write)

    def add_to(self, pipe: Any, key: str, data: bytes) -> None:
        """Queue the command writing one value on a pipeline."""
        pipe.set(self.keys.blob(key), data, px=self.keys.ttl_ms)

    def delete(self, key: str) -> None:
        self.keys.connection.run("delete a value", lambda c: c.delete(self.keys.blob(key)))

    def clear(self) -> None:
        self.keys.delete_matching("blob")

    def close(self) -> None:
        """Close the client's connections."""
        self.keys.connection.close()


class RedisCache(Cache):
    """A cache in a Redis server, shared by every machine that can reach it.

    Parameters
    ----------
    url
        ``redis://[[user]:password@]host:port/db``; the label shows it without the password.
    prefix
        Namespace of every key, so several caches can share one database.
    ttl
        Seconds after which entries and values expire; None keeps them until cleared.
    cache_version
        Mixed into every signature by the runtime; change it to invalidate everything.
    strict
        Raise ``CacheStoreError`` when the server cannot be reached, instead of warning once
        per outage and running without the cache.
    """

    evicts = True  # maxmemory eviction and ttl expiry drop values: one summary per run

    def __init__(
        self,
        url: str = "redis://localhost:6379/0",
        *,
        prefix: str = "nestflow",
        ttl: float | None = None,
        cache_version: str | None = None,
        strict: bool = False,
    ) -> None:
        _import_redis()  # fail now, with the install hint, rather than at the first lookup
        if ttl is not None and not ttl > 0:
            raise ValueError(f"ttl must be a positive number of seconds or None, got {ttl!r}.")
        keys = _Keys(RedisConnection(url), prefix, ttl)
        super().__init__(
            RedisMetaStore(keys),
            RedisBlobStore(keys),
            cache_version=cache_version,
            strict=strict,
            label=f"RedisCache({keys.connection.safe_url})",
        )

    def _write(self, batch: list[tuple[CacheEntry, bytes]]) -> bool:
        meta, blobs = self._meta, self._blobs
        assert isinstance(meta, RedisMetaStore)
        assert isinstance(blobs, RedisBlobStore)

        def write(client: Any) -> None:
            for start in range(0, len(batch), CHUNK):
                pipe = client.pipeline(transaction=True)
                for entry, data in batch[start : start + CHUNK]:
                    blobs.add_to(pipe, entry.blob_key, data)
                    meta.add_to(pipe, entry)
                pipe.execute()

        meta.keys.connection.run("write entries", write)
        return True
