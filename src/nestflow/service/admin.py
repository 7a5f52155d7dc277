"""The management API (SPEC 12.10): register pipelines, manage tokens, cross-org, audit.

Every endpoint takes an organisation's admin key as ``Authorization: Bearer <admin key>`` and
acts on that organisation only. Handlers are plain functions: FastAPI runs them in its thread
pool, so the store's blocking I/O and pipeline loading stay off the event loop.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Body, Header, Query, Request

from nestflow.errors import CallCycleError, ContractError
from nestflow.service import registration
from nestflow.service.contract import Contract
from nestflow.service.refusals import Refusal
from nestflow.service.sources import SourceError, resolved
from nestflow.service.store import Store

Authorization = Annotated[str, Header()]
T = TypeVar("T")


class Admin:
    """The admin endpoints over one store; ``public_url`` prefixes the call URLs it returns."""

    def __init__(self, store: Store, public_url: str | None) -> None:
        self._store = store
        self._public_url = public_url

    def router(self) -> APIRouter:
        """The routes, bound to this store."""
        router = APIRouter()
        router.add_api_route(
            "/v1/admin/pipelines", self.register, methods=["POST"], status_code=201
        )
        tokens = "/v1/admin/pipelines/{pipeline}/tokens"
        router.add_api_route(tokens, self.issue, methods=["POST"])
        router.add_api_route(tokens + "/rotate", self.rotate, methods=["POST"])
        router.add_api_route(tokens + "/revoke", self.revoke, methods=["POST"])
        cross = "/v1/admin/pipelines/{pipeline}/allow-cross-org"
        router.add_api_route(cross, self.allow_cross_org, methods=["PUT"])
        router.add_api_route("/v1/audit", self.audit, methods=["GET"])
        return router

    def register(
        self, request: Request, body: Annotated[Any, Body()], authorization: Authorization = ""
    ) -> dict[str, str]:
        """Register (or update) a pipeline from a contract file's content; its call URL.

        A contract that does not fit, or a source that cannot load, is 400. A pipeline whose
        calls would close a loop is 409 Conflict: the request itself is sound, but it
        conflicts with the pipelines registered now (it may pass once one of them changes).
        Calls under this server's URL (``public_url``, else the URL the request came in on,
        which the returned call URL uses too) count as calls within the server.
        """
        org = self._org(authorization)
        base = self._public_url or str(request.base_url).rstrip("/")
        try:
            contract = Contract.from_mapping(body)
            contract = replace(contract, source=resolved(contract.source))
            registration.register(self._store, org, contract, public_url=base)
        except (ContractError, SourceError) as exc:
            raise Refusal(400, type(exc).__name__, f"{type(exc).__name__}: {exc}") from None
        except CallCycleError as exc:
            raise Refusal(409, type(exc).__name__, f"{type(exc).__name__}: {exc}") from None
        return {"name": contract.name, "url": f"{base}/v1/call/{org}/{contract.name}"}

    def issue(
        self, pipeline: str, authorization: Authorization = "", holder: str | None = None
    ) -> dict[str, str | None]:
        """A new token for ``holder`` (default: the owner) and its secret, shown only now."""
        org = self._org(authorization)
        issued = _guarded(lambda: self._store.issue_token(org, pipeline, holder))
        return {"token": issued.token, "secret": issued.secret}

    def rotate(
        self, pipeline: str, authorization: Authorization = "", holder: str | None = None
    ) -> dict[str, str | None]:
        """Replace ``holder``'s tokens by a new one: the old ones fail from now on."""
        org = self._org(authorization)
        issued = _guarded(lambda: self._store.rotate_token(org, pipeline, holder))
        return {"token": issued.token, "secret": issued.secret}

    def revoke(
        self, pipeline: str, authorization: Authorization = "", holder: str | None = None
    ) -> dict[str, bool]:
        """Revoke ``holder``'s tokens for the pipeline."""
        org = self._org(authorization)
        _guarded(lambda: self._store.revoke_tokens(org, pipeline, holder))
        return {"revoked": True}

    def allow_cross_org(
        self, pipeline: str, body: Annotated[Any, Body()], authorization: Authorization = ""
    ) -> dict[str, bool]:
        """Open the pipeline to other organisations' (signed) calls, or close it."""
        org = self._org(authorization)
        allowed = body.get("allow_cross_org") if isinstance(body, dict) else None
        if not isinstance(allowed, bool):
            raise Refusal(
                400,
                "malformed_request",
                'Send {"allow_cross_org": true} or {"allow_cross_org": false}.',
            )
        _guarded(lambda: self._store.set_allow_cross_org(org, pipeline, allowed))
        return {"allow_cross_org": allowed}

    def audit(
        self, authorization: Authorization = "", limit: Annotated[int, Query(ge=1)] = 100
    ) -> dict[str, list[dict[str, Any]]]:
        """The newest ``limit`` records where the caller's organisation calls or is called."""
        org = self._org(authorization)
        return {"records": [record.to_json() for record in self._store.audit_for(org, limit)]}

    def _org(self, authorization: str) -> str:
        scheme, _, key = authorization.partition(" ")
        org = self._store.admin_org(key.strip()) if scheme.lower() == "bearer" else None
        if org is None:
            raise Refusal(
                401,
                "unauthorized",
                "The admin endpoints need `Authorization: Bearer <admin key>` with the key "
                "printed by `nestflow service org create`.",
            )
        return org


def _guarded(action: Callable[[], T]) -> T:
    """Run a store action, turning its documented errors into refusals."""
    try:
        return action()
    except LookupError as exc:
        raise Refusal(404, "not_found", str(exc).strip("'\"")) from None
    except PermissionError as exc:
        raise Refusal(403, "forbidden", str(exc)) from None
    except ValueError as exc:
        raise Refusal(400, "malformed_request", str(exc)) from None
