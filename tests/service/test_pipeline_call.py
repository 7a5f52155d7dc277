"""The ``pipeline_call`` node against real HTTP servers (SPEC 12.3, 12.4, 12.7, 12.10; A12.9).

``Callee`` stands in for a nestflow service: a small Starlette app under uvicorn on a loopback
port (``servers.serve``), one behaviour per pipeline name, which records every request it
gets and, when it has a secret, verifies signatures with ``signing.verify`` as the service
does. Nothing is mocked: every call crosses a real socket.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from servers import serve, unreachable_url
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from nestflow import (
    InvalidOptionError,
    LocalBackend,
    LoggingCallback,
    Node,
    Outputs,
    Pipeline,
    TelemetryCallback,
    node,
)
from nestflow.cache.fingerprint import code_fingerprint
from nestflow.service import client, signing
from nestflow.service.call import pipeline_call
from nestflow.service.contract import Contract

TOKEN = "tok-3f9a1c7e5b2d4f6a8c0e"
SECRET = "sec-8d6b4f2a0c9e7d5b3a1f"
TOKEN_VAR, SECRET_VAR = "NESTFLOW_TEST_CALL_TOKEN", "NESTFLOW_TEST_CALL_SECRET"
BUDGET_S = 12
MAPPING = {"thread": "ticket.messages", "style": "style"}


@dataclass(frozen=True)
class Ticket:
    messages: list[str]
    title: str


INPUTS: dict[str, Any] = {"ticket": Ticket(["hello", "help"], "login"), "style": "short"}
SENT = {"thread": ["hello", "help"], "style": "short"}


# --- the stand-in service -----------------------------------------------------------------------


@dataclass
class Seen:
    """One request the callee received."""

    method: str
    pipeline: str
    headers: dict[str, str]
    body: bytes
    verdict: signing.Verdict | None


def error_body(kind: str, message: str, run_id: str | None) -> dict[str, Any]:
    return {"status": "error", "error": {"type": kind, "message": message, "run_id": run_id}}


def sse(event: str, data: Any) -> str:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n"


PROGRESS = [
    {"kind": "node", "path": "summarise > " + n, "node": n, "item_index": None,
     "status": "executed", "duration_s": 0.001, "cached": False}
    for n in ("clean", "summarise", "score")
]  # fmt: skip
RESULT = {"status": "ok", "result": "a summary", "outputs": {"summary": "a summary"},
          "run_id": "run-stream", "duration_ms": 3}  # fmt: skip


async def _stream(events: list[str]) -> AsyncIterator[str]:
    for event in events:
        yield event
        yield ": ping\n\n"  # comments between events, as the service's keep-alive


Handler = Callable[[Request, bytes], Awaitable[Response]]


@dataclass
class Callee:
    """A stand-in nestflow service: ``/v1/call/acme/<behaviour>``."""

    secret: str | None = None
    seen: list[Seen] = field(default_factory=list)
    nonces: set[str] = field(default_factory=set)

    def app(self) -> Starlette:
        route = Route("/v1/call/{org}/{pipeline}", self.endpoint, methods=["GET", "POST"])
        return Starlette(routes=[route])

    def record_nonce(self, nonce: str, expires_at: int) -> bool:
        if nonce in self.nonces:
            return False
        self.nonces.add(nonce)
        return True

    async def endpoint(self, request: Request) -> Response:
        body = await request.body()
        verdict = self.verify(request, body)
        pipeline = request.path_params["pipeline"]
        headers = {k.lower(): v for k, v in request.headers.items()}
        self.seen.append(Seen(request.method, pipeline, headers, body, verdict))
        if verdict is not None and not verdict.ok:
            return JSONResponse(error_body("signature", verdict.message, None), 401)
        if request.method == "GET":
            return JSONResponse(contract(pipeline).to_document())
        behaviour: Handler = getattr(self, f"do_{pipeline}")
        return await behaviour(request, body)

    def verify(self, request: Request, body: bytes) -> signing.Verdict | None:
        if self.secret is None:
            return None
        depth = request.headers.get("x-nestflow-depth", "")
        return signing.verify(
            self.secret, request.method, request.url.path, body, depth, request.headers,
            now=time.time(), record_nonce=self.record_nonce,
        )  # fmt: skip

    async def do_echo(self, request: Request, body: bytes) -> Response:
        inputs = json.loads(body)["inputs"]
        reply = {"status": "ok", "result": inputs, "outputs": {"summary": inputs},
                 "run_id": "run-echo", "duration_ms": 1}  # fmt: skip
        return JSONResponse(reply)

    async def do_slow(self, request: Request, body: bytes) -> Response:
        # Sleeps a minute, far past any timeout a test sets, unless the caller leaves first.
        for _ in range(1200):
            if await request.is_disconnected():
                break
            await asyncio.sleep(0.05)
        return JSONResponse({"status": "ok", "result": "too late", "run_id": "run-slow"})

    async def do_crash(self, request: Request, body: bytes) -> Response:
        return JSONResponse(error_body("ValueError", "the thread is empty", "run-crash"), 500)

    async def do_garbled(self, request: Request, body: bytes) -> Response:
        return Response('{"status": "ok", "result": ', media_type="application/json")

    async def do_refuse(self, request: Request, body: bytes) -> Response:
        # A careless server that echoes the credentials it was sent.
        said = f"{request.headers['authorization']} is not valid for acme/refuse"
        return JSONResponse(error_body("authentication", said, None), 401)

    async def do_invalid(self, request: Request, body: bytes) -> Response:
        return JSONResponse(error_body("contract", "input `thread` is required", None), 422)

    async def do_gateway(self, request: Request, body: bytes) -> Response:
        return Response("upstream is down", status_code=502, media_type="text/plain")

    async def do_teapot(self, request: Request, body: bytes) -> Response:
        return Response(status_code=418)

    async def do_stream(self, request: Request, body: bytes) -> Response:
        events = [*(sse("progress", p) for p in PROGRESS), sse("result", RESULT)]
        return StreamingResponse(_stream(events), media_type="text/event-stream")

    async def do_stream_fail(self, request: Request, body: bytes) -> Response:
        failed = error_body("ValueError", "score failed", "run-stream-fail")
        events = [sse("progress", PROGRESS[0]), sse("error", failed)]
        return StreamingResponse(_stream(events), media_type="text/event-stream")

    async def do_stream_cut(self, request: Request, body: bytes) -> Response:
        cut = _stream([sse("progress", PROGRESS[0])])
        return StreamingResponse(cut, media_type="text/event-stream")


def contract(pipeline: str) -> Contract:
    return Contract.from_mapping({
        "name": pipeline, "source": "flows/summarise.yaml",
        "contract": {"inputs": [{"name": "thread", "type": "array"},
                                {"name": "style", "type": "string", "required": False}],
                     "outputs": ["summary"], "response_key": "summary",
                     "time_budget_s": BUDGET_S}})  # fmt: skip


@pytest.fixture(scope="module")
def open_callee() -> Iterator[tuple[Callee, str]]:
    callee = Callee()
    with serve(callee.app()) as base:
        yield callee, base


@pytest.fixture(scope="module")
def signed_callee() -> Iterator[tuple[Callee, str]]:
    callee = Callee(secret=SECRET)
    with serve(callee.app()) as base:
        yield callee, base


@pytest.fixture
def callee(open_callee: tuple[Callee, str]) -> Callee:
    open_callee[0].seen.clear()
    return open_callee[0]


@pytest.fixture
def base(open_callee: tuple[Callee, str]) -> str:
    return open_callee[1]


@pytest.fixture
def secured(signed_callee: tuple[Callee, str]) -> tuple[Callee, str]:
    signed_callee[0].seen.clear()
    return signed_callee


# --- helpers ------------------------------------------------------------------------------------


def url_of(base: str, pipeline: str, org: str = "acme") -> str:
    return f"{base}/v1/call/{org}/{pipeline}"


def call(base: str, pipeline: str, key: str = "summary", **options: Any) -> Node:
    """A call node; the callee's budget is learned once per URL and process, so a test that
    learns it (``timeout=None``) calls an address of its own (``org=``)."""
    options.setdefault("timeout", 10)
    url = url_of(base, pipeline, options.pop("org", "acme"))
    return pipeline_call(url, options.pop("token", TOKEN), MAPPING, key, **options)


def fallback_for(key: str) -> Node:
    """A node downstream of the call: reads its result and its error output."""

    def fallback(summary: Any, err: dict[str, Any] | None) -> str:
        return "used the summary" if err is None else f"fell back after {err['type']}"

    made = node(fallback, output_name=f"{key}_final", name=f"{key}_fallback")
    return made.with_inputs({"summary": key, "err": f"{key}._error"})


def run_one(call_node: Node, **config: Any) -> Outputs:
    key = call_node.outputs[0]
    return Pipeline([call_node, fallback_for(key)], name="caller", **config).run(INPUTS)


# --- A12.9: every failure is data, and the pipeline goes on -----------------------------------


FAILURES = [
    ("slow", {"timeout": 0.5}, "timeout", None),
    ("crash", {}, "remote_error", 500),
    ("garbled", {}, "malformed_response", 200),
]


@pytest.mark.parametrize(("pipeline", "options", "kind", "status"), FAILURES)
def test_a12_9_a_failed_call_leaves_none_and_an_error_while_downstream_runs(
    callee: Callee, base: str, pipeline: str, options: dict[str, Any], kind: str, status: int | None
) -> None:
    out = run_one(call(base, pipeline, **options))
    error = out["summary._error"]
    assert out["summary"] is None
    assert error["type"] == kind
    assert error["status_code"] == status
    assert error["url"] == url_of(base, pipeline)
    assert isinstance(error["elapsed_s"], float)
    assert error["message"]
    assert out["summary_final"] == f"fell back after {kind}"
    assert out.report.status == "ok"
    assert {r.node: r.status for r in out.report.records} == {
        "summary": "executed",
        "summary_fallback": "executed",
    }


def test_a12_9_an_unreachable_port_is_a_network_error() -> None:
    with unreachable_url() as nowhere:
        out = run_one(call(nowhere, "echo"))
    error = out["summary._error"]
    assert out["summary"] is None
    assert out["summary_final"] == "fell back after network"
    assert error["type"] == "network"
    assert error["status_code"] is None
    assert "Check the URL" in error["message"]


@pytest.mark.parametrize("node_execution", ["sequential", "threaded", "parallel"])
def test_a12_9_four_failing_calls_in_one_pipeline_all_reach_their_fallbacks(
    base: str, node_execution: str
) -> None:
    with unreachable_url() as nowhere:
        calls = [
            call(base, "slow", "late", timeout=0.5),
            call(base, "crash", "crashed"),
            call(base, "garbled", "garbled"),
            call(nowhere, "echo", "unreached"),
        ]
        nodes = [*calls, *(fallback_for(c.outputs[0]) for c in calls)]
        backend = LocalBackend(node_execution=node_execution)  # type: ignore[arg-type]
        out = Pipeline(nodes, name="caller", backend=backend).run(INPUTS)
    kinds = {
        key: out[f"{key}._error"]["type"] for key in ("late", "crashed", "garbled", "unreached")
    }
    assert kinds == {
        "late": "timeout",
        "crashed": "remote_error",
        "garbled": "malformed_response",
        "unreached": "network",
    }
    assert all(out[f"{key}_final"].startswith("fell back") for key in kinds)
    assert out.report.status == "ok"


def test_a_remote_error_carries_the_remote_message_and_run_id(base: str) -> None:
    error = run_one(call(base, "crash"))["summary._error"]
    assert error["message"] == "the thread is empty"
    assert error["remote_run_id"] == "run-crash"


def test_a_401_is_rejected(base: str) -> None:
    error = run_one(call(base, "refuse"))["summary._error"]
    assert error["type"] == "rejected"
    assert error["status_code"] == 401
    assert "Check the token" in error["message"]


@pytest.mark.parametrize(
    ("pipeline", "status", "said"),
    [
        ("invalid", 422, "input `thread` is required"),
        ("gateway", 502, "upstream is down"),  # a 5xx without an error body
        ("teapot", 418, "empty"),
    ],
)
def test_any_other_non_2xx_is_an_http_error(
    base: str, pipeline: str, status: int, said: str
) -> None:
    error = run_one(call(base, pipeline))["summary._error"]
    assert error["type"] == "http_error"
    assert error["status_code"] == status
    assert said in error["message"]
    assert f"HTTP {status}" in error["message"]


# --- a good call --------------------------------------------------------------------------------


def test_a_good_sync_call_returns_the_response_key_value(callee: Callee, base: str) -> None:
    out = run_one(call(base, "echo"))
    assert out["summary"] == SENT
    assert out["summary._error"] is None
    assert out["summary_final"] == "used the summary"
    (posted,) = callee.seen
    assert json.loads(posted.body) == {"inputs": SENT}
    assert posted.headers["authorization"] == f"Bearer {TOKEN}"
    assert posted.headers["content-type"] == "application/json"
    assert posted.headers["accept"] == "application/json"


def test_a_local_run_sends_depth_zero_an_empty_chain_and_the_caller_node(
    callee: Callee, base: str
) -> None:
    run_one(call(base, "echo", name="ask_remote"))
    headers = callee.seen[0].headers
    assert headers["x-nestflow-depth"] == "0"
    assert headers["x-nestflow-call-chain"] == ""
    assert headers["x-nestflow-caller-node"] == "ask_remote"
    assert "traceparent" not in headers  # no span is current without a tracing callback


def test_calls_inside_a_service_run_send_its_hop(callee: Callee, base: str) -> None:
    hop = client.Hop(depth=3, chain=("acme/front", "acme/middle"), pipeline="middle")
    with client.calling_from(hop):
        run_one(call(base, "echo"), backend=LocalBackend(node_execution="threaded"))
    headers = callee.seen[0].headers
    assert headers["x-nestflow-depth"] == "3"
    assert headers["x-nestflow-call-chain"] == "acme/front,acme/middle"
    assert headers["x-nestflow-caller-pipeline"] == "middle"
    assert client.current_hop() == client.Hop()


def test_the_default_timeout_is_learned_once_from_the_contract(callee: Callee, base: str) -> None:
    learning = call(base, "echo", key="learned", timeout=None, org="learning")
    run_one(learning)
    run_one(learning)
    assert [s.method for s in callee.seen] == ["GET", "POST", "POST"]
    assert callee.seen[0].headers["authorization"] == f"Bearer {TOKEN}"
    assert client.sync_timeout(BUDGET_S) == BUDGET_S + 5
    assert client.sync_timeout(None) == 35


# --- streaming ------------------------------------------------------------------------------------


def stream_request(base: str, pipeline: str) -> client.Request:
    return client.prepare("POST", url_of(base, pipeline), SENT, token=TOKEN, secret=None,
                          hop=client.Hop(), node="summary", stream=True)  # fmt: skip


def test_a_stream_gives_each_progress_event_in_order_then_the_result(base: str) -> None:
    events: list[dict[str, Any]] = []
    outcome = client.send(stream_request(base, "stream"), 10, on_event=events.append)
    assert events == PROGRESS
    assert outcome == client.Success("a summary", "run-stream")


def test_stream_mode_publishes_the_result(callee: Callee, base: str) -> None:
    out = run_one(call(base, "stream", mode="stream"))
    assert out["summary"] == "a summary"
    assert out["summary._error"] is None
    assert callee.seen[0].headers["accept"] == "text/event-stream"


@pytest.mark.parametrize(
    ("pipeline", "kind", "said"),
    [
        ("stream_fail", "remote_error", "score failed"),
        ("stream_cut", "malformed_response", "ended before its `result`"),
    ],
)
def test_a_stream_that_fails_or_stops_is_a_failure_with_status_200(
    base: str, pipeline: str, kind: str, said: str
) -> None:
    error = run_one(call(base, pipeline, mode="stream"))["summary._error"]
    assert error["type"] == kind
    assert error["status_code"] == 200
    assert said in error["message"]


def test_the_event_reader_follows_the_server_sent_events_rules() -> None:
    reader = client.EventReader()
    lines = ["event: progress", "data: {\"a\":", "data:1}", "id: 7", ": ping", "",
             "", "data: plain", "", "event: result", "data: {}"]  # fmt: skip
    found = [event for line in lines if (event := reader.feed(line)) is not None]
    assert found == [
        client.ServerEvent("progress", '{"a":\n1}'),
        client.ServerEvent("message", "plain"),
    ]  # the last event is cut off by the end of the stream: never dispatched


# --- signing and credentials ------------------------------------------------------------------


def test_signed_requests_verify_on_the_server_with_secrets_read_at_call_time(
    secured: tuple[Callee, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    callee, at = secured
    made = call(at, "echo", key="signed", token=f"env:{TOKEN_VAR}", secret=f"env:{SECRET_VAR}",
                timeout=None, org="signing")  # fmt: skip
    monkeypatch.setenv(TOKEN_VAR, TOKEN)  # set after the node is made: read at call time
    monkeypatch.setenv(SECRET_VAR, SECRET)
    out = run_one(made)
    assert out["signed"] == SENT
    assert [(s.method, s.verdict) for s in callee.seen] == [
        ("GET", signing.ACCEPTED),
        ("POST", signing.ACCEPTED),
    ]
    assert callee.seen[1].headers["authorization"] == f"Bearer {TOKEN}"


def test_a_wrong_secret_is_rejected(secured: tuple[Callee, str]) -> None:
    callee, at = secured
    error = run_one(call(at, "echo", secret="not-the-secret"))["summary._error"]
    assert error["type"] == "rejected"
    assert error["status_code"] == 401
    assert callee.seen[0].verdict is not None
    assert callee.seen[0].verdict.reason == "bad_signature"


def test_an_unset_environment_variable_fails_the_run_naming_it(base: str) -> None:
    with pytest.raises(LookupError, match="NESTFLOW_TEST_NEVER_SET"):
        run_one(call(base, "echo", token="env:NESTFLOW_TEST_NEVER_SET"))


def test_credentials_appear_in_no_report_repr_log_or_message(
    secured: tuple[Callee, str],
    open_callee: tuple[Callee, str],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv(SECRET_VAR, SECRET)
    good = call(secured[1], "echo", key="good", secret=f"env:{SECRET_VAR}")
    echoed = call(open_callee[1], "refuse", key="echoed", secret=SECRET)
    with unreachable_url() as nowhere:
        lost = call(nowhere, "echo", key="lost", secret=SECRET)
        nodes = [good, echoed, lost, *(fallback_for(n.outputs[0]) for n in (good, echoed, lost))]
        logging_callback = LoggingCallback(level=logging.DEBUG)
        with caplog.at_level(logging.DEBUG):
            out = Pipeline(nodes, name="caller", callbacks=[logging_callback]).run(INPUTS)
    assert out["good"] == SENT
    assert "is not valid for acme/refuse" in out["echoed._error"]["message"]
    left_behind = [
        out.report.to_json(),
        json.dumps({k: v for k, v in out.items() if k != "good"}, default=repr),
        caplog.text,
        *(repr(n) for n in (good, echoed, lost)),
        *(repr(n.func) for n in (good, echoed, lost)),
    ]
    assert '"node": "echoed"' in caplog.text  # the logs searched are not empty
    assert "HTTP Request: POST" in caplog.text
    for text in left_behind:
        assert TOKEN not in text
        assert SECRET not in text


def test_the_cache_key_ignores_token_and_secret(base: str) -> None:
    one = call(base, "echo", token="first-token")
    other = call(base, "echo", token="other-token", secret="a-secret", timeout=3)
    elsewhere = call(base, "crash", token="first-token")
    assert code_fingerprint(one.func) == code_fingerprint(other.func)
    assert code_fingerprint(one.func) != code_fingerprint(elsewhere.func)
    assert one.cache is False
    assert call(base, "echo", cache=True).cache is True


def test_inputs_that_are_not_json_fail_naming_them(base: str) -> None:
    made = pipeline_call(url_of(base, "echo"), TOKEN, {"thread": "ticket"}, "summary")
    with pytest.raises(TypeError, match=r"`thread` \(Ticket\)"):
        Pipeline([made]).run(ticket=INPUTS["ticket"])


def test_a_selector_that_leads_nowhere_says_where_it_stops(base: str) -> None:
    made = pipeline_call(url_of(base, "echo"), TOKEN, {"thread": "ticket.body.text"}, "summary")
    with pytest.raises(LookupError, match=r"stops at `ticket`.*`body`"):
        Pipeline([made]).run(ticket={"messages": []})


# --- the node itself ------------------------------------------------------------------------------


def test_the_node_reads_the_selector_roots_and_publishes_result_and_error() -> None:
    made = pipeline_call("http://h/v1/call/a/b", TOKEN,
                         {"thread": "ticket.messages", "title": "ticket.title", "style": "style"},
                         "summary")  # fmt: skip
    assert made.inputs == ("ticket", "style")
    assert made.outputs == ("summary", "summary._error")
    assert made.name == "summary"
    assert made.timeout is None


def test_every_problem_of_the_arguments_is_reported_at_once() -> None:
    with pytest.raises(InvalidOptionError) as caught:
        pipeline_call(
            "ftp://h/x", "env:BAD-NAME", {"thread": "ticket..body", "class": 3},  # type: ignore[dict-item]
            "2nd", mode="push", secret="", timeout=0,  # type: ignore[arg-type]
        )  # fmt: skip
    message = str(caught.value)
    for expected in ("url 'ftp://h/x'", "BAD-NAME", "empty path segment", "`class`",
                     "must be a str selector", "output_key", "mode must be", "secret must be",
                     "timeout must be"):  # fmt: skip
        assert expected in message


def test_a_url_with_credentials_is_refused_without_repeating_them() -> None:
    with pytest.raises(InvalidOptionError, match="pass them as token=") as caught:
        pipeline_call("https://user:hunter2@h/v1/call/a/b", TOKEN, {}, "summary")
    assert "hunter2" not in str(caught.value)


def test_a_call_with_a_trace_sends_the_call_node_span_as_traceparent(
    callee: Callee, base: str
) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    run_one(call(base, "echo"), callbacks=[TelemetryCallback(tracer_provider=provider)])
    (span,) = [s for s in exporter.get_finished_spans() if s.name == "node summary"]
    version, trace_id, parent_id, _flags = callee.seen[0].headers["traceparent"].split("-")
    assert version == "00"
    assert int(trace_id, 16) == span.context.trace_id
    assert int(parent_id, 16) == span.context.span_id


def test_without_httpx_pipeline_call_names_the_extra(without: Callable[[str, str], str]) -> None:
    made = (
        "from nestflow.service.call import pipeline_call; pipeline_call('http://h/', 't', {}, 'r')"
    )
    said = without("httpx", made)
    assert "pip install 'nestflow[client]'" in said
