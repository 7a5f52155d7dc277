"""Audit records: what the server writes about a call, and what ``GET /v1/audit`` returns.

A record is inserted with status ``started`` (and committed) before the run starts, then
finished once with ``ok``, ``error`` or ``timeout``; a call refused for a known pipeline is
one record with status ``rejected`` and the reason. Usage is the callee's: the called
organisation pays (SPEC 12.5).
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING, Any, Final, Literal

from sqlalchemy import bindparam, insert, or_, select, update

from nestflow.service.storage.schema import audit

if TYPE_CHECKING:
    from sqlalchemy import Connection, Row

__all__ = ["FINISHED", "AuditCall", "AuditRecord", "Finished", "add", "finish", "records_for"]

Finished = Literal["ok", "error", "timeout"]
FINISHED: Final = frozenset({"ok", "error", "timeout"})


@dataclass(frozen=True, slots=True)
class AuditCall:
    """Who called which pipeline, how: the part of a record known before the run.

    ``caller_org`` is the token's holder (``None`` when the token was not valid);
    ``caller_pipeline`` and ``caller_node`` come from the request headers.
    """

    callee_org: str
    pipeline: str
    caller_org: str | None = None
    caller_pipeline: str | None = None
    caller_node: str | None = None
    depth: int = 0
    mode: str = "sync"
    trace_id: str | None = None


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One stored audit record, with the fields of SPEC 12.10; ``time`` in Unix seconds."""

    id: int
    time: float
    callee_org: str
    pipeline: str
    caller_org: str | None
    caller_pipeline: str | None
    caller_node: str | None
    depth: int
    mode: str
    trace_id: str | None
    status: str
    reason: str | None
    latency_ms: float | None
    error_type: str | None
    error_message: str | None
    run_id: str | None
    usage: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The record as ``GET /v1/audit`` shows it: ``time`` as ISO 8601 UTC."""
        shown = asdict(self)
        moment = datetime.datetime.fromtimestamp(self.time, tz=datetime.UTC)
        shown["time"] = moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
        return shown


def add(connection: Connection, call: AuditCall, now: float, reason: str | None = None) -> int:
    """Insert a record for ``call``: ``started``, or ``rejected`` when there is a ``reason``."""
    status = "started" if reason is None else "rejected"
    # Field by field: dataclasses.asdict deep-copies every value, on every call.
    values = {name: getattr(call, name) for name in _CALL_FIELDS}
    values |= {"time": now, "status": status, "reason": reason}
    return int(connection.execute(_ADD, values).scalar_one())


def finish(connection: Connection, record_id: int, outcome: Mapping[str, Any]) -> None:
    """Complete the ``started`` record ``record_id`` with ``outcome`` (column values).

    Raises ``ValueError`` for a status that is not an outcome, ``LookupError`` when no
    started record has that id (unknown, or finished already).
    """
    if outcome["status"] not in FINISHED:
        status = outcome["status"]
        raise ValueError(f"A run finishes as one of {sorted(FINISHED)}, not {status!r}.")
    values = {**_NO_OUTCOME, **outcome, "usage": _usage(outcome.get("usage"))}
    if connection.execute(_FINISH, {**values, "record_id": record_id}).rowcount != 1:
        raise LookupError(f"No started audit record has id {record_id}.")


_CALL_FIELDS: Final = tuple(f.name for f in fields(AuditCall))
_ADD: Final = insert(audit).returning(audit.c.id)
"""A new record (values given at execution): written for every call, so built once."""
_FINISH: Final = update(audit).where(
    audit.c.id == bindparam("record_id"), audit.c.status == "started"
)
"""A started record completed (values given at execution), built once."""
_NO_OUTCOME: Final = {"error_type": None, "error_message": None, "run_id": None, "usage": None}
"""Every outcome column, so one compiled form serves every finish."""


def records_for(connection: Connection, org: str, limit: int) -> list[AuditRecord]:
    """The newest ``limit`` records in which ``org`` is the caller or the callee."""
    query = (
        select(audit)
        .where(or_(audit.c.callee_org == org, audit.c.caller_org == org))
        .order_by(audit.c.time.desc(), audit.c.id.desc())
        .limit(limit)
    )
    return [_record(row) for row in connection.execute(query)]


def _usage(usage: Mapping[str, float] | None) -> dict[str, float] | None:
    """``usage`` as stored: plain floats, or ``None`` when there is none."""
    return None if usage is None else {str(k): float(v) for k, v in usage.items()}


def _record(row: Row[Any]) -> AuditRecord:
    values = dict(row._mapping)
    values["usage"] = values["usage"] or {}
    return AuditRecord(**values)
