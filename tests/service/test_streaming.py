"""Streamed calls (SPEC 12.3, A12.8): progress events as the run goes, then its result or error.

Each test runs the real app under uvicorn over a SQLite store and reads the stream with httpx
line by line, through the same event reader ``pipeline_call`` uses. Nodes that must be seen
mid-run wait on events the test sets, never on sleeps.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from servers import serve

from nestflow import LocalBackend, Pipeline, node, record_usage
from nestflow.callbacks.events import CallbackContext, PipelineCallback
from nestflow.runtime.sites import current_site
from nestflow.service.app import create_app
from nestflow.service.call import pipeline_call
from nestflow.service.client import EventReader
from nestflow.service.store import Store, open_store

WAIT_S = 10.0


# --- served pipelines -----------------------------------------------------------------------


SPLIT: list[str] = []
"""Every text ``split`` was run on, in order."""


@node(output_name="words")
def split(text: str) -> list[str]:
    SPLIT.append(text)
    record_usage("llm_tokens", 7)
    return text.split()


@node(output_name="count")
def count(words: list[str]) -> int:
    return len(words)


@node(output_name="shout")
def shout(words: list[str]) -> str:
    return " ".join(words).upper()


counter = Pipeline([split, count, shout], name="counter")

word = Pipeline([shout], name="word")
per_word = Pipeline(
    [split, word.as_node(name="each", input_mapping={"words": "words"}, map_over="words")],
    name="per_word",
)


@node(output_name="count")
def broken(text: str) -> int:
    raise ValueError(f"cannot count {text!r}")


failing = Pipeline([broken], name="failing")


class Gate:
    """Held by a test: the node waits until it is let through."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()


gate = Gate()


@node(output_name="count")
def held(text: str) -> int:
    gate.entered.set()
    gate.release.wait(WAIT_S)
    return len(text)


waiting = Pipeline([held], name="waiting")


def contract(name: str, outputs: list[str], key: str) -> dict[str, Any]:
    return {
        "name": name,
        "source": f"test_streaming:{name}",
        "contract": {
            "inputs": [{"name": "text", "type": "string"}],
            "outputs": outputs,
            "response_key": key,
            "time_budget_s": 1,
        },
    }


# --- fixtures ---------------------------------------------------------------------------------


@dataclass
class Service:
    url: str
    store: Store
    key: str
    http: httpx.Client

    def publish(self, name: str, outputs: list[str], key: str) -> str:
        admin = {"Authorization": f"Bearer {self.key}"}
        reply = self.http.post(
            f"{self.url}/v1/admin/pipelines", json=contract(name, outputs, key), headers=admin
        )
        assert reply.status_code == 201, reply.text
        reply = self.http.post(f"{self.url}/v1/admin/pipelines/{name}/tokens", headers=admin)
        assert reply.status_code == 200, reply.text
        token: str = reply.json()["token"]
        return token

    def stream(self, name: str, token: str, text: str) -> tuple[int, list[tuple[str, Any]]]:
        """The status and every event and comment of a streamed call, in order."""
        headers = {"Authorization": f"Bearer {token}", "Accept": "text/event-stream"}
        url = f"{self.url}/v1/call/acme/{name}"
        seen: list[tuple[str, Any]] = []
        with self.http.stream("POST", url, json={"inputs": {"text": text}}, headers=headers) as r:
            reader = EventReader()
            for line in r.iter_lines():
                if line.startswith(":"):
                    seen.append(("comment", line))
                    continue
                event = reader.feed(line)
                if event is not None:
                    seen.append((event.event, json.loads(event.data)))
            return r.status_code, seen


def started(url: str, **options: Any) -> Iterator[Service]:
    with open_store(url) as store, serve(create_app(store, **options)) as base:
        key = store.create_org("acme")
        with httpx.Client(timeout=WAIT_S) as http:
            yield Service(base, store, key, http)


@pytest.fixture
def service(sqlite_url: str) -> Iterator[Service]:
    yield from started(sqlite_url)


@pytest.fixture
def held_gate() -> Iterator[Gate]:
    global gate
    gate = Gate()
    yield gate
    gate.release.set()


# --- A12.8 --------------------------------------------------------------------------------------


