"""The tables of the service store, as of the latest schema version.

Queries use these tables; ``migrations`` creates and changes them, one frozen step per version.
A change here needs a new migration (a test compares a migrated database with these tables).

Times are Unix seconds (double precision). Keys and tokens are stored as SHA-256 hashes,
signing secrets sealed by their token (see ``credentials``). Names that come from requests
(caller pipeline and node, trace and run ids) are unbounded text, so a long header is stored
alike on SQLite, which ignores declared lengths, and PostgreSQL, which enforces them.
"""

from __future__ import annotations

from typing import Final

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
)

NAME_LENGTH: Final = 64
"""Longest organisation slug. Pipeline names are unbounded here: ``contract`` rules on them."""
HASH_LENGTH: Final = 64  # hex SHA-256
NONCE_LENGTH: Final = 128

METADATA = MetaData()


NAME = String(NAME_LENGTH)


orgs = Table(
    "orgs",
    METADATA,
    Column("slug", NAME, primary_key=True),
    Column("name", Text, nullable=False),
    Column("external", Boolean, nullable=False),
    Column("created_at", Double, nullable=False),
)

admin_keys = Table(
    "admin_keys",
    METADATA,
    Column("id", Integer, primary_key=True),
    Column("org", NAME, ForeignKey("orgs.slug"), nullable=False),
    Column("key_hash", String(HASH_LENGTH), nullable=False, unique=True),
    Column("created_at", Double, nullable=False),
)

pipelines = Table(
    "pipelines",
    METADATA,
    Column("id", Integer, primary_key=True),
    Column("org", NAME, ForeignKey("orgs.slug"), nullable=False),
    Column("name", Text, nullable=False),
    Column("source", Text, nullable=False),
    Column("contract", JSON, nullable=False),
    Column("content_hash", Text, nullable=False),
    Column("allow_cross_org", Boolean, nullable=False),
    Column("created_at", Double, nullable=False),
    Column("updated_at", Double, nullable=False),
    UniqueConstraint("org", "name", name="pipelines_org_name"),
)

tokens = Table(
    "tokens",
    METADATA,
    Column("id", Integer, primary_key=True),
    Column("pipeline_id", Integer, ForeignKey("pipelines.id"), nullable=False),
    Column("holder_org", NAME, ForeignKey("orgs.slug"), nullable=False),
    Column("token_hash", String(HASH_LENGTH), nullable=False, unique=True),
    Column("sealed_secret", LargeBinary, nullable=True),
    Column("created_at", Double, nullable=False),
    Column("revoked_at", Double, nullable=True),
    Index("tokens_grant", "pipeline_id", "holder_org"),
)

# A nonce is kept until its signature expires; the primary key refuses a second copy, in
# any process, atomically.
nonces = Table(
    "nonces",
    METADATA,
    Column("token_id", Integer, ForeignKey("tokens.id"), primary_key=True),
    Column("nonce", String(NONCE_LENGTH), primary_key=True),
    Column("expires_at", Double, nullable=False),
    Index("nonces_expiry", "expires_at"),
)

audit = Table(
    "audit",
    METADATA,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("time", Double, nullable=False),
    Column("callee_org", NAME, nullable=False),
    Column("pipeline", Text, nullable=False),
    Column("caller_org", NAME, nullable=True),
    Column("caller_pipeline", Text, nullable=True),
    Column("caller_node", Text, nullable=True),
    Column("depth", Integer, nullable=False),
    Column("mode", Text, nullable=False),
    Column("trace_id", Text, nullable=True),
    Column("status", Text, nullable=False),
    Column("reason", Text, nullable=True),
    Column("latency_ms", Double, nullable=True),
    Column("error_type", Text, nullable=True),
    Column("error_message", Text, nullable=True),
    Column("run_id", Text, nullable=True),
    Column("usage", JSON, nullable=True),
    Index("audit_callee", "callee_org", "time"),
    Index("audit_caller", "caller_org", "time"),
)
