"""Attacks on the call endpoint, over real HTTP (uvicorn), on SQLite and on PostgreSQL.

Each attack is sent once per backend to a running service, and the test reads what it left
behind: the status and the error body, how many times the served pipeline ran (never), and
the audit records it added (exactly one, ``rejected``, with its reason). The last test prints
these figures as a table. Another test runs a session of good and bad calls, a caller
pipeline with logging and telemetry among them, and searches every log line, span, report,
audit listing and database row for the raw admin keys, tokens and secrets.

The served pipeline is registered by reference (``test_security:guarded``) and counts its
runs in ``EXECUTED``: the service runs it in this process, in its worker threads.
"""

from __future__ import annotations

import json
import logging
import math
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import sqlalchemy as sa
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from servers import serve

from nestflow import LoggingCallback, Pipeline, TelemetryCallback, node
from nestflow.service import signing
from nestflow.service.app import create_app
from nestflow.service.call import pipeline_call
from nestflow.service.contract import Contract
from nestflow.service.registration import register
from nestflow.service.storage.credentials import digest
from nestflow.service.store import IssuedToken, Store, open_store

if TYPE_CHECKING:
    from conftest import PostgresServer

WAIT_S = 10.0
CEILING = 3
BODY = json.dumps({"inputs": {"ticket": "T-1"}}).encode()
ERROR_KEYS = {"type", "message", "run_id"}

# --- the served pipeline ----------------------------------------------------------------------

EXECUTED: list[str] = []
_executed = threading.Lock()


@node(output_name="record")
def file_ticket(ticket: str) -> str:
    with _executed:
        EXECUTED.append(ticket)
    return f"filed {ticket}"


guarded = Pipeline([file_ticket], name="guarded")


def contract(name: str, cross_org: bool = False) -> Contract:
    return Contract.from_mapping(
        {
            "name": name,
            "source": "test_security:guarded",
            "contract": {
                "inputs": [{"name": "ticket", "type": "string"}],
                "outputs": ["record"],
                "response_key": "record",
            },
            "allow_cross_org": cross_org,
        }
    )


# --- a running service ------------------------------------------------------------------------


@dataclass
class Service:
    """A running app on one store; orgs ``acme`` (owner) and ``beta``; every credential made."""

    url: str
    store: Store
    http: httpx.Client
    keys: dict[str, str]
    issued: list[IssuedToken] = field(default_factory=list)

    def register(self, name: str, cross_org: bool = False) -> str:
        register(self.store, "acme", contract(name, cross_org))
        return name

    def token(self, pipeline: str, holder: str = "acme", action: str = "issue") -> IssuedToken:
        made = {"issue": self.store.issue_token, "rotate": self.store.rotate_token}[action]
        issued = made("acme", pipeline, holder)
        self.issued.append(issued)
        return issued

    def path(self, pipeline: str) -> str:
        return f"/v1/call/acme/{pipeline}"

    def request(self, pipeline: str, headers: dict[str, str], body: bytes = BODY) -> httpx.Request:
        sent = {"Content-Type": "application/json", **headers}
        return self.http.build_request(
            "POST", self.url + self.path(pipeline), content=body, headers=sent
        )

    def bearer(self, pipeline: str, token: str, **headers: str) -> httpx.Request:
        return self.request(pipeline, {"Authorization": f"Bearer {token}", **headers})

    def signed(
        self,
        pipeline: str,
        issued: IssuedToken,
        *,
        secret: str | None = None,
        signed_body: bytes = BODY,
        body: bytes = BODY,
        timestamp: int | None = None,
        nonce: str | None = None,
    ) -> httpx.Request:
        key = secret or issued.secret
        assert key is not None
        path = self.path(pipeline)
        headers = signing.sign(key, "POST", path, signed_body, 0, timestamp=timestamp, nonce=nonce)
        headers |= {"Authorization": f"Bearer {issued.token}", "X-Nestflow-Depth": "0"}
        return self.request(pipeline, headers, body)

    def audit_ids(self) -> set[int]:
        return {record.id for record in self.store.audit_for("acme", 10_000)}

    def audit_since(self, seen: set[int]) -> list[dict[str, Any]]:
        records = self.store.audit_for("acme", 10_000)
        return [record.to_json() for record in records if record.id not in seen]


@contextmanager
def running(store_url: str) -> Iterator[Service]:
    with (
        open_store(store_url) as store,
        serve(create_app(store, max_call_depth=CEILING)) as url,
        httpx.Client(timeout=WAIT_S) as http,
    ):
        keys = {org: store.create_org(org) for org in ("acme", "beta")}
        yield Service(url, store, http, keys)


# --- the attacks ------------------------------------------------------------------------------


def wrong_token(service: Service) -> httpx.Request:
    return service.bearer(service.register("wrong_token"), secrets.token_urlsafe(32))