def test_a12_8_a_stream_gives_progress_for_each_node_then_the_result(service: Service) -> None:
    token = service.publish("counter", ["count", "shout"], "shout")
    status, events = service.stream("counter", token, "a b c")
    assert status == 200
    kinds = [kind for kind, _ in events]
    assert kinds[-1] == "result"
    assert set(kinds[:-1]) == {"progress"}
    progress = [data for kind, data in events if kind == "progress"]
    for event in progress:
        assert set(event) >= {"kind", "path", "node", "item_index", "status", "duration_s"}
        assert "cached" in event
    ended = [(e["node"], e["status"]) for e in progress if e["kind"] == "node_end"]
    assert ended == [("split", "executed"), ("count", "executed"), ("shout", "executed")]
    started_nodes = [e["node"] for e in progress if e["kind"] == "node_start"]
    assert started_nodes == ["split", "count", "shout"]
    assert progress[0]["kind"] == "pipeline_start"
    assert progress[-1]["kind"] == "pipeline_end"
    assert progress[-1]["status"] == "ok"
    assert all(e["duration_s"] >= 0 for e in progress if e["kind"] == "node_end")
    assert {e["path"] for e in progress if e["kind"] == "node_end"} == {
        "counter > split",
        "counter > count",
        "counter > shout",
    }
    result = events[-1][1]
    assert result["status"] == "ok"
    assert result["result"] == "A B C"
    assert result["outputs"] == {"count": 3, "shout": "A B C"}


def test_map_items_of_a_nested_pipeline_are_streamed_with_their_index(service: Service) -> None:
    token = service.publish("per_word", ["shout"], "shout")
    status, events = service.stream("per_word", token, "x y")
    assert status == 200
    assert events[-1][1]["result"] == ["X", "Y"]
    progress = [data for kind, data in events if kind == "progress"]
    items = sorted(e["item_index"] for e in progress if e["kind"] == "map_item_end")
    assert items == [0, 1]
    inner = [e for e in progress if e["kind"] == "node_end" and e["node"] == "shout"]
    assert sorted(e["item_index"] for e in inner) == [0, 1]
    assert {e["path"] for e in inner} == {"per_word > each > shout"}


def test_a_failing_run_ends_the_stream_with_an_error_event_and_status_200(
    service: Service,
) -> None:
    token = service.publish("failing", ["count"], "count")
    status, events = service.stream("failing", token, "abc")
    assert status == 200
    kind, body = events[-1]
    assert kind == "error"
    assert body["status"] == "error"
    assert body["error"]["type"] == "ValueError"
    assert "cannot count 'abc'" in body["error"]["message"]
    assert isinstance(body["error"]["run_id"], str)
    errors = [d for k, d in events if k == "progress" and d["kind"] == "node_error"]
    assert [(e["node"], e["status"]) for e in errors] == [("broken", "failed")]
    record = service.store.audit_for("acme", 1)[0]
    assert (record.status, record.mode, record.error_type) == ("error", "stream", "ValueError")


def test_the_contract_budget_does_not_bound_a_stream(service: Service, held_gate: Gate) -> None:
    """The budget is 1 s; the stream waits for its run well past it, then gets the result."""
    token = service.publish("waiting", ["count"], "count")
    threading.Timer(1.5, held_gate.release.set).start()
    status, events = service.stream("waiting", token, "abcd")
    assert status == 200
    assert events[-1] == ("result", events[-1][1])
    assert events[-1][1]["result"] == 4


def test_silence_is_filled_with_pings(sqlite_url: str, held_gate: Gate) -> None:
    for service in started(sqlite_url, ping_s=0.05):
        token = service.publish("waiting", ["count"], "count")

        def release_after_pings() -> None:
            held_gate.entered.wait(WAIT_S)
            threading.Timer(0.5, held_gate.release.set).start()

        threading.Thread(target=release_after_pings).start()
        status, events = service.stream("waiting", token, "abc")
        assert status == 200
        assert ("comment", ": ping") in events
        assert events[-1][0] == "result"


def test_a_stream_past_the_server_limit_ends_with_a_timeout_error(
    sqlite_url: str, held_gate: Gate
) -> None:
    for service in started(sqlite_url, stream_max_seconds=0.3, ping_s=0.1):
        token = service.publish("waiting", ["count"], "count")
        status, events = service.stream("waiting", token, "abc")
        assert status == 200
        kind, body = events[-1]
        assert kind == "error"
        assert body["error"]["type"] == "timeout"
        assert "stream_max_seconds" in body["error"]["message"]
        record = service.store.audit_for("acme", 1)[0]
        assert (record.status, record.mode) == ("timeout", "stream")


