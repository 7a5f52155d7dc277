"""Two service processes on one PostgreSQL database: replays, concurrent calls, and a loop.

Each server is ``nestflow serve`` in its own process (``create_app(open_store(url))`` under
uvicorn) on a free port, with a call depth ceiling of 3. They share the database, so a nonce
seen by one is seen by the other, and every call lands in one audit trail. The served
pipelines live in a module written into a temporary folder, the servers' working directory:
``ping`` (organisation north, server 1) calls ``pong`` (south, server 2), which calls
``ping`` again, each relaying what the call it made answered. Their tokens reach the
servers as environment variables (``env:`` credentials, read at call time).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from nestflow import Pipeline
from nestflow.service import signing
from nestflow.service.call import pipeline_call
from nestflow.service.contract import Contract
from nestflow.service.registration import register
from nestflow.service.store import IssuedToken, Store, open_store

if TYPE_CHECKING:
    from conftest import PostgresServer

CEILING = 3
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0
CONCURRENT_CALLS = 16
MODULE = "two_server_flows"
FLOWS = '''
from typing import Any

from nestflow import Pipeline, node
from nestflow.service.call import pipeline_call


@node(output_name="record")
def echo(ticket: str) -> str:
    return f"filed {{ticket}}"


@node(output_name="record")
def relay(inner: Any, err: Any) -> Any:
    """What the call answered: its result, or the status and message of its failure."""
    if err is None:
        return inner
    return {{"status_code": err["status_code"], "message": err["message"]}}


def looping(name: str, url: str, variable: str) -> Pipeline:
    call = pipeline_call(url, f"env:{{variable}}", {{"ticket": "ticket"}}, "inner")
    return Pipeline([call, relay.with_inputs({{"err": "inner._error"}})], name=name)


echoed = Pipeline([echo], name="echoed")
ping = looping("ping", "{pong}", "NESTFLOW_TEST_PONG_TOKEN")
pong = looping("pong", "{ping}", "NESTFLOW_TEST_PING_TOKEN")
'''


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def contract(name: str, source: str, cross_org: bool = False) -> Contract:
    return Contract.from_mapping(
        {
            "name": name,
            "source": f"{MODULE}:{source}",
            "contract": {
                "inputs": [{"name": "ticket", "type": "string"}],
                "outputs": ["record"],
                "response_key": "record",
            },
            "allow_cross_org": cross_org,
        }
    )


@dataclass
class Pair:
    """Two servers on one database, the store they share, and the tokens issued."""

    urls: tuple[str, str]
    store: Store
    tokens: dict[str, IssuedToken]

    def call_url(self, server: int, org: str, pipeline: str) -> str:
        return f"{self.urls[server]}/v1/call/{org}/{pipeline}"

    def records(self, pipeline: str) -> list[dict[str, Any]]:
        found = {r.id: r for org in ("north", "south") for r in self.store.audit_for(org, 10_000)}
        return [r.to_json() for r in found.values() if r.pipeline == pipeline]


class ServerProcess:
    """``nestflow serve`` in a process of its own, its output in a log file."""

    def __init__(self, folder: Path, db_url: str, port: int, env: dict[str, str]) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = folder / f"server-{port}.log"
        command = [sys.executable, "-m", "nestflow", "serve", "--db", db_url, "--port", str(port)]
        command += ["--max-call-depth", str(CEILING)]
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                command, cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT
            )

    def wait_until_up(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            try:
                httpx.get(f"{self.url}/v1/call/nobody/nothing", timeout=1.0)
                return
            except httpx.TransportError:
                time.sleep(0.05)  # the process is starting; nothing else to wait on
        self.stop()
        pytest.fail(f"{self.url} did not start:\n{self.log_path.read_text()[-3000:]}")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def issue(store: Store, folder: Path) -> dict[str, IssuedToken]:
    """Orgs, pipelines and tokens, made in the database before the servers start."""
    sys.path.insert(0, str(folder))  # registration loads each pipeline, as the servers will
    try:
        for org in ("north", "south"):
            store.create_org(org)
        register(store, "north", contract("ping", "ping"))
        register(store, "south", contract("pong", "pong"))
        register(store, "north", contract("echo", "echoed"))
        register(store, "north", contract("signed", "echoed", cross_org=True))
    finally:
        sys.path.remove(str(folder))
        sys.modules.pop(MODULE, None)
    return {
        "ping": store.issue_token("north", "ping"),
        "pong": store.issue_token("south", "pong"),
        "echo": store.issue_token("north", "echo"),
        "signed": store.issue_token("north", "signed", "south"),
    }


@pytest.fixture(scope="module")
def pair(
    postgres_server: PostgresServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Pair]:
    db_url = postgres_server.new_database()
    folder = tmp_path_factory.mktemp("two_servers")
    ports = (free_port(), free_port())
    urls = tuple(f"http://127.0.0.1:{port}" for port in ports)
    flows = FLOWS.format(ping=f"{urls[0]}/v1/call/north/ping", pong=f"{urls[1]}/v1/call/south/pong")
    (folder / f"{MODULE}.py").write_text(flows)
    with open_store(db_url) as store:
        tokens = issue(store, folder)
        env = dict(os.environ)
        env |= {
            "NESTFLOW_TEST_PING_TOKEN": tokens["ping"].token,
            "NESTFLOW_TEST_PONG_TOKEN": tokens["pong"].token,
        }
        servers = [ServerProcess(folder, db_url, port, env) for port in ports]
        try:
            for server in servers:
                server.wait_until_up()
            yield Pair((urls[0], urls[1]), store, tokens)
        finally:
            for server in servers:
                server.stop()


def test_a_signed_request_accepted_by_one_server_is_refused_by_the_other(pair: Pair) -> None:
    issued = pair.tokens["signed"]
    assert issued.secret is not None
    body = json.dumps({"inputs": {"ticket": "T-1"}}).encode()
    headers = signing.sign(issued.secret, "POST", "/v1/call/north/signed", body, 0)
    headers |= {"Authorization": f"Bearer {issued.token}", "X-Nestflow-Depth": "0"}
    headers["Content-Type"] = "application/json"
    first = httpx.post(pair.call_url(0, "north", "signed"), content=body, headers=headers)
    again = httpx.post(pair.call_url(1, "north", "signed"), content=body, headers=headers)
    assert first.status_code == 200, first.text
    assert first.json()["result"] == "filed T-1"
    assert again.status_code == 401
    error = again.json()["error"]
    assert (error["type"], error["run_id"]) == ("unauthorized", None)
    assert "replay" in error["message"]
    records = pair.records("signed")
    assert [(r["status"], r["reason"]) for r in records] == [
        ("rejected", "signature_replayed"),
        ("ok", None),
    ]


def test_concurrent_calls_over_both_servers_are_each_audited_once_as_ok(pair: Pair) -> None:
    headers = {"Authorization": f"Bearer {pair.tokens['echo'].token}"}

    def call(index: int) -> httpx.Response:
        url = pair.call_url(index % 2, "north", "echo")
        return http.post(url, json={"inputs": {"ticket": f"T-{index}"}}, headers=headers)

    with httpx.Client(timeout=30) as http, ThreadPoolExecutor(8) as pool:
        replies = list(pool.map(call, range(CONCURRENT_CALLS)))
    assert [r.status_code for r in replies] == [200] * CONCURRENT_CALLS
    assert [r.json()["result"] for r in replies] == [
        f"filed T-{i}" for i in range(CONCURRENT_CALLS)
    ]
    records = pair.records("echo")
    assert [r["status"] for r in records] == ["ok"] * CONCURRENT_CALLS
    run_ids = [r["run_id"] for r in records]
    assert sorted(run_ids) == sorted(r.json()["run_id"] for r in replies)
    assert len(set(run_ids)) == len({r["id"] for r in records}) == CONCURRENT_CALLS


def test_two_servers_calling_each_other_stop_at_the_depth_ceiling(pair: Pair) -> None:
    ping_url = pair.call_url(0, "north", "ping")
    outer = pipeline_call(ping_url, pair.tokens["ping"].token, {"ticket": "ticket"}, "answer")
    out = Pipeline([outer], name="desk").run({"ticket": "T-loop"})

    assert out["answer._error"] is None  # every hop answered; the deepest relays the cut
    assert out["answer"]["status_code"] == 508
    hops = ["north/ping", "south/pong"] * 2 + ["north/ping"]
    assert " -> ".join(hops) in out["answer"]["message"]
    records = pair.records("ping") + pair.records("pong")
    done = sorted((r["depth"], r["pipeline"]) for r in records if r["status"] == "ok")
    assert done == [(0, "ping"), (1, "pong"), (2, "ping"), (3, "pong")]
    cut = [(r["depth"], r["pipeline"], r["reason"]) for r in records if r["status"] != "ok"]
    assert cut == [(CEILING + 1, "ping", "depth_exceeded")]
