"""The call endpoints of the service app, over real HTTP (uvicorn) against a SQLite store.

The served pipelines are defined here and registered by reference (``test_app_calls:...``),
as a user registers ``module:attribute``. Nodes that must be observed mid-run wait on events
set by the test, never on sleeps.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from opentelemetry import trace
from servers import serve

from nestflow import Pipeline, node, record_usage
from nestflow.service import signing
from nestflow.service.app import create_app
from nestflow.service.call import pipeline_call
from nestflow.service.client import current_hop
from nestflow.service.store import Store, open_store

WAIT_S = 10.0
TRACE_ID = 0x4BF92F3577B34DA6A3CE929D0E0E4736

# --- served pipelines -----------------------------------------------------------------------


@node(output_name="summary")
def summarise(thread: list[Any], style: str = "plain") -> str:
    return f"{style}: {len(thread)} messages"


@node(output_name="sentiment")
def feel(thread: list[Any]) -> str:
    return "positive" if thread else "neutral"


summariser = Pipeline([summarise, feel], name="summariser")

SUMMARISER = {
    "name": "summariser",
    "source": "test_app_calls:summariser",
    "contract": {
        "inputs": [
            {"name": "thread", "type": "array", "required": True},
            {"name": "style", "type": "string", "required": False},
        ],
        "outputs": ["summary", "sentiment"],
        "response_key": "summary",
    },
}


class Probe:
    """What nodes of the probing pipelines see and when; reset by each test that uses it."""

    def __init__(self) -> None:
        self.store_url = ""
        self.seen: list[dict[str, Any]] = []
        self.started = threading.Event()
        self.release = threading.Event()
        self.interval: tuple[float, float] = (0.0, 0.0)
        self.trace_id = 0


probe = Probe()


@node(output_name="record")
def read_own_record(ticket: str) -> str:
    """Reads the audit store from inside the run, as A12.5 asks, and notes the hop it runs at."""
    with open_store(probe.store_url) as store:
        probe.seen = [record.to_json() for record in store.audit_for("acme", 10)]
    record_usage("llm_tokens", 412)  # the callee pays: counted in its audit record
    hop = current_hop()
    probe.seen.append({"hop": [hop.depth, list(hop.chain), hop.pipeline]})
    probe.trace_id = trace.get_current_span().get_span_context().trace_id
    return ticket


auditor = Pipeline([read_own_record], name="auditor")


@node(output_name="record")
def wait_for_release(ticket: str) -> str:
    start = time.monotonic()
    probe.started.set()
    probe.release.wait(WAIT_S)
    probe.interval = (start, time.monotonic())
    return ticket


slow = Pipeline([wait_for_release], name="slow")


@node(output_name="done")
def after_release(record: str) -> str:
    probe.seen.append({"after": record})
    return record


slow_then_more = Pipeline([wait_for_release, after_release], name="slow_then_more")


@node(output_name="record")
def fail(ticket: str) -> str:
    raise ValueError(f"cannot file {ticket}")


failing = Pipeline([fail], name="failing")


@node(output_name="record")
def as_set(ticket: str) -> set[str]:
    return {ticket}


unsendable = Pipeline([as_set], name="unsendable")

looper = Pipeline([wait_for_release], name="looper")
"""Replaced by a test with a pipeline that calls itself back over HTTP, once its token exists."""


def ticket_contract(name: str, budget: float = 30) -> dict[str, Any]:
    return {
        "name": name,
        "source": f"test_app_calls:{name}",
        "contract": {
            "inputs": [{"name": "ticket", "type": "string"}],
            "outputs": ["record"],
            "response_key": "record",
            "time_budget_s": budget,
        },
    }


# --- fixtures ---------------------------------------------------------------------------------


@dataclass
class Service:
    """A running app: its URL, store, the admin keys of acme (owner) and beta, an HTTP client."""

    url: str
    store: Store
    keys: dict[str, str]
    http: httpx.Client

    def admin(self, org: str = "acme") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[org]}"}

    def register(self, contract: dict[str, Any]) -> None:
        reply = self.http.post(
            f"{self.url}/v1/admin/pipelines", json=contract, headers=self.admin()
        )
        assert reply.status_code == 201, reply.text

    def token(self, pipeline: str, holder: str | None = None, action: str = "") -> dict[str, Any]:
        path = f"{self.url}/v1/admin/pipelines/{pipeline}/tokens" + (f"/{action}" if action else "")
        params = {"holder": holder} if holder else {}
        reply = self.http.post(path, params=params, headers=self.admin())
        assert reply.status_code == 200, reply.text
        issued: dict[str, Any] = reply.json()
        return issued

    def call(
        self, pipeline: str, token: str, inputs: dict[str, Any], **headers: str
    ) -> httpx.Response:
        sent = {"Authorization": f"Bearer {token}", **headers}
        return self.http.post(self.call_url(pipeline), json={"inputs": inputs}, headers=sent)

    def call_url(self, pipeline: str, org: str = "acme") -> str:
        return f"{self.url}/v1/call/{org}/{pipeline}"

    def audit(self, org: str = "acme") -> list[dict[str, Any]]:
        reply = self.http.get(f"{self.url}/v1/audit", headers=self.admin(org))
        assert reply.status_code == 200, reply.text
        records: list[dict[str, Any]] = reply.json()["records"]
        return records


@pytest.fixture
def service(sqlite_url: str) -> Iterator[Service]:
    with open_store(sqlite_url) as store, serve(create_app(store)) as url:
        keys = {org: store.create_org(org) for org in ("acme", "beta", "gamma")}
        with httpx.Client(timeout=WAIT_S) as http:
            yield Service(url, store, keys, http)


@pytest.fixture
def fresh_probe(sqlite_url: str) -> Iterator[Probe]:
    global probe
    probe = Probe()
    probe.store_url = sqlite_url
    yield probe
    probe.release.set()


def error_of(reply: httpx.Response) -> dict[str, Any]:
    body: dict[str, Any] = reply.json()
    assert body["status"] == "error"
    assert set(body["error"]) >= {"type", "message", "run_id"}
    error: dict[str, Any] = body["error"]
    return error


# --- A12.2: calls and contracts ---------------------------------------------------------------


def test_a_valid_call_returns_the_response_key_as_result_and_every_output(service: Service) -> None:
    service.register(SUMMARISER)
    token = service.token("summariser")["token"]
    reply = service.call("summariser", token, {"thread": ["hi", "there"], "style": "short"})
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["status"] == "ok"
    assert body["result"] == "short: 2 messages"
    assert body["outputs"] == {"summary": "short: 2 messages", "sentiment": "positive"}
    assert isinstance(body["run_id"], str)
    assert body["duration_ms"] >= 0


def test_a_missing_required_input_gives_422_listing_it(service: Service) -> None:
    service.register(SUMMARISER)
    token = service.token("summariser")["token"]
    reply = service.call("summariser", token, {"style": "short", "extra": 1})
    assert reply.status_code == 422
    error = error_of(reply)
    assert error["type"] == "contract_violation"
    assert error["run_id"] is None
    assert any("`thread`" in problem for problem in error["problems"])
    assert any("`extra`" in problem for problem in error["problems"])


def test_get_returns_the_contract_document(service: Service) -> None:
    service.register(SUMMARISER)
    token = service.token("summariser")["token"]
    reply = service.http.get(
        service.call_url("summariser"), headers={"Authorization": f"Bearer {token}"}
    )
    assert reply.status_code == 200
    document = reply.json()
    assert document["inputs_schema"]["required"] == ["thread"]
    assert document["inputs_schema"]["properties"]["thread"] == {"type": "array"}
    assert (document["outputs"], document["response_key"]) == (["summary", "sentiment"], "summary")
    assert document["time_budget_s"] == 30


def test_unknown_organisation_or_pipeline_gives_404_with_a_null_run_id(service: Service) -> None:
    for url in (service.call_url("nothing"), service.call_url("summariser", org="nobody")):
        reply = service.http.post(url, json={"inputs": {}})
        assert reply.status_code == 404
        assert error_of(reply)["run_id"] is None


def test_a_malformed_body_gives_400(service: Service) -> None:
    service.register(SUMMARISER)
    token = service.token("summariser")["token"]
    headers = {"Authorization": f"Bearer {token}"}
    for body in (b"not json", b"[1, 2]", b'{"inputs": 3}', b'{"inputs": {}, "mode": "stream"}'):
        reply = service.http.post(service.call_url("summariser"), content=body, headers=headers)
        assert reply.status_code == 400, body
        assert error_of(reply)["type"] == "malformed_request"


def test_a_failing_run_gives_500_with_the_user_exception_and_its_run_id(service: Service) -> None:
    service.register(ticket_contract("failing"))
    token = service.token("failing")["token"]
    reply = service.call("failing", token, {"ticket": "T-1"})
    assert reply.status_code == 500
    error = error_of(reply)
    assert error["type"] == "ValueError"
    assert "cannot file T-1" in error["message"]
    assert isinstance(error["run_id"], str)
    (record,) = service.audit()
    assert (record["status"], record["error_type"]) == ("error", "ValueError")
    assert record["run_id"] == error["run_id"]
    assert "traceback" not in error
    assert "Traceback" not in reply.text


def test_a_server_in_debug_mode_sends_the_traceback_of_a_failed_run(sqlite_url: str) -> None:
    with open_store(sqlite_url) as store, serve(create_app(store, debug=True)) as url:
        keys = {"acme": store.create_org("acme")}
        with httpx.Client(timeout=WAIT_S) as http:
            service = Service(url, store, keys, http)
            service.register(ticket_contract("failing"))
            token = service.token("failing")["token"]
            reply = service.call("failing", token, {"ticket": "T-1"})
    assert reply.status_code == 500
    error = error_of(reply)
    assert error["traceback"].startswith("Traceback (most recent call last)")
    assert 'raise ValueError(f"cannot file {ticket}")' in error["traceback"]


def test_outputs_that_are_not_json_give_500_and_an_error_record(service: Service) -> None:
    service.register(ticket_contract("unsendable"))
    token = service.token("unsendable")["token"]
    reply = service.call("unsendable", token, {"ticket": "T-1"})
    assert reply.status_code == 500
    error = error_of(reply)
    assert error["type"] == "TypeError"
    assert "JSON" in error["message"]
    assert service.audit()[0]["status"] == "error"


# --- A12.3: tokens ----------------------------------------------------------------------------


def test_a_wrong_token_gives_401_and_is_audited_as_rejected(service: Service) -> None:
    service.register(SUMMARISER)
    for headers in ({"Authorization": "Bearer not-a-token"}, {}):
        reply = service.http.post(
            service.call_url("summariser"), json={"inputs": {"thread": []}}, headers=headers
        )
        assert reply.status_code == 401
        assert error_of(reply)["run_id"] is None
    records = service.audit()
    assert [(r["status"], r["reason"], r["caller_org"]) for r in records] == [
        ("rejected", "invalid_token", None)
    ] * 2


def test_a_token_of_another_pipeline_gives_401(service: Service) -> None:
    service.register(SUMMARISER)
    service.register(ticket_contract("failing"))
    token = service.token("failing")["token"]
    assert service.call("summariser", token, {"thread": []}).status_code == 401


def test_after_rotation_the_old_token_fails_at_once_and_the_new_one_works(service: Service) -> None:
    service.register(SUMMARISER)
    old = service.token("summariser")["token"]
    assert service.call("summariser", old, {"thread": []}).status_code == 200
    new = service.token("summariser", action="rotate")["token"]
    assert service.call("summariser", old, {"thread": []}).status_code == 401
    assert service.call("summariser", new, {"thread": []}).status_code == 200


def test_a_revoked_token_gives_401(service: Service) -> None:
    service.register(SUMMARISER)
    token = service.token("summariser")["token"]
    service.token("summariser", action="revoke")
    assert service.call("summariser", token, {"thread": []}).status_code == 401


# --- A12.4: cross-organisation calls -----------------------------------------------------------


def signed_call(
    service: Service, issued: dict[str, Any], timestamp: int | None = None, nonce: str | None = None
) -> httpx.Response:
    body = json.dumps({"inputs": {"thread": ["x"]}}).encode()
    path = "/v1/call/acme/summariser"
    headers = signing.sign(
        issued["secret"], "POST", path, body, 0, timestamp=timestamp, nonce=nonce
    )
    headers |= {"Authorization": f"Bearer {issued['token']}", "X-Nestflow-Depth": "0"}
    return service.http.post(service.url + path, content=body, headers=headers)


def set_cross_org(service: Service, allowed: bool) -> None:
    reply = service.http.put(
        f"{service.url}/v1/admin/pipelines/summariser/allow-cross-org",
        json={"allow_cross_org": allowed},
        headers=service.admin(),
    )
    assert reply.json() == {"allow_cross_org": allowed}


def test_cross_org_calls_are_refused_then_must_be_signed_fresh_and_once(service: Service) -> None:
    service.register(SUMMARISER)
    set_cross_org(service, True)
    issued = service.token("summariser", holder="beta")
    set_cross_org(service, False)
    assert service.call("summariser", issued["token"], {"thread": []}).status_code == 403

    set_cross_org(service, True)
    assert service.call("summariser", issued["token"], {"thread": []}).status_code == 401
    assert signed_call(service, issued).status_code == 200
    stale = int(time.time()) - 301
    assert signed_call(service, issued, timestamp=stale).status_code == 401
    nonce = "n" * 24
    assert signed_call(service, issued, nonce=nonce).status_code == 200
    replayed = signed_call(service, issued, nonce=nonce)
    assert replayed.status_code == 401
    assert "replay" in error_of(replayed)["message"]

    reasons = [r["reason"] for r in service.audit() if r["status"] == "rejected"]
    assert reasons == [
        "signature_replayed",
        "signature_expired",
        "signature_missing",
        "cross_org_not_allowed",
    ]


def test_admissions_forget_expired_nonces_and_keep_live_ones(service: Service) -> None:
    from sqlalchemy import select

    from nestflow.service.storage.schema import nonces

    service.register(SUMMARISER)
    set_cross_org(service, True)
    issued = service.token("summariser", holder="beta")
    grant = service.store.lookup_token(issued["token"])
    assert grant is not None
    assert service.store.record_nonce(grant.token_id, "long-gone", time.time() - 1)
    assert signed_call(service, issued, nonce="fresh-nonce-0123456789").status_code == 200
    with service.store._db.reading() as connection:
        kept = set(connection.scalars(select(nonces.c.nonce)))
    assert kept == {"fresh-nonce-0123456789"}


def test_the_owner_must_sign_too_once_cross_org_is_on(service: Service) -> None:
    service.register(SUMMARISER)
    set_cross_org(service, True)
    issued = service.token("summariser")
    assert service.call("summariser", issued["token"], {"thread": []}).status_code == 401
    assert signed_call(service, issued).status_code == 200


# --- A12.5: audit -------------------------------------------------------------------------------


def test_a_node_sees_its_own_record_started_and_the_call_ends_ok(
    service: Service, fresh_probe: Probe
) -> None:
    service.register(ticket_contract("auditor"))
    token = service.token("auditor")["token"]
    headers = {"X-Nestflow-Caller-Pipeline": "desk", "X-Nestflow-Caller-Node": "file"}
    headers["traceparent"] = f"00-{TRACE_ID:032x}-{0xB7AD6B7169203331:016x}-01"
    reply = service.call("auditor", token, {"ticket": "T-7"}, **headers)
    assert reply.status_code == 200, reply.text

    (seen, hop) = fresh_probe.seen
    assert (seen["status"], seen["pipeline"], seen["caller_org"]) == ("started", "auditor", "acme")
    assert hop == {"hop": [1, ["acme/auditor"], "auditor"]}
    assert fresh_probe.trace_id == TRACE_ID  # the run continues the caller's trace
    (record,) = service.audit()
    assert record["id"] == seen["id"]
    assert record["status"] == "ok"
    assert (record["caller_pipeline"], record["caller_node"]) == ("desk", "file")
    assert record["trace_id"] == f"{TRACE_ID:032x}"
    assert record["latency_ms"] > 0
    assert record["run_id"] == reply.json()["run_id"]
    assert {"wall_s", "cpu_s"} <= set(record["usage"])
    assert record["usage"]["llm_tokens"] == 412


def test_the_audit_listing_shows_a_call_to_caller_and_callee_only(service: Service) -> None:
    service.register(SUMMARISER)
    set_cross_org(service, True)
    issued = service.token("summariser", holder="beta")
    assert signed_call(service, issued).status_code == 200
    assert [r["status"] for r in service.audit("acme")] == ["ok"]
    assert [r["caller_org"] for r in service.audit("beta")] == ["beta"]
    assert service.audit("gamma") == []


def test_raw_tokens_and_secrets_appear_in_no_audit_row_or_listing(
    service: Service, sqlite_url: str
) -> None:
    import sqlite3

    service.register(SUMMARISER)
    set_cross_org(service, True)
    issued = service.token("summariser", holder="beta")
    signed_call(service, issued)
    service.call("summariser", issued["token"], {"thread": []})  # unsigned: rejected
    listing = json.dumps(service.audit("acme"))
    with sqlite3.connect(sqlite_url.removeprefix("sqlite:///")) as database:
        rows = json.dumps(database.execute("SELECT * FROM audit").fetchall())
    for text in (listing, rows):
        assert issued["token"] not in text
        assert issued["secret"] not in text
    assert "rejected" in listing


# --- A12.7: depth -------------------------------------------------------------------------------


def test_depth_9_with_a_ceiling_of_8_gives_508_with_the_chain(service: Service) -> None:
    service.register(SUMMARISER)
    token = service.token("summariser")["token"]
    chain = ",".join(f"beta/hop{i}" for i in range(9))
    at_ceiling = service.call("summariser", token, {"thread": []}, **{"X-Nestflow-Depth": "8"})
    assert at_ceiling.status_code == 200
    reply = service.call(
        "summariser",
        token,
        {"thread": []},
        **{"X-Nestflow-Depth": "9", "X-Nestflow-Call-Chain": chain},
    )
    assert reply.status_code == 508
    error = error_of(reply)
    assert error["chain"] == [*chain.split(","), "acme/summariser"]
    assert "beta/hop0 -> beta/hop1" in error["message"]
    assert error["run_id"] is None
    assert service.audit()[0]["reason"] == "depth_exceeded"


# --- the run pool and the time budget ---------------------------------------------------------


def test_the_api_answers_while_a_slow_run_executes(service: Service, fresh_probe: Probe) -> None:
    service.register(ticket_contract("slow"))
    token = service.token("slow")["token"]
    replies: list[httpx.Response] = []
    caller = threading.Thread(
        target=lambda: replies.append(service.call("slow", token, {"ticket": "x"}))
    )
    caller.start()
    assert fresh_probe.started.wait(WAIT_S)
    start = time.monotonic()
    document = service.http.get(
        service.call_url("slow"), headers={"Authorization": f"Bearer {token}"}
    )
    answered = time.monotonic()
    fresh_probe.release.set()
    caller.join(WAIT_S)
    assert document.status_code == 200
    assert replies[0].status_code == 200
    run_start, run_end = fresh_probe.interval
    assert run_start < start
    assert answered < run_end


def test_a_run_past_its_budget_gives_504_and_is_audited_as_timeout(
    service: Service, fresh_probe: Probe
) -> None:
    service.register(ticket_contract("slow", budget=0.2))
    token = service.token("slow")["token"]
    reply = service.call("slow", token, {"ticket": "x"})
    assert reply.status_code == 504
    assert error_of(reply)["type"] == "timeout"
    (record,) = service.audit()
    assert (record["status"], record["error_type"]) == ("timeout", "timeout")


def test_past_its_budget_a_run_starts_no_more_nodes_and_the_504_names_it(
    sqlite_url: str, fresh_probe: Probe
) -> None:
    """One worker: the second call runs only once the abandoned run has ended."""
    contract = ticket_contract("slow_then_more", budget=0.3)
    contract["contract"]["outputs"] = ["done"]
    contract["contract"]["response_key"] = "done"
    with open_store(sqlite_url) as store, serve(create_app(store, workers=1)) as url:
        keys = {"acme": store.create_org("acme")}
        with httpx.Client(timeout=WAIT_S) as http:
            service = Service(url, store, keys, http)
            service.register(contract)
            service.register(SUMMARISER)
            token = service.token("slow_then_more")["token"]
            reply = service.call("slow_then_more", token, {"ticket": "x"})
            assert reply.status_code == 504
            error = error_of(reply)
            assert error["type"] == "timeout"
            assert isinstance(error["run_id"], str)
            fresh_probe.release.set()
            other = service.token("summariser")["token"]
            assert service.call("summariser", other, {"thread": []}).status_code == 200
            records = {r["pipeline"]: r for r in service.audit()}
    assert fresh_probe.interval != (0.0, 0.0)  # the held node did end
    assert {"after": "x"} not in fresh_probe.seen  # but the node after it never started
    timed_out = records["slow_then_more"]
    assert (timed_out["status"], timed_out["run_id"]) == ("timeout", error["run_id"])


def test_a_pipeline_calling_itself_stops_at_the_depth_ceiling(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import test_app_calls

    # Each level of the loop holds a worker while it waits for the next: depths 0 to 8.
    with open_store(sqlite_url) as store, serve(create_app(store, workers=10)) as url:
        keys = {"acme": store.create_org("acme")}
        with httpx.Client(timeout=60) as http:
            service = Service(url, store, keys, http)
            service.register(ticket_contract("looper"))
            token = service.token("looper")["token"]
            again = pipeline_call(service.call_url("looper"), token, {"ticket": "ticket"}, "record")
            monkeypatch.setattr(test_app_calls, "looper", Pipeline([again], name="looper"))
            reply = service.call("looper", token, {"ticket": "T"})
            records = service.audit()
    assert reply.status_code == 200
    assert reply.json()["result"] is None  # the deepest call was cut, and said so
    cut = [r for r in records if r["status"] == "rejected"]
    assert [(r["depth"], r["reason"]) for r in cut] == [(9, "depth_exceeded")]
    assert sorted(r["depth"] for r in records if r["status"] == "ok") == list(range(9))
