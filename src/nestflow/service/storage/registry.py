"""Organisations and registered pipelines: the rows that credentials and calls refer to.

These functions work inside a transaction that the store opens; each reads or writes only
what its name says, and the store composes them (a token is issued only after its pipeline
and holder are found in the same transaction).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from sqlalchemy import bindparam, insert, select, update

from nestflow.service.storage.credentials import digest
from nestflow.service.storage.database import upsert
from nestflow.service.storage.schema import NAME_LENGTH, admin_keys, orgs, pipelines

if TYPE_CHECKING:
    from sqlalchemy import Connection, Row

__all__ = [
    "Organisation",
    "RegisteredPipeline",
    "add_admin_key",
    "add_org",
    "admin_org",
    "find_org",
    "find_pipelines",
    "pipeline_id",
    "require_org",
    "save_pipeline",
    "set_cross_org",
]

_SLUG: Final = re.compile(rf"[A-Za-z0-9][A-Za-z0-9_-]{{0,{NAME_LENGTH - 1}}}")
_PIPELINE_FIELDS: Final = ("org", "name", "source", "contract", "content_hash", "allow_cross_org")


@dataclass(frozen=True, slots=True)
class Organisation:
    """An organisation: a local one holds admin keys, an external one only call tokens."""

    slug: str
    name: str
    external: bool


@dataclass(frozen=True, slots=True)
class RegisteredPipeline:
    """A callable pipeline as registered: its source, contract (JSON) and content hash."""

    org: str
    name: str
    source: str
    contract: dict[str, Any]
    content_hash: str
    allow_cross_org: bool


def add_org(connection: Connection, organisation: Organisation, now: float) -> bool:
    """Insert the organisation unless one of that slug exists (atomically); whether it did."""
    if _SLUG.fullmatch(organisation.slug) is None:
        raise ValueError(
            f"Organisation name {organisation.slug!r:.80} is not 1 to {NAME_LENGTH} letters, "
            "digits, '-' or '_' starting with a letter or digit (it is part of call URLs)."
        )
    row: dict[str, Any] = {"slug": organisation.slug, "name": organisation.name}
    row |= {"external": organisation.external, "created_at": now}
    added = upsert(connection, orgs).values(row).on_conflict_do_nothing().returning(orgs.c.slug)
    return connection.execute(added).first() is not None


def add_admin_key(connection: Connection, org: str, key: str, now: float) -> None:
    """Store ``key`` (as its hash) as an admin key of ``org``."""
    row = {"org": org, "key_hash": digest(key), "created_at": now}
    connection.execute(insert(admin_keys).values(row))


def admin_org(connection: Connection, key: str) -> str | None:
    """The organisation whose admin key ``key`` is, or ``None``."""
    return connection.scalar(select(admin_keys.c.org).where(admin_keys.c.key_hash == digest(key)))


def find_org(connection: Connection, slug: str) -> Organisation | None:
    """The organisation ``slug``, or ``None``."""
    query = select(orgs.c.slug, orgs.c.name, orgs.c.external).where(orgs.c.slug == slug)
    row = connection.execute(query).first()
    return None if row is None else Organisation(*row)


def require_org(connection: Connection, slug: str) -> None:
    """Raise ``LookupError`` unless the organisation ``slug`` exists."""
    if find_org(connection, slug) is None:
        raise LookupError(
            f"Unknown organisation {slug!r}. Create it first (nestflow service org create {slug})."
        )


def save_pipeline(connection: Connection, pipeline: RegisteredPipeline, now: float) -> None:
    """Insert the pipeline, or update the one of that organisation and name in place."""
    require_org(connection, pipeline.org)
    values: dict[str, Any] = {"source": pipeline.source, "contract": pipeline.contract}
    values |= {"content_hash": pipeline.content_hash, "updated_at": now}
    values["allow_cross_org"] = pipeline.allow_cross_org
    keys = {"org": pipeline.org, "name": pipeline.name, "created_at": now}
    statement = upsert(connection, pipelines).values(keys | values)
    connection.execute(
        statement.on_conflict_do_update(
            index_elements=[pipelines.c.org, pipelines.c.name], set_=values
        )
    )


def set_cross_org(connection: Connection, org: str, name: str, allowed: bool, now: float) -> None:
    """Set whether ``org/name`` accepts other organisations' tokens."""
    found = pipeline_id(connection, org, name)
    change = update(pipelines).where(pipelines.c.id == found)
    connection.execute(change.values(allow_cross_org=allowed, updated_at=now))


def find_pipelines(
    connection: Connection, org: str, name: str | None = None
) -> list[RegisteredPipeline]:
    """The pipelines of ``org`` by name, or only the one called ``name``."""
    if name is not None:
        return [_pipeline(row) for row in connection.execute(_ONE, {"org": org, "name": name})]
    query = select(pipelines).where(pipelines.c.org == org).order_by(pipelines.c.name)
    return [_pipeline(row) for row in connection.execute(query)]


_ONE: Final = select(pipelines).where(
    pipelines.c.org == bindparam("org"), pipelines.c.name == bindparam("name")
)
"""One pipeline by organisation and name: read for every call, so built once (SQLAlchemy
then reuses its compiled form without recomputing its cache key)."""


def pipeline_id(connection: Connection, org: str, name: str, *, lock: bool = False) -> int:
    """The row id of ``org/name`` (``LookupError`` when unknown); ``lock`` it until the commit."""
    query = select(pipelines.c.id).where(pipelines.c.org == org, pipelines.c.name == name)
    found = connection.scalar(query.with_for_update() if lock else query)
    if found is None:
        raise LookupError(
            f"Unknown pipeline '{org}/{name}'. Register it first (nestflow service register)."
        )
    return int(found)


def _pipeline(row: Row[Any]) -> RegisteredPipeline:
    values = row._mapping
    return RegisteredPipeline(*(values[field] for field in _PIPELINE_FIELDS))