def missing_authorization(service: Service) -> httpx.Request:
    return service.request(service.register("missing_authorization"), {})


def revoked_token(service: Service) -> httpx.Request:
    name = service.register("revoked_token")
    issued = service.token(name)
    assert service.store.revoke_tokens("acme", name) == 1
    return service.bearer(name, issued.token)


def rotated_away_token(service: Service) -> httpx.Request:
    name = service.register("rotated_away_token")
    old = service.token(name)
    service.token(name, action="rotate")
    return service.bearer(name, old.token)


def token_of_another_pipeline(service: Service) -> httpx.Request:
    name = service.register("token_of_another_pipeline")
    elsewhere = service.token(service.register("another_pipeline"))
    return service.bearer(name, elsewhere.token)


def cross_org_token(service: Service, name: str) -> tuple[str, IssuedToken]:
    """``name`` registered open to other organisations, and beta's token (with its secret)."""
    return service.register(name, cross_org=True), service.token(name, holder="beta")


def expired_timestamp(service: Service) -> httpx.Request:
    name, issued = cross_org_token(service, "expired_timestamp")
    return service.signed(name, issued, timestamp=int(time.time()) - 301)


def future_timestamp(service: Service) -> httpx.Request:
    # Rounded up, so the request stays more than 300 s ahead however late it arrives within 1 s.
    name, issued = cross_org_token(service, "future_timestamp")
    return service.signed(name, issued, timestamp=math.ceil(time.time()) + 301)


def tampered_body(service: Service) -> httpx.Request:
    name, issued = cross_org_token(service, "tampered_body")
    tampered = json.dumps({"inputs": {"ticket": "T-forged"}}).encode()
    return service.signed(name, issued, body=tampered)


def wrong_secret(service: Service) -> httpx.Request:
    name, issued = cross_org_token(service, "wrong_secret")
    return service.signed(name, issued, secret=secrets.token_urlsafe(32))


def replayed_request(service: Service) -> httpx.Request:
    name, issued = cross_org_token(service, "replayed_request")
    nonce = secrets.token_urlsafe(18)
    stamp = int(time.time())
    first = service.http.send(service.signed(name, issued, timestamp=stamp, nonce=nonce))
    assert first.status_code == 200, first.text
    return service.signed(name, issued, timestamp=stamp, nonce=nonce)


def unsigned_cross_org(service: Service) -> httpx.Request:
    name, issued = cross_org_token(service, "unsigned_cross_org")
    return service.bearer(name, issued.token)


def holder_not_allowed(service: Service) -> httpx.Request:
    name, issued = cross_org_token(service, "holder_not_allowed")
    service.store.set_allow_cross_org("acme", name, False)
    return service.bearer(name, issued.token)


def depth_over_ceiling(service: Service) -> httpx.Request:
    name = service.register("depth_over_ceiling")
    chain = ",".join(f"beta/hop{i}" for i in range(CEILING + 1))
    depth = {"X-Nestflow-Depth": str(CEILING + 1), "X-Nestflow-Call-Chain": chain}
    return service.bearer(name, service.token(name).token, **depth)


@dataclass(frozen=True)
class Attack:
    """What an attack sends, and the refusal expected: status, error type, audit reason."""

    prepare: Callable[[Service], httpx.Request]
    status: int
    kind: str
    reason: str
    extra: frozenset[str] = frozenset()
    """Error keys beyond type, message and run_id."""


ATTACKS = {
    "wrong token": Attack(wrong_token, 401, "unauthorized", "invalid_token"),
    "missing Authorization": Attack(missing_authorization, 401, "unauthorized", "invalid_token"),
    "revoked token": Attack(revoked_token, 401, "unauthorized", "invalid_token"),
    "rotated-away token": Attack(rotated_away_token, 401, "unauthorized", "invalid_token"),
    "token of another pipeline": Attack(
        token_of_another_pipeline, 401, "unauthorized", "invalid_token"
    ),
    "timestamp 301 s old": Attack(expired_timestamp, 401, "unauthorized", "signature_expired"),
    "timestamp 301 s ahead": Attack(future_timestamp, 401, "unauthorized", "signature_future"),
    "tampered body": Attack(tampered_body, 401, "unauthorized", "signature_bad_signature"),
    "wrong secret": Attack(wrong_secret, 401, "unauthorized", "signature_bad_signature"),
    "replayed request": Attack(replayed_request, 401, "unauthorized", "signature_replayed"),
    "unsigned, cross-org on": Attack(unsigned_cross_org, 401, "unauthorized", "signature_missing"),
    "other holder, cross-org off": Attack(
        holder_not_allowed, 403, "forbidden", "cross_org_not_allowed"
    ),
    "depth over the ceiling": Attack(
        depth_over_ceiling, 508, "depth_exceeded", "depth_exceeded", frozenset({"chain"})
    ),
}
BACKENDS = ("sqlite", "postgresql")


