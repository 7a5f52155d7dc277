"""The service store: organisations, admin keys, pipelines, call tokens, nonces and audit.

``open_store(url)`` opens SQLite (``sqlite:///file.db``, the default: embedded, no setup) or
PostgreSQL (``postgresql://...``, extra ``postgres``) and migrates the schema to the latest
version. Both pass one contract suite (``tests/service/test_store_contract.py``). The server
and the command line open the same database and read it on every request, so a change made by
one applies to the other's next request. A ``Store`` is safe to share between threads.

Credentials are never stored in clear (see ``storage.credentials``): admin keys and call
tokens as SHA-256 hashes, shown once when made; a signing secret sealed by its own token, so
the server unseals it only for a request that presents that token. Nothing here logs.

>>> import tempfile
>>> folder = tempfile.TemporaryDirectory()
>>> with open_store(f"sqlite:///{folder.name}/service.db") as store:
...     admin_key = store.create_org("acme")
...     _ = store.register_pipeline("acme", "summarise", source="flows/summarise.yaml",
...                                 contract={"inputs": []}, content_hash="sha256:0")
...     token, secret = store.issue_token("acme", "summarise")
...     grant = store.lookup_token(token)
...     assert store.admin_org(admin_key) == "acme"
>>> (grant.holder, grant.pipeline, secret)
('acme', 'summarise', None)
>>> folder.cleanup()
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Self

from nestflow.service.storage import audit as audit_records
from nestflow.service.storage import nonces as kept_nonces
from nestflow.service.storage import registry
from nestflow.service.storage import tokens as call_tokens
from nestflow.service.storage.audit import AuditCall, AuditRecord, Finished
from nestflow.service.storage.credentials import new_credential
from nestflow.service.storage.database import Database
from nestflow.service.storage.migrations import migrate
from nestflow.service.storage.registry import Organisation, RegisteredPipeline
from nestflow.service.storage.tokens import IssuedToken, Target, TokenGrant

if TYPE_CHECKING:
    from types import TracebackType

    from sqlalchemy import Connection

__all__ = [
    "AuditCall",
    "AuditRecord",
    "Door",
    "IssuedToken",
    "Organisation",
    "RegisteredPipeline",
    "Store",
    "TokenGrant",
    "open_store",
]


class Door:
    """The store as one admission sees it: the calls of ``Store`` in its one transaction."""

    __slots__ = ("_clock", "_connection")

    def __init__(self, connection: Connection, clock: Callable[[], float]) -> None:
        self._connection, self._clock = connection, clock

    def find_call(
        self, org: str, name: str, token: str | None
    ) -> tuple[RegisteredPipeline | None, TokenGrant | None]:
        """The pipeline ``org/name`` and what ``token`` grants."""
        found = registry.find_pipelines(self._connection, org, name)
        grant = None if token is None else call_tokens.lookup(self._connection, token)
        return (found[0] if found else None), grant

    def record_nonce(self, token_id: int, nonce: str, expires_at: float) -> bool:
        """``Store.record_nonce``, in this transaction."""
        return kept_nonces.record(self._connection, token_id, nonce, expires_at, self._clock())

    def purge_nonces(self) -> int:
        """``Store.purge_nonces``, in this transaction."""
        return kept_nonces.purge(self._connection, self._clock())

    def audit_started(self, call: AuditCall) -> int:
        """``Store.audit_started``, committed with the transaction."""
        return audit_records.add(self._connection, call, self._clock())

    def audit_rejected(self, call: AuditCall, reason: str) -> int:
        """``Store.audit_rejected``, committed with the transaction."""
        return audit_records.add(self._connection, call, self._clock(), reason)


def open_store(url: str, *, clock: Callable[[], float] = time.time) -> Store:
    """Open the store at ``url`` and migrate its schema to the latest version.

    ``clock`` gives Unix seconds: record times, token rotation and nonce expiry read it.
    """
    database = Database(url)
    try:
        migrate(database)
    except BaseException:
        database.close()
        raise
    return Store(database, clock)


class Store:
    """Organisations, credentials, pipelines and audit records in one database.

    Made by ``open_store``. Every method is one transaction, committed when it returns.
    Unknown organisations and pipelines raise ``LookupError``; an organisation that exists
    already raises ``ValueError``; a token that the pipeline's cross-org setting forbids
    raises ``PermissionError``.
    """

    def __init__(self, database: Database, clock: Callable[[], float]) -> None:
        self._db = database
        self._clock = clock

    @property
    def url(self) -> str:
        """The database URL, without its password."""
        return self._db.url

    # --- organisations -------------------------------------------------------------------

    def create_org(self, slug: str, name: str | None = None) -> str:
        """Create a local organisation; returns its admin key, which is shown only now."""
        key = new_credential()
        now = self._clock()
        with self._db.writing() as connection:
            if not registry.add_org(connection, Organisation(slug, name or slug, False), now):
                raise ValueError(f"Organisation {slug!r} exists already.")
            registry.add_admin_key(connection, slug, key, now)
        return key

    def record_external_org(self, slug: str, name: str | None = None) -> None:
        """Record an organisation that lives elsewhere and calls in with tokens it holds.

        It holds no admin key here. Recording a known organisation changes nothing.
        """
        with self._db.writing() as connection:
            registry.add_org(connection, Organisation(slug, name or slug, True), self._clock())

    def get_org(self, slug: str) -> Organisation | None:
        """The organisation ``slug``, or ``None``."""
        with self._db.reading() as connection:
            return registry.find_org(connection, slug)

    def admin_org(self, admin_key: str) -> str | None:
        """The organisation whose admin key this is, or ``None`` for any other string."""
        with self._db.reading() as connection:
            return registry.admin_org(connection, admin_key)

    # --- pipelines -----------------------------------------------------------------------

    def register_pipeline(
        self,
        org: str,
        name: str,
        *,
        source: str,
        contract: Mapping[str, Any],
        content_hash: str,
        allow_cross_org: bool = False,
    ) -> RegisteredPipeline:
        """Register ``org/name``, or update it in place (its tokens stay valid)."""
        pipeline = RegisteredPipeline(
            org, name, source, dict(contract), content_hash, allow_cross_org
        )
        with self._db.writing() as connection:
            registry.save_pipeline(connection, pipeline, self._clock())
        return pipeline

    def get_pipeline(self, org: str, name: str) -> RegisteredPipeline | None:
        """The registered pipeline ``org/name``, or ``None``."""
        with self._db.reading() as connection:
            found = registry.find_pipelines(connection, org, name)
        return found[0] if found else None

    def list_pipelines(self, org: str) -> list[RegisteredPipeline]:
        """The pipelines of ``org``, by name."""
        with self._db.reading() as connection:
            return registry.find_pipelines(connection, org)

    def set_allow_cross_org(self, org: str, name: str, allowed: bool) -> None:
        """Open ``org/name`` to other organisations' tokens (which must then sign), or close it."""
        with self._db.writing() as connection:
            registry.set_cross_org(connection, org, name, allowed, self._clock())

    # --- call tokens ---------------------------------------------------------------------

    def issue_token(self, org: str, pipeline: str, holder: str | None = None) -> IssuedToken:
        """A new token for ``holder`` (default: the owner) to call ``org/pipeline``.

        It comes with a signing secret when the pipeline allows cross-org calls. Tokens for
        another organisation are refused (``PermissionError``) while it does not.
        """
        with self._db.writing() as connection:
            grant = call_tokens.target(connection, org, pipeline, holder or org)
            return call_tokens.issue(connection, grant, self._clock())

    def rotate_token(self, org: str, pipeline: str, holder: str | None = None) -> IssuedToken:
        """Replace ``holder``'s tokens for ``org/pipeline`` by a new one, in one transaction.

        From the commit on, the old tokens are rejected by every process.
        """
        now = self._clock()
        with self._db.writing() as connection:
            grant = call_tokens.target(connection, org, pipeline, holder or org)
            call_tokens.revoke(connection, grant, now)
            return call_tokens.issue(connection, grant, now)

    def revoke_tokens(self, org: str, pipeline: str, holder: str | None = None) -> int:
        """Revoke ``holder``'s tokens for ``org/pipeline``; returns how many were active."""
        with self._db.writing() as connection:
            grant = Target(registry.pipeline_id(connection, org, pipeline), holder or org)
            return call_tokens.revoke(connection, grant, self._clock())

    @contextmanager
    def admitting(self) -> Iterator[Door]:
        """One writing transaction for everything a call's admission reads and writes (its
        pipeline and token, a nonce, the audit record), committed when the block ends: one
        commit per call before its run starts."""
        with self._db.writing() as connection:
            yield Door(connection, self._clock)

    def lookup_token(self, token: str) -> TokenGrant | None:
        """What the presented ``token`` grants, or ``None`` when it is unknown or revoked."""
        with self._db.reading() as connection:
            return call_tokens.lookup(connection, token)

    # --- nonces --------------------------------------------------------------------------

    def record_nonce(self, token_id: int, nonce: str, expires_at: float) -> bool:
        """Keep ``nonce`` for ``token_id`` until ``expires_at``; ``False`` if it is kept already.

        One atomic statement: of two processes recording the same nonce at once, exactly one
        gets ``True``. A kept nonce that has expired may be used again.
        """
        with self.admitting() as door:
            return door.record_nonce(token_id, nonce, expires_at)

    def purge_nonces(self) -> int:
        """Forget expired nonces; returns how many. The server calls it from time to time."""
        with self.admitting() as door:
            return door.purge_nonces()

    # --- audit ---------------------------------------------------------------------------

    def audit_started(self, call: AuditCall) -> int:
        """Insert and commit a ``started`` record for ``call`` before its run starts; its id."""
        with self.admitting() as door:
            return door.audit_started(call)

    def audit_rejected(self, call: AuditCall, reason: str) -> int:
        """Record a call refused for a known pipeline, and why; its id."""
        with self.admitting() as door:
            return door.audit_rejected(call, reason)

    def audit_finished(
        self,
        record_id: int,
        status: Finished,
        *,
        latency_ms: float,
        error_type: str | None = None,
        error_message: str | None = None,
        run_id: str | None = None,
        usage: Mapping[str, float] | None = None,
    ) -> None:
        """Complete a ``started`` record once the run has ended (``ok``, ``error``, ``timeout``)."""
        outcome = {"status": status, "latency_ms": latency_ms, "run_id": run_id, "usage": usage}
        outcome |= {"error_type": error_type, "error_message": error_message}
        with self._db.writing() as connection:
            audit_records.finish(connection, record_id, outcome)

    def audit_for(self, org: str, limit: int = 100) -> list[AuditRecord]:
        """The newest ``limit`` records in which ``org`` is the caller or the callee."""
        if limit < 1:
            raise ValueError(f"The audit limit is a positive number of records, not {limit}.")
        with self._db.reading() as connection:
            return audit_records.records_for(connection, org, limit)

    # --- lifetime ------------------------------------------------------------------------

    def close(self) -> None:
        """Close the store's connections."""
        self._db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
