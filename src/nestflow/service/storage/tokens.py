"""Call tokens: issued for one pipeline and one holder, rotated, revoked, looked up.

A token is stored as its SHA-256 and its signing secret, if any, sealed by the token (see
``credentials``). These functions work inside the store's transactions: rotation revokes and
issues in one, with the pipeline row locked, so two rotations at once cannot both leave a
token active and the old token fails from the commit on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NamedTuple

from sqlalchemy import and_, bindparam, insert, select, update

from nestflow.service.storage.credentials import digest, new_credential, seal, unseal
from nestflow.service.storage.registry import pipeline_id, require_org
from nestflow.service.storage.schema import pipelines, tokens

if TYPE_CHECKING:
    from sqlalchemy import Connection

__all__ = ["IssuedToken", "Target", "TokenGrant", "issue", "lookup", "revoke", "target"]


class IssuedToken(NamedTuple):
    """A new call token and its signing secret (``None`` while cross-org calls are off)."""

    token: str
    secret: str | None

    def __repr__(self) -> str:
        secret = "None" if self.secret is None else "'<secret>'"
        return f"IssuedToken(token='<token>', secret={secret})"


@dataclass(frozen=True, slots=True)
class TokenGrant:
    """What a valid call token grants: calls to ``org/pipeline`` as ``holder``.

    ``secret`` is the token's signing secret, unsealed for verifying this request; it is left
    out of ``repr`` so that it cannot reach a log by accident.
    """

    token_id: int
    org: str
    pipeline: str
    holder: str
    secret: str | None = field(repr=False)


@dataclass(frozen=True, slots=True)
class Target:
    """The tokens of one holder for one pipeline; ``signed`` when they carry secrets."""

    pipeline_id: int
    holder: str
    signed: bool = False


def target(connection: Connection, org: str, pipeline: str, holder: str) -> Target:
    """What a new token for ``holder`` would grant; locks the pipeline row until the commit.

    Raises ``LookupError`` for an unknown pipeline or holder, and ``PermissionError`` for a
    holder other than the owner while the pipeline does not allow cross-org calls.
    """
    found = pipeline_id(connection, org, pipeline, lock=True)
    require_org(connection, holder)
    query = select(pipelines.c.allow_cross_org).where(pipelines.c.id == found)
    signed = bool(connection.scalar(query))
    if holder != org and not signed:
        raise PermissionError(
            f"Pipeline '{org}/{pipeline}' does not allow calls from other organisations, so "
            f"no token can be issued to {holder!r}. Allow them first "
            f"(nestflow service allow-cross-org {org}/{pipeline} on)."
        )
    return Target(found, holder, signed)


def issue(connection: Connection, grant: Target, now: float) -> IssuedToken:
    """Store a new token (and secret, when ``grant.signed``); returns them, shown once."""
    token = new_credential()
    secret = new_credential() if grant.signed else None
    row = {"pipeline_id": grant.pipeline_id, "holder_org": grant.holder, "created_at": now}
    row |= {"token_hash": digest(token)}
    row["sealed_secret"] = None if secret is None else seal(secret, token)
    connection.execute(insert(tokens).values(row))
    return IssuedToken(token, secret)


def revoke(connection: Connection, grant: Target, now: float) -> int:
    """Revoke the active tokens of ``grant``; how many there were."""
    active = and_(
        tokens.c.pipeline_id == grant.pipeline_id,
        tokens.c.holder_org == grant.holder,
        tokens.c.revoked_at.is_(None),
    )
    return connection.execute(update(tokens).where(active).values(revoked_at=now)).rowcount


def lookup(connection: Connection, token: str) -> TokenGrant | None:
    """What the presented ``token`` grants, or ``None`` when it is unknown or revoked."""
    row = connection.execute(_LOOKUP, {"token_hash": digest(token)}).first()
    if row is None:
        return None
    token_id, org, name, holder, sealed = row
    return TokenGrant(
        token_id, org, name, holder, None if sealed is None else unseal(sealed, token)
    )


_LOOKUP = (
    select(tokens.c.id, pipelines.c.org, pipelines.c.name)
    .add_columns(tokens.c.holder_org, tokens.c.sealed_secret)
    .join(pipelines, pipelines.c.id == tokens.c.pipeline_id)
    .where(tokens.c.token_hash == bindparam("token_hash"), tokens.c.revoked_at.is_(None))
)
"""The grant of a token hash: read for every call, so built once."""