@dataclass(frozen=True)
class Outcome:
    """What one attack left behind: the reply, the runs it caused, the audit records it added."""

    status: int
    body: dict[str, Any]
    executed: int
    records: list[dict[str, Any]]


def attack_all(store_url: str) -> dict[str, Outcome]:
    """Send every attack once to a service on ``store_url``; only the attack itself is measured."""
    outcomes = {}
    with running(store_url) as service:
        for name, attack in ATTACKS.items():
            request = attack.prepare(service)
            runs, seen = len(EXECUTED), service.audit_ids()
            reply = service.http.send(request)
            added = service.audit_since(seen)
            outcomes[name] = Outcome(reply.status_code, reply.json(), len(EXECUTED) - runs, added)
    return outcomes


@pytest.fixture(scope="module")
def sqlite_outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Outcome]:
    folder = tmp_path_factory.mktemp("attacks")
    return attack_all(f"sqlite:///{folder / 'service.db'}")


@pytest.fixture(scope="module")
def postgresql_outcomes(postgres_server: PostgresServer) -> dict[str, Outcome]:
    return attack_all(postgres_server.new_database())


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", list(ATTACKS))
def test_each_attack_is_refused_unrun_and_audited_once(
    name: str, backend: str, request: pytest.FixtureRequest
) -> None:
    attack = ATTACKS[name]
    outcome = request.getfixturevalue(f"{backend}_outcomes")[name]
    assert outcome.status == attack.status, outcome.body
    assert set(outcome.body) == {"status", "error"}
    assert outcome.body["status"] == "error"
    error = outcome.body["error"]
    assert set(error) == ERROR_KEYS | attack.extra
    assert (error["type"], error["run_id"]) == (attack.kind, None)
    assert isinstance(error["message"], str)
    assert error["message"]
    assert outcome.executed == 0
    (record,) = outcome.records
    assert (record["status"], record["reason"]) == ("rejected", attack.reason)
    assert record["callee_org"] == "acme"
    assert record["run_id"] is None


def test_refusals_before_the_token_is_accepted_name_no_caller(
    sqlite_outcomes: dict[str, Outcome],
) -> None:
    callers = {name: outcome.records[0]["caller_org"] for name, outcome in sqlite_outcomes.items()}
    for name in (
        "wrong token",
        "missing Authorization",
        "revoked token",
        "rotated-away token",
        "token of another pipeline",
    ):
        assert callers[name] is None
    assert callers["depth over the ceiling"] == "acme"


def test_refusals_after_the_token_is_accepted_name_its_holder(
    sqlite_outcomes: dict[str, Outcome],
) -> None:
    """The caller sees its own refused calls in its audit listing."""
    callers = {name: outcome.records[0]["caller_org"] for name, outcome in sqlite_outcomes.items()}
    named = {name: caller for name, caller in callers.items() if caller is not None}
    assert named.pop("depth over the ceiling") == "acme"
    assert set(named.values()) <= {"acme", "beta"}
    for name in (
        "timestamp 301 s old",
        "timestamp 301 s ahead",
        "tampered body",
        "wrong secret",
        "replayed request",
        "unsigned, cross-org on",
        "other holder, cross-org off",
    ):
        assert callers[name] == "beta", name


def test_the_depth_refusal_cites_the_chain(postgresql_outcomes: dict[str, Outcome]) -> None:
    error = postgresql_outcomes["depth over the ceiling"].body["error"]
    assert error["chain"] == [
        *(f"beta/hop{i}" for i in range(CEILING + 1)),
        "acme/depth_over_ceiling",
    ]
    assert "beta/hop0 -> beta/hop1" in error["message"]


# --- secrets ----------------------------------------------------------------------------------


def database_rows(store_url: str) -> dict[str, list[dict[str, Any]]]:
    """Every row of every table, found by reflection rather than from the schema module."""
    url = store_url.replace("postgresql://", "postgresql+psycopg://", 1)
    engine = sa.create_engine(url)
    try:
        metadata = sa.MetaData()
        metadata.reflect(engine)
        with engine.connect() as connection:
            return {
                name: [dict(row._mapping) for row in connection.execute(sa.select(table))]
                for name, table in metadata.tables.items()
            }
    finally:
        engine.dispose()


def as_text(value: Any) -> str:
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("latin-1")
    return json.dumps(value, default=str)


