"""Nonces of signed requests, kept per token until their signature expires.

The primary key (token, nonce) makes recording and checking one atomic statement, an upsert:
of two processes recording the same nonce at once, exactly one inserts it. An expired copy is
overwritten, so a nonce may come back once its window has passed (SPEC 12.4).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import delete

from nestflow.service.storage.database import upsert
from nestflow.service.storage.schema import NONCE_LENGTH, nonces

if TYPE_CHECKING:
    from sqlalchemy import Connection

__all__ = ["purge", "record"]


def record(
    connection: Connection, token_id: int, nonce: str, expires_at: float, now: float
) -> bool:
    """Keep ``nonce`` until ``expires_at``; ``False`` when a live copy is kept already."""
    if not 0 < len(nonce) <= NONCE_LENGTH:
        raise ValueError(f"A nonce has 1 to {NONCE_LENGTH} characters, not {len(nonce)}.")
    row = {"token_id": token_id, "nonce": nonce, "expires_at": expires_at}
    statement = upsert(connection, nonces).values(row)
    statement = statement.on_conflict_do_update(
        index_elements=[nonces.c.token_id, nonces.c.nonce],
        set_={"expires_at": expires_at},
        where=nonces.c.expires_at <= now,
    )
    return connection.execute(statement.returning(nonces.c.nonce)).first() is not None


def purge(connection: Connection, now: float) -> int:
    """Forget the nonces expired by ``now``; how many."""
    return connection.execute(delete(nonces).where(nonces.c.expires_at <= now)).rowcount
