"""Versioned schema migrations, applied when a store opens.

The database keeps its schema version in the one-row table ``nestflow_schema``. Opening a
store applies every migration past that version, and records the new version, in one
transaction: DDL is transactional on both SQLite and PostgreSQL, so a failed step leaves the
previous version intact. Processes that open the same database at once (two servers, a server
and the command line) take turns, through a transaction-scoped advisory lock on PostgreSQL and
the write lock of ``BEGIN IMMEDIATE`` on SQLite; the second finds the work done. A database
written by a newer nestflow is refused, not guessed at.

A migration is frozen once released: it builds the tables of its own version instead of
reading ``schema``, which describes the latest version only. A test compares a migrated
database with ``schema``, so forgetting a migration fails there, not in a user's database.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Final

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Double,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    delete,
    insert,
    select,
    text,
)

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from nestflow.service.storage.database import Database

__all__ = ["LATEST", "MIGRATIONS", "VERSION_TABLE", "migrate"]

Migration = Callable[["Connection"], None]

# "nestflow" in ASCII, as the 64-bit key of PostgreSQL's advisory lock.
_LOCK_KEY: Final = 0x6E657374666C6F77

VERSION_TABLE = Table("nestflow_schema", MetaData(), Column("version", Integer, nullable=False))


def migrate(database: Database) -> int:
    """Bring the database to the latest schema version; returns the version it had before."""
    with database.writing() as connection:
        if database.is_postgres:
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})
        VERSION_TABLE.create(connection, checkfirst=True)
        found = connection.scalar(select(VERSION_TABLE.c.version))
        current = 0 if found is None else found
        if current > LATEST:
            raise RuntimeError(
                f"The service database {database.url} has schema version {current}, newer than "
                f"the {LATEST} this nestflow knows. Upgrade nestflow to use it."
            )
        for step in MIGRATIONS[current:]:
            step(connection)
        connection.execute(delete(VERSION_TABLE))
        connection.execute(insert(VERSION_TABLE).values(version=LATEST))
        return current


def _v1_initial(connection: Connection) -> None:
    """Organisations, admin keys, pipelines, call tokens, nonces and the audit trail."""
    meta = MetaData()
    name = String(64)
    Table(
        "orgs",
        meta,
        Column("slug", name, primary_key=True),
        Column("name", Text, nullable=False),
        Column("external", Boolean, nullable=False),
        Column("created_at", Double, nullable=False),
    )
    Table(
        "admin_keys",
        meta,
        Column("id", Integer, primary_key=True),
        Column("org", name, ForeignKey("orgs.slug"), nullable=False),
        Column("key_hash", String(64), nullable=False, unique=True),
        Column("created_at", Double, nullable=False),
    )
    Table(
        "pipelines",
        meta,
        Column("id", Integer, primary_key=True),
        Column("org", name, ForeignKey("orgs.slug"), nullable=False),
        Column("name", Text, nullable=False),
        Column("source", Text, nullable=False),
        Column("contract", JSON, nullable=False),
        Column("content_hash", Text, nullable=False),
        Column("allow_cross_org", Boolean, nullable=False),
        Column("created_at", Double, nullable=False),
        Column("updated_at", Double, nullable=False),
        UniqueConstraint("org", "name", name="pipelines_org_name"),
    )
    Table(
        "tokens",
        meta,
        Column("id", Integer, primary_key=True),
        Column("pipeline_id", Integer, ForeignKey("pipelines.id"), nullable=False),
        Column("holder_org", name, ForeignKey("orgs.slug"), nullable=False),
        Column("token_hash", String(64), nullable=False, unique=True),
        Column("sealed_secret", LargeBinary, nullable=True),
        Column("created_at", Double, nullable=False),
        Column("revoked_at", Double, nullable=True),
        Index("tokens_grant", "pipeline_id", "holder_org"),
    )
    Table(
        "nonces",
        meta,
        Column("token_id", Integer, ForeignKey("tokens.id"), primary_key=True),
        Column("nonce", String(128), primary_key=True),
        Column("expires_at", Double, nullable=False),
        Index("nonces_expiry", "expires_at"),
    )
    _v1_audit(meta)
    meta.create_all(connection)


def _v1_audit(meta: MetaData) -> None:
    optional = ("caller_pipeline", "caller_node", "trace_id", "reason", "error_type")
    Table(
        "audit",
        meta,
        Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
        Column("time", Double, nullable=False),
        Column("callee_org", String(64), nullable=False),
        Column("pipeline", Text, nullable=False),
        Column("caller_org", String(64), nullable=True),
        *(Column(column, Text, nullable=True) for column in optional),
        Column("depth", Integer, nullable=False),
        Column("mode", Text, nullable=False),
        Column("status", Text, nullable=False),
        Column("latency_ms", Double, nullable=True),
        Column("error_message", Text, nullable=True),
        Column("run_id", Text, nullable=True),
        Column("usage", JSON, nullable=True),
        Index("audit_callee", "callee_org", "time"),
        Index("audit_caller", "caller_org", "time"),
    )


MIGRATIONS: Final[tuple[Migration, ...]] = (_v1_initial,)
"""Migration ``i`` takes a database from version ``i`` to ``i + 1``."""
LATEST: Final = len(MIGRATIONS)