def good_and_bad_calls(service: Service) -> None:
    """Direct calls: accepted, and refused for each kind of bad credential."""
    owner = service.token("open")
    shared = service.token("shared", holder="beta")
    assert shared.secret is not None
    sent = {"good": service.bearer("open", owner.token), "signed": service.signed("shared", shared)}
    for request in sent.values():
        assert service.http.send(request).status_code == 200
    replay = service.http.send(sent["signed"])
    refused = [
        replay,
        service.http.send(service.bearer("shared", shared.token)),
        service.http.send(service.signed("shared", shared, secret=secrets.token_urlsafe(32))),
        service.http.send(service.bearer("open", shared.token)),
    ]
    assert [reply.status_code for reply in refused] == [401] * 4
    rotated = service.token("open", action="rotate")
    assert service.http.send(service.bearer("open", owner.token)).status_code == 401
    assert service.http.send(service.bearer("open", rotated.token)).status_code == 200


def caller_pipeline(service: Service, provider: TracerProvider) -> Pipeline:
    """A pipeline calling the service: signed and not, with good and bad credentials."""
    owner = service.token("open", action="rotate")
    shared = service.token("shared", holder="beta", action="rotate")
    open_url, shared_url = (service.url + service.path(n) for n in ("open", "shared"))
    calls = [
        pipeline_call(open_url, owner.token, {"ticket": "ticket"}, "good"),
        pipeline_call(
            shared_url, shared.token, {"ticket": "ticket"}, "signed", secret=shared.secret
        ),
        pipeline_call(
            shared_url,
            shared.token,
            {"ticket": "ticket"},
            "forged",
            secret=secrets.token_urlsafe(32),
        ),
        pipeline_call(shared_url, owner.token, {"ticket": "ticket"}, "misdirected"),
    ]
    callbacks = [LoggingCallback(level=logging.DEBUG), TelemetryCallback(tracer_provider=provider)]
    return Pipeline(calls, name="desk", callbacks=callbacks)


def test_no_raw_credential_is_left_in_logs_spans_reports_audit_or_any_table(
    store_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with caplog.at_level(logging.DEBUG), running(store_url) as service:
        service.register("open")
        service.register("shared", cross_org=True)
        good_and_bad_calls(service)
        out = caller_pipeline(service, provider).run({"ticket": "T-9"})
        listings = [
            service.http.get(f"{service.url}/v1/audit", headers={"Authorization": f"Bearer {key}"})
            for key in service.keys.values()
        ]
        rows = database_rows(store_url)
        credentials = [*service.keys.values(), *(t.token for t in service.issued)]
        credentials += [t.secret for t in service.issued if t.secret is not None]
    assert (out["good"], out["signed"]) == ("filed T-9", "filed T-9")
    assert out["forged._error"]["type"] == out["misdirected._error"]["type"] == "rejected"
    assert all(listing.status_code == 200 for listing in listings)

    spans = exporter.get_finished_spans()
    places = {
        "report": out.report.to_json(),
        "outputs": json.dumps(dict(out.items()), default=repr),
        "logs": caplog.text,
        "spans": "\n".join(span.to_json() for span in spans),
        "audit listings": "\n".join(listing.text for listing in listings),
    }
    places |= {
        f"table {table}": "\n".join(as_text(value) for row in found for value in row.values())
        for table, found in rows.items()
    }
    leaks = [
        (place, credential[:6])
        for place, text in places.items()
        for credential in credentials
        if credential in text
    ]
    assert leaks == []

    # The searched places are not empty, and hold the credentials' stored forms.
    assert '"node": "forged"' in caplog.text
    assert "HTTP Request: POST" in caplog.text
    assert any(span.name == "node signed" for span in spans)
    assert len(rows["audit"]) >= 10
    assert {row["token_hash"] for row in rows["tokens"]} == {
        digest(t.token) for t in service.issued
    }
    assert sum(row["sealed_secret"] is not None for row in rows["tokens"]) == 2


# --- the figures ------------------------------------------------------------------------------


def test_figures_every_attack_refused_unrun_and_audited_once_on_both_backends(
    sqlite_outcomes: dict[str, Outcome], postgresql_outcomes: dict[str, Outcome]
) -> None:
    outcomes = {"sqlite": sqlite_outcomes, "postgresql": postgresql_outcomes}
    header = ("attack", "backend", "status", "error type", "executed", "audited", "reason")
    rows = [
        (
            name,
            backend,
            str(found[name].status),
            found[name].body["error"]["type"],
            str(found[name].executed),
            ", ".join(r["status"] for r in found[name].records),
            ", ".join(str(r["reason"]) for r in found[name].records),
        )
        for name in ATTACKS
        for backend, found in outcomes.items()
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = [
        " | ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in [header, *rows]
    ]
    print("\n" + "\n".join([lines[0], "-+-".join("-" * w for w in widths), *lines[1:]]))
    expected = [
        (name, backend, str(a.status), a.kind, "0", "rejected", a.reason)
        for name, a in ATTACKS.items()
        for backend in outcomes
    ]
    assert rows == expected
