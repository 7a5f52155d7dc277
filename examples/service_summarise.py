"""A pipeline served over HTTP and called by another organisation's pipeline as a node.

The organisation ``acme`` publishes the workflow ``service/summarise.yaml`` (a stand-in
summariser: the first sentence of each message, and a word-count sentiment) under the contract
``service/summarise_thread.contract.yaml``, which opens it to other organisations. ``globex``
holds a token and its signing secret, and calls it from its own pipeline through a signed
``pipeline_call`` node. Its ``digest`` node falls back to the start of the first message when
the call fails, which it does once acme revokes the token. Both organisations then read the
audit trail, each seeing the calls in which it is the caller or the callee.

The service runs in this process, on uvicorn, on a free loopback port, with its SQLite
database in a temporary folder. It needs the ``service`` extra:
``pip install 'nestflow[service]'``.

Run it with ``python examples/service_summarise.py``.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import uvicorn
import yaml

from nestflow import Pipeline, node, pipeline_call
from nestflow.service import signing
from nestflow.service.app import create_app
from nestflow.service.contract import Contract
from nestflow.service.registration import register
from nestflow.service.store import Store, open_store

FOLDER = Path(__file__).resolve().parent / "service"
TOKEN_VAR, SECRET_VAR = "GLOBEX_SUMMARISE_TOKEN", "GLOBEX_SUMMARISE_SECRET"

THREAD = [
    "The export to CSV fails since this morning. It worked yesterday.",
    "Thanks for the report! A fix for the export is on its way.",
    "Great, it works again. Thanks a lot.",
]


class _Server(uvicorn.Server):
    """uvicorn's server, saying when it has started."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = threading.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        self.ready.set()


@contextlib.contextmanager
def serving(store: Store) -> Iterator[str]:
    """The service over ``store`` on a free loopback port, in a thread; yields its base URL.

    The socket is bound here and handed to uvicorn, so nothing can take the port in between.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    app = create_app(store, public_url=base)
    config = uvicorn.Config(app, log_level="warning", lifespan="off")
    server = _Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        if not server.ready.wait(10):
            raise RuntimeError("the service did not start within 10 s")
        yield base
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def publish(store: Store) -> dict[str, str]:
    """acme and globex, and acme's pipeline registered from its contract file; admin keys."""
    keys = {org: store.create_org(org) for org in ("acme", "globex")}
    data = yaml.safe_load((FOLDER / "summarise_thread.contract.yaml").read_text("utf-8"))
    contract = Contract.from_mapping(data)
    # A relative source is read against the contract file's folder, as the command line does.
    register(store, "acme", replace(contract, source=str(FOLDER / contract.source)))
    return keys


@node(output_name="digest")
def digest(summary: str | None, err: dict[str, Any] | None, ticket: dict[str, Any]) -> str:
    """The remote summary, or the start of the first message when the call failed."""
    if err is None:
        return str(summary)
    return ticket["messages"][0][:40] + "... (not summarised: " + str(err["type"]) + ")"


def globex_pipeline(url: str) -> Pipeline:
    """globex's own pipeline: a signed call to acme's pipeline, then a digest with a fallback."""
    summary = pipeline_call(
        url,
        token=f"env:{TOKEN_VAR}",  # read when the node runs, never stored in a report
        input_mapping={"thread": "ticket.messages", "style": "style"},
        output_key="summary",
        secret=f"env:{SECRET_VAR}",  # signs each request: acme's pipeline is cross-org
    )
    return Pipeline([summary, digest.with_inputs({"err": "summary._error"})], name="triage")


def call_by_hand(url: str, token: str, secret: str) -> dict[str, Any]:
    """The same call without nestflow's client: a signed POST, as any HTTP client can send."""
    body = json.dumps({"inputs": {"thread": THREAD}}).encode()
    path = httpx.URL(url).path
    headers = {"Authorization": f"Bearer {token}", "X-Nestflow-Depth": "0"}
    headers["X-Nestflow-Caller-Node"] = "by_hand"
    headers |= signing.sign(secret, "POST", path, body, "0")
    headers["Content-Type"] = "application/json"
    response = httpx.post(url, content=body, headers=headers)
    answer: dict[str, Any] = response.json()
    print(f"\nthe same call by hand, signed: HTTP {response.status_code}")
    print("  outputs:", json.dumps(answer["outputs"]))
    return answer


def show_call(label: str, out: dict[str, Any]) -> None:
    error = out["summary._error"]
    print(f"\n{label}")
    print("  summary:", json.dumps(out["summary"]))
    if error is not None:
        print(f"  summary._error: type={error['type']} status_code={error['status_code']}")
    print("  digest:", out["digest"])


def show_audit(base: str, org: str, admin_key: str) -> None:
    """The audit records ``org`` sees, read as its administrator would, over HTTP."""
    response = httpx.get(
        f"{base}/v1/audit",
        params={"limit": 10},
        headers={"Authorization": f"Bearer {admin_key}"},
    )
    response.raise_for_status()
    print(f"\naudit records visible to {org} (newest first):")
    for record in response.json()["records"]:
        usage = record["usage"] or {}
        spent = " ".join(f"{name}={amount:.4f}" for name, amount in usage.items()) or "-"
        latency = "-" if record["latency_ms"] is None else f"{record['latency_ms']:.1f}"
        print(
            f"  caller={record['caller_org']} node={record['caller_node']}"
            f" callee={record['callee_org']}/{record['pipeline']} status={record['status']}"
            f" reason={record['reason']} latency_ms={latency} usage: {spent}"
        )


def main() -> list[dict[str, Any]]:
    """Publish, call with a valid token, revoke it, call again, and show both audit views."""
    if str(FOLDER) not in sys.path:
        sys.path.insert(0, str(FOLDER))  # where `summarise_steps` (the steps it names) lives
    try:
        with tempfile.TemporaryDirectory() as folder:
            return run_all(f"sqlite:///{folder}/service.db")
    finally:
        for variable in (TOKEN_VAR, SECRET_VAR):
            os.environ.pop(variable, None)


def run_all(db: str) -> list[dict[str, Any]]:
    with open_store(db) as store, serving(store) as base:
        keys = publish(store)
        issued = store.issue_token("acme", "summarise_thread", holder="globex")
        assert issued.secret is not None  # the pipeline is open to other organisations
        os.environ[TOKEN_VAR], os.environ[SECRET_VAR] = issued.token, issued.secret
        url = f"{base}/v1/call/acme/summarise_thread"
        print("acme serves summarise_thread at", url)

        triage = globex_pipeline(url)
        ticket = {"id": 4711, "messages": THREAD}
        runs = [dict(triage.run(ticket=ticket, style="brief"))]
        show_call("globex's pipeline calls it with its token:", runs[0])
        runs.append(call_by_hand(url, issued.token, issued.secret))

        store.revoke_tokens("acme", "summarise_thread", holder="globex")
        runs.append(dict(triage.run(ticket=ticket, style="brief")))
        show_call("after acme revokes globex's token, the digest falls back:", runs[2])

        for org, key in keys.items():
            show_audit(base, org, key)
    return runs


if __name__ == "__main__":
    main()
