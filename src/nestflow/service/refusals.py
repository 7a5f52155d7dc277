"""The error replies of the service (SPEC 12.3): one shape for every refused or failed call.

``{"status": "error", "error": {"type", "message", "run_id"}}``, where ``run_id`` is ``null``
when no run started. A ``Refusal`` is also what the audit trail records as the reason of a
rejected call, so the reason codes here are stable.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fastapi.responses import JSONResponse


@dataclass(eq=False)
class Refusal(Exception):
    """A call or admin request refused before any run: HTTP status, error type and message.

    ``reason`` is the code stored in the audit record of a rejected call; ``details`` are
    extra keys of the error object (the problems of a 422, the chain of a 508).
    """

    status: int
    type: str
    message: str
    reason: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    def to_response(self) -> JSONResponse:
        """The error reply; no run started, so its ``run_id`` is ``null``."""
        return error_response(self.status, self.type, self.message, None, self.details)


def error_response(
    status: int,
    kind: str,
    message: str,
    run_id: str | None,
    details: dict[str, Any] | None = None,
) -> JSONResponse:
    """An error reply of the shape of SPEC 12.3."""
    return JSONResponse(error_body(kind, message, run_id, details), status_code=status)


def error_body(
    kind: str, message: str, run_id: str | None, details: dict[str, Any] | None = None
) -> dict[str, Any]:
    """``{"status": "error", "error": {"type", "message", "run_id", ...}}``."""
    error = {"type": kind, "message": message, "run_id": run_id, **(details or {})}
    return {"status": "error", "error": error}


def not_found(org: str, pipeline: str) -> Refusal:
    """404: no such organisation, or no such pipeline in it."""
    return Refusal(
        404,
        "not_found",
        f"No pipeline `{org}/{pipeline}` is registered here; check the organisation and "
        "pipeline names of the URL (/v1/call/<org>/<pipeline>).",
    )


def bad_token(org: str, pipeline: str) -> Refusal:
    """401: a missing, unknown or revoked token, or one issued for another pipeline."""
    return Refusal(
        401,
        "unauthorized",
        f"The request carries no valid call token for `{org}/{pipeline}`. Send "
        "`Authorization: Bearer <token>` with a token issued for this pipeline; a rotated or "
        "revoked token is no longer accepted.",
        reason="invalid_token",
    )


def cross_org_closed(org: str, pipeline: str, holder: str) -> Refusal:
    """403: a token held by another organisation while the pipeline is closed to them."""
    return Refusal(
        403,
        "forbidden",
        f"`{org}/{pipeline}` does not accept calls from other organisations, and this token is "
        f"held by `{holder}`. The owner can open it with `allow-cross-org on`.",
        reason="cross_org_not_allowed",
    )