def test_a_caller_that_goes_away_leaves_a_record_finished_when_the_run_ends(
    service: Service, held_gate: Gate
) -> None:
    token = service.publish("waiting", ["count"], "count")
    headers = {"Authorization": f"Bearer {token}", "Accept": "text/event-stream"}
    url = f"{service.url}/v1/call/acme/waiting"
    with service.http.stream("POST", url, json={"inputs": {"text": "ab"}}, headers=headers) as r:
        assert r.status_code == 200
        assert held_gate.entered.wait(WAIT_S)
    # The connection is closed mid-run; the run goes on and its record is finished.
    assert service.store.audit_for("acme", 1)[0].status == "started"
    held_gate.release.set()
    record = _wait_for(
        lambda: service.store.audit_for("acme", 1)[0], lambda r: r.status != "started"
    )
    assert record.status == "ok"
    assert record.mode == "stream"


def test_the_audit_of_a_stream_has_its_usage(service: Service) -> None:
    token = service.publish("counter", ["count", "shout"], "shout")
    service.stream("counter", token, "a b")
    record = service.store.audit_for("acme", 1)[0]
    assert record.status == "ok"
    assert record.mode == "stream"
    assert record.usage["llm_tokens"] == 7
    assert record.usage["wall_s"] >= 0
    assert record.usage["cpu_s"] >= 0


# --- pipeline_call in stream mode ------------------------------------------------------------


