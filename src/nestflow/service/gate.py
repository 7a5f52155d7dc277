"""The checks a call passes before it runs, in the order of SPEC 12.10.

Route and pipeline (404), token valid for this pipeline (401), holder allowed (403),
signature when the pipeline is open to other organisations (401), depth (508), body (400) and
contract (422). A call refused for a known pipeline is recorded in the audit trail with the
reason; the store is read on every request, so a rotation or a setting changed by another
process applies to the very next call. Everything here blocks on the store: the app calls it
from a worker thread, never on the event loop.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from nestflow.errors import ContractError
from nestflow.service import signing
from nestflow.service.client import Hop
from nestflow.service.contract import Contract
from nestflow.service.refusals import Refusal, bad_token, cross_org_closed, not_found
from nestflow.service.store import AuditCall, Door, RegisteredPipeline, Store, TokenGrant

DEPTH_HEADER = "x-nestflow-depth"
CHAIN_HEADER = "x-nestflow-call-chain"
TRACE_HEADERS = ("traceparent", "tracestate")
PURGE_EVERY_S = 60.0
"""How often an admission also forgets the nonces that have expired."""
_CONTRACTS_KEPT = 1024
"""Contracts kept read, at most (the registrations a server answers for)."""


@dataclass(frozen=True, slots=True)
class Incoming:
    """A request to ``/v1/call/{org}/{pipeline}``: what the checks read, framework-free.

    ``headers`` have lower-case names; ``path`` is the URL path without the query string.
    """

    org: str
    pipeline: str
    method: str
    path: str
    headers: Mapping[str, str]
    body: bytes = b""


@dataclass(frozen=True, slots=True)
class Admission:
    """An accepted call: what to run, with which inputs, and where it stands in the chain."""

    registered: RegisteredPipeline
    contract: Contract
    inputs: dict[str, Any]
    call: AuditCall
    hop: Hop
    trace: dict[str, str]
    """The incoming W3C trace context (``traceparent``, ``tracestate``), continued by the run."""


@dataclass(frozen=True, slots=True)
class Admitted:
    """An admission and the id of its ``started`` audit record."""

    admission: Admission
    record: int


class Gate:
    """Admits or refuses calls against the store; ``clock`` gives Unix seconds for signatures."""

    def __init__(
        self, store: Store, max_call_depth: int, clock: Callable[[], float] = time.time
    ) -> None:
        self._store = store
        self._max_depth = max_call_depth
        self._clock = clock
        self._contracts: dict[tuple[str, str, str, str], Contract] = {}
        self._next_purge = 0.0
        """When expired nonces are next forgotten (by the admission that comes then)."""

    def document(self, incoming: Incoming) -> dict[str, Any]:
        """The contract document of ``GET``, once the token (and signature) are accepted."""
        with self._store.admitting() as door:
            registered, grant = self._found(door, incoming)
            self._allowed(door, incoming, registered, self._granted(registered, grant))
        return self._contract(registered).to_document()

    def admit(self, incoming: Incoming) -> Admitted:
        """The admission of a ``POST`` with its ``started`` audit record, committed together;
        raises ``Refusal``, recorded as ``rejected`` for a known pipeline."""
        refused: Refusal | None = None
        with self._store.admitting() as door:
            registered, found_grant = self._found(door, incoming)  # a 404 commits nothing
            if (now := self._clock()) >= self._next_purge:  # nonces are kept until expiry only
                self._next_purge = now + PURGE_EVERY_S
                door.purge_nonces()
            call = AuditCall(
                incoming.org,
                incoming.pipeline,
                caller_pipeline=incoming.headers.get("x-nestflow-caller-pipeline"),
                caller_node=incoming.headers.get("x-nestflow-caller-node"),
                depth=_lenient_depth(incoming.headers),
                mode="stream" if streams(incoming.headers) else "sync",
                trace_id=_trace_id(incoming.headers.get("traceparent")),
            )
            try:
                grant = self._granted(registered, found_grant)
                call = replace(call, caller_org=grant.holder)  # refusals from here name it
                self._allowed(door, incoming, registered, grant)
                admission = self._admitted(incoming, registered, call)
            except Refusal as refusal:
                door.audit_rejected(call, refusal.reason)
                refused = refusal  # raised once the record is committed
            else:
                return Admitted(admission, door.audit_started(admission.call))
        raise refused

    def _found(
        self, door: Door, incoming: Incoming
    ) -> tuple[RegisteredPipeline, TokenGrant | None]:
        """The pipeline called (404 when unknown) and what the presented token grants."""
        scheme, _, token = incoming.headers.get("authorization", "").partition(" ")
        presented = token.strip() if scheme.lower() == "bearer" and token.strip() else None
        registered, grant = door.find_call(incoming.org, incoming.pipeline, presented)
        if registered is None:
            raise not_found(incoming.org, incoming.pipeline)
        return registered, grant

    def _granted(self, registered: RegisteredPipeline, grant: TokenGrant | None) -> TokenGrant:
        """``grant``, when it is one for this pipeline (else 401)."""
        org, name = registered.org, registered.name
        if grant is None or (grant.org, grant.pipeline) != (org, name):
            raise bad_token(org, name)
        return grant

    def _contract(self, registered: RegisteredPipeline) -> Contract:
        """The contract of ``registered``, read once per registration (a re-registration
        changes what it is made from, and so the key)."""
        key = (registered.org, registered.name, registered.content_hash, repr(registered.contract))
        found = self._contracts.get(key)
        if found is None:
            if len(self._contracts) >= _CONTRACTS_KEPT:
                self._contracts.clear()
            found = self._contracts[key] = contract_of(registered)
        return found

    def _allowed(
        self, door: Door, incoming: Incoming, registered: RegisteredPipeline, grant: TokenGrant
    ) -> None:
        """The holder may call (403) and, on a pipeline open to others, signed (401)."""
        org, name = registered.org, registered.name
        if grant.holder != org and not registered.allow_cross_org:
            raise cross_org_closed(org, name, grant.holder)
        if registered.allow_cross_org:
            self._check_signature(door, incoming, grant)

    def _check_signature(self, door: Door, incoming: Incoming, grant: TokenGrant) -> None:
        if grant.secret is None:
            raise Refusal(
                401,
                "unauthorized",
                "This pipeline accepts only signed requests, and this token was issued before "
                "it was opened to other organisations, so it has no signing secret. Rotate the "
                "token to get one.",
                reason="signature_no_secret",
            )
        verdict = signing.verify(
            grant.secret,
            incoming.method,
            incoming.path,
            incoming.body,
            incoming.headers.get(DEPTH_HEADER, "0"),
            incoming.headers,
            now=self._clock(),
            record_nonce=lambda nonce, expires_at: door.record_nonce(
                grant.token_id, nonce, expires_at
            ),
        )
        if not verdict.ok:
            raise Refusal(
                401, "unauthorized", verdict.message, reason=f"signature_{verdict.reason}"
            )

    def _admitted(
        self, incoming: Incoming, registered: RegisteredPipeline, call: AuditCall
    ) -> Admission:
        depth = _strict_depth(incoming.headers)
        chain = (*_chain(incoming.headers), f"{registered.org}/{registered.name}")
        if depth > self._max_depth:
            raise Refusal(
                508,
                "depth_exceeded",
                f"Call depth {depth} exceeds this server's maximum of {self._max_depth}: "
                f"{' -> '.join(chain)}. Pipelines calling each other in a loop stop here.",
                reason="depth_exceeded",
                details={"chain": list(chain)},
            )
        contract = self._contract(registered)
        inputs = _inputs(incoming)
        problems = contract.input_problems(inputs)
        if problems:
            raise Refusal(
                422,
                "contract_violation",
                f"The inputs break the contract of `{registered.name}`: " + "; ".join(problems),
                reason="contract_violation",
                details={"problems": problems},
            )
        hop = Hop(depth + 1, chain, registered.name)
        trace = {k: incoming.headers[k] for k in TRACE_HEADERS if k in incoming.headers}
        return Admission(registered, contract, inputs, call, hop, trace)


def contract_of(registered: RegisteredPipeline) -> Contract:
    """The ``Contract`` of a registered pipeline (the store keeps its ``contract`` section)."""
    try:
        return Contract.from_mapping(
            {
                "name": registered.name,
                "source": registered.source,
                "contract": registered.contract,
                "allow_cross_org": registered.allow_cross_org,
            }
        )
    except ContractError as exc:  # stored by another version, or edited by hand
        raise Refusal(500, "invalid_contract", str(exc), reason="invalid_contract") from None


def streams(headers: Mapping[str, str]) -> bool:
    """Whether the caller asks for server-sent events (``Accept: text/event-stream``)."""
    return "text/event-stream" in headers.get("accept", "")


def _lenient_depth(headers: Mapping[str, str]) -> int:
    """The depth for the audit record: 0 when absent or malformed (that is refused later)."""
    text = headers.get(DEPTH_HEADER, "0").strip()
    return int(text) if text.isascii() and text.isdigit() else 0


def _strict_depth(headers: Mapping[str, str]) -> int:
    text = headers.get(DEPTH_HEADER, "0").strip()
    if not (text.isascii() and text.isdigit()):
        raise Refusal(
            400,
            "malformed_request",
            f"X-Nestflow-Depth must be a non-negative integer, got {text!r}; send 0 for a call "
            "made by a run started locally.",
            reason="malformed_request",
        )
    return int(text)


def _chain(headers: Mapping[str, str]) -> tuple[str, ...]:
    text = headers.get(CHAIN_HEADER, "")
    return tuple(hop.strip() for hop in text.split(",") if hop.strip())


def _trace_id(traceparent: str | None) -> str | None:
    parts = (traceparent or "").split("-")
    return parts[1] if len(parts) == 4 and len(parts[1]) == 32 else None


def _inputs(incoming: Incoming) -> dict[str, Any]:
    try:
        document = json.loads(incoming.body or b"{}")
    except (ValueError, UnicodeDecodeError) as exc:
        raise _malformed(f"The body is not valid JSON ({exc}).") from None
    if not isinstance(document, dict):
        raise _malformed(f"The body is a JSON {type(document).__name__}, not an object.")
    unknown = sorted(set(document) - {"inputs"})
    if unknown:
        raise _malformed(f"Unknown keys in the body: {', '.join(unknown)}.")
    inputs = document.get("inputs", {})
    if not isinstance(inputs, dict):
        raise _malformed(f'"inputs" is a JSON {type(inputs).__name__}, not an object.')
    return inputs


def _malformed(problem: str) -> Refusal:
    return Refusal(
        400,
        "malformed_request",
        f'{problem} Send a JSON object such as {{"inputs": {{"name": value}}}}.',
        reason="malformed_request",
    )