class Remote(PipelineCallback):
    """Notes every remote event with the node it came to and the thread it came in."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any], int]] = []
        self.during: list[bool] = []
        """Per event: whether it came while the call was still running (live)."""
        self.log: list[str] = []

    def on_remote_event(self, node_id: str, event: Any, ctx: CallbackContext) -> None:
        self.events.append((node_id, dict(event), threading.get_ident()))
        self.during.append(current_site() is not None)
        self.log.append(f"remote:{event['kind']}")

    def on_node_end(
        self, node_id: str, outputs: Any, duration: float, ctx: CallbackContext
    ) -> None:
        self.log.append(f"end:{node_id}")


@node(output_name="report")
def report(shout: str | None) -> str:
    return f"got {shout}"


def caller(service: Service, token: str, **backend: Any) -> Pipeline:
    call = pipeline_call(
        f"{service.url}/v1/call/acme/counter",
        token,
        {"text": "text"},
        "shout",
        mode="stream",
        name="remote_count",
    )
    return Pipeline([call, report], name="caller", backend=LocalBackend(**backend))


def test_streamed_progress_reaches_on_remote_event_as_it_comes(service: Service) -> None:
    token = service.publish("counter", ["count", "shout"], "shout")
    seen = Remote()
    outputs = caller(service, token).with_callbacks([seen]).run({"text": "hi there"})
    assert outputs["report"] == "got HI THERE"
    assert outputs["shout._error"] is None
    assert {node_id for node_id, _, _ in seen.events} == {"remote_count"}
    ended = [e["node"] for _, e, _ in seen.events if e["kind"] == "node_end"]
    assert ended == ["split", "count", "shout"]
    assert {thread for _, _, thread in seen.events} == {threading.get_ident()}
    assert all(seen.during)  # each came while the call still ran
    assert seen.log[-2:] == ["end:remote_count", "end:report"]


def test_a_call_in_a_pool_thread_delivers_its_events_when_it_returns(service: Service) -> None:
    token = service.publish("counter", ["count", "shout"], "shout")
    seen = Remote()
    pipeline = caller(service, token, node_execution="threaded").with_callbacks([seen])
    assert pipeline.run({"text": "a b"})["report"] == "got A B"
    ended = [e["node"] for _, e, _ in seen.events if e["kind"] == "node_end"]
    assert ended == ["split", "count", "shout"]
    assert {thread for _, _, thread in seen.events} == {threading.get_ident()}
    assert not any(seen.during)  # kept, and delivered once the call returned
    assert seen.log[-2:] == ["end:remote_count", "end:report"]
    assert seen.log.index("end:remote_count") > seen.log.index("remote:pipeline_end")


def test_the_caller_pipeline_and_node_reach_the_callee_audit(service: Service) -> None:
    token = service.publish("counter", ["count", "shout"], "shout")
    caller(service, token).with_name("triage").run({"text": "a"})
    record = service.store.audit_for("acme", 1)[0]
    assert (record.caller_pipeline, record.caller_node) == ("triage", "remote_count")
    assert record.depth == 0


def _wait_for(read: Any, done: Any) -> Any:
    import time

    deadline = time.monotonic() + WAIT_S
    while True:
        value = read()
        if done(value) or time.monotonic() > deadline:
            return value
        time.sleep(0.02)


# --- what ProgressCallback and LoggingCallback make of remote calls --------------------------


def test_progress_shows_the_latest_remote_status_under_the_call_node(service: Service) -> None:
    import io

    from rich.console import Console

    from nestflow import ProgressCallback

    token = service.publish("counter", ["count", "shout"], "shout")
    console = Console(record=True, width=200, file=io.StringIO())
    progress = ProgressCallback(console=console, delay=0)
    caller(service, token).with_callbacks([progress]).run({"text": "a b"})
    lines = console.export_text().splitlines()
    at = next(i for i, line in enumerate(lines) if "remote_count" in line)
    assert "↳ remote: counter ok" in lines[at + 1]


def test_a_failed_call_is_logged_as_a_warning_with_its_error(
    service: Service, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    from nestflow import LoggingCallback

    token = service.publish("counter", ["count", "shout"], "shout")
    pipeline = caller(service, token + "-wrong").with_callbacks([LoggingCallback()])
    with caplog.at_level(logging.INFO, logger="nestflow"):
        outputs = pipeline.run({"text": "a"})
    assert outputs["shout"] is None
    ends = [r for r in caplog.records if getattr(r, "nestflow", {}).get("event") == "node_end"]
    by_node = {r.nestflow["node"]: r for r in ends}  # type: ignore[attr-defined]
    failed = by_node["remote_count"]
    assert failed.levelno == logging.WARNING
    assert failed.nestflow["error_type"] == "rejected"  # type: ignore[attr-defined]
    message = failed.nestflow["error_message"]  # type: ignore[attr-defined]
    assert isinstance(message, str)
    assert message
    assert by_node["report"].levelno == logging.INFO
    assert token not in caplog.text


def test_remote_events_are_logged_with_the_event(
    service: Service, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    from nestflow import LoggingCallback

    token = service.publish("counter", ["count", "shout"], "shout")
    with caplog.at_level(logging.INFO, logger="nestflow"):
        caller(service, token).with_callbacks([LoggingCallback()]).run({"text": "a"})
    remote = [
        r.nestflow  # type: ignore[attr-defined]
        for r in caplog.records
        if getattr(r, "nestflow", {}).get("event") == "remote_event"
    ]
    assert [e["remote"]["node"] for e in remote if e["remote"]["kind"] == "node_end"] == [
        "split",
        "count",
        "shout",
    ]
    assert {e["node"] for e in remote} == {"remote_count"}


# --- A12.10: one trace across the call -------------------------------------------------------

callee_spans = __import__(
    "opentelemetry.sdk.trace.export.in_memory_span_exporter", fromlist=["x"]
).InMemorySpanExporter()


def _provider(exporter: Any) -> Any:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider


def _traced_counter() -> Pipeline:
    from nestflow import TelemetryCallback

    return counter.with_name("traced").with_callbacks(
        [TelemetryCallback(tracer_provider=_provider(callee_spans))]
    )


traced = _traced_counter()


@pytest.mark.parametrize("mode", ["sync", "stream"])
def test_a12_10_callee_spans_join_the_caller_trace_under_the_call_node(
    service: Service, mode: str
) -> None:
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from nestflow import TelemetryCallback

    token = service.publish("traced", ["count", "shout"], "shout")
    callee_spans.clear()
    caller_spans = InMemorySpanExporter()
    call = pipeline_call(
        f"{service.url}/v1/call/acme/traced", token, {"text": "text"}, "shout", mode=mode
    )
    pipeline = Pipeline([call, report], name="caller")
    telemetry = TelemetryCallback(tracer_provider=_provider(caller_spans))
    assert pipeline.with_callbacks([telemetry]).run({"text": "a b"})["report"] == "got A B"

    (call_span,) = [s for s in caller_spans.get_finished_spans() if s.name == "node shout"]
    remote = callee_spans.get_finished_spans()
    (root,) = [s for s in remote if s.name == "pipeline traced"]
    assert {s.context.trace_id for s in remote} == {call_span.context.trace_id}
    assert root.parent is not None
    assert root.parent.span_id == call_span.context.span_id
    nodes = {
        s.name for s in remote if s.parent is not None and s.parent.span_id == root.context.span_id
    }
    assert {"node split", "node count", "node shout"} <= nodes


# --- calls whose caller or budget is gone before their run starts -----------------------------


def test_a_stream_whose_caller_is_gone_before_the_first_event_still_runs_and_is_audited(
    sqlite_url: str,
) -> None:
    """The ASGI app is driven directly, with a connection that fails on the first send."""
    import asyncio

    from nestflow.service.app import create_app

    with open_store(sqlite_url) as store:
        store.create_org("acme")
        app = create_app(store)
        from nestflow.service.contract import Contract
        from nestflow.service.registration import register

        register(store, "acme", Contract.from_mapping(contract("counter", ["count"], "count")))
        token = store.issue_token("acme", "counter").token
        body = json.dumps({"inputs": {"text": "a b"}}).encode()
        scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.4"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": "/v1/call/acme/counter",
            "raw_path": b"/v1/call/acme/counter",
            "root_path": "",
            "query_string": b"",
            "headers": [
                (b"authorization", f"Bearer {token}".encode()),
                (b"accept", b"text/event-stream"),
                (b"content-type", b"application/json"),
            ],
            "client": ("127.0.0.1", 1),
            "server": ("127.0.0.1", 2),
        }

        async def drive() -> None:
            sent = False

            async def receive() -> dict[str, Any]:
                nonlocal sent
                if not sent:
                    sent = True
                    return {"type": "http.request", "body": body, "more_body": False}
                await asyncio.sleep(3600)
                return {"type": "http.disconnect"}

            async def send(message: dict[str, Any]) -> None:
                raise OSError("the caller is gone")

            with pytest.raises(Exception):  # noqa: B017 (whatever the framework makes of it)
                await app(scope, receive, send)

        asyncio.run(drive())
        record = _wait_for(lambda: store.audit_for("acme", 1)[0], lambda r: r.status != "started")
        assert (record.status, record.mode) == ("ok", "stream"), record
        assert record.usage["llm_tokens"] == 7


def test_a_call_answered_504_while_it_waits_for_a_worker_never_runs(
    sqlite_url: str, held_gate: Gate
) -> None:
    ran: list[str] = []
    for service in started(sqlite_url, workers=1):
        holding = service.publish("waiting", ["count"], "count")
        counting = service.publish("counter", ["count", "shout"], "shout")
        headers = {"Authorization": f"Bearer {holding}"}
        first = threading.Thread(
            target=service.http.post,
            args=(f"{service.url}/v1/call/acme/waiting",),
            kwargs={"json": {"inputs": {"text": "x"}}, "headers": headers},
        )
        first.start()
        assert held_gate.entered.wait(WAIT_S)  # the one worker is busy now
        reply = service.http.post(
            f"{service.url}/v1/call/acme/counter",
            json={"inputs": {"text": "never"}},
            headers={"Authorization": f"Bearer {counting}"},
        )
        assert reply.status_code == 504  # its budget (1 s) passed in the queue
        assert reply.json()["error"]["run_id"] is None  # no run started
        held_gate.release.set()
        first.join(WAIT_S)
        # A third call runs only after the worker has taken (and dropped) the queued one.
        again = service.http.post(
            f"{service.url}/v1/call/acme/counter",
            json={"inputs": {"text": "a"}},
            headers={"Authorization": f"Bearer {counting}"},
        )
        assert again.status_code == 200
        records = [r for r in service.store.audit_for("acme", 10) if r.pipeline == "counter"]
        ran = [r.status for r in records]
    assert ran == ["ok", "timeout"]
    assert records[1].run_id is None
    assert "never" not in SPLIT  # the queued call's node never ran
    assert "a" in SPLIT
