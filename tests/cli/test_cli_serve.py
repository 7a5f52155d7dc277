"""``nestflow serve``: the real server process, administered through the command line.

The server is started as a subprocess on a free port over a SQLite file; the pipeline is
registered and its token issued with ``nestflow service ...`` against the same file, and a
real HTTP call gets the result. No timing is asserted: readiness is polled, within a
generous overall limit.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cli_workspace import Invoke, command, invoker, without

START_LIMIT_S = 60.0
STOP_LIMIT_S = 30.0

CONTRACT = """
    name: doubler
    source: flow.yaml
    contract:
      inputs:
        - {name: n, type: integer, required: true}
        - {name: name, type: string, required: true}
      outputs: [doubled, greeting]
      response_key: doubled
    """


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture
def served(workspace: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """``nestflow serve`` running in the workspace: (its base URL, its database URL)."""
    db = f"sqlite:///{tmp_path_factory.mktemp('db') / 'service.db'}"
    port = _free_port()
    logs = workspace / "serve.log"
    with logs.open("wb") as log:
        process = subprocess.Popen(
            [*command("script"), "serve", "--port", str(port), "--db", db],
            cwd=workspace, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            yield f"http://127.0.0.1:{port}", db
        finally:
            process.terminate()
            try:
                code = process.wait(STOP_LIMIT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
                raise
    # uvicorn shuts down gracefully on SIGTERM, then re-raises the signal it caught.
    shown = logs.read_text()
    assert code in (0, -signal.SIGTERM), shown
    assert "Application shutdown complete." in shown


def _answered(http: httpx.Client, url: str, token: str) -> httpx.Response:
    """Poll ``GET url`` until the server answers (any status), within the start limit."""
    deadline = time.monotonic() + START_LIMIT_S
    while True:
        try:
            return http.get(url, headers={"Authorization": f"Bearer {token}"})
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_a_served_pipeline_registered_by_the_command_line_answers_a_call(
    served: tuple[str, str], workspace: Path
) -> None:
    base, db = served
    nestflow = invoker(command("script"), workspace)
    made = nestflow("service", "org", "create", "acme", "--db", db)
    assert made.returncode == 0, made.stderr
    admin_key = json.loads(made.stdout)["admin_key"]
    (workspace / "doubler.yaml").write_text(textwrap.dedent(CONTRACT), encoding="utf-8")
    registered = nestflow(
        "service", "register", "doubler.yaml", "--org", "acme", "--db", db, "--public-url", base
    )
    assert registered.returncode == 0, registered.stderr
    url = registered.stdout.strip()
    assert url == f"{base}/v1/call/acme/doubler"
    issued = nestflow("service", "token", "issue", "acme/doubler", "--db", db)
    assert issued.returncode == 0, issued.stderr
    token = json.loads(issued.stdout)["token"]

    with httpx.Client(timeout=30) as http:
        document = _answered(http, url, token)
        assert document.status_code == 200, document.text
        assert document.json()["response_key"] == "doubled"
        reply = http.post(
            url,
            json={"inputs": {"n": 21, "name": "ada"}},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert reply.status_code == 200, reply.text
        body = reply.json()
        assert (body["status"], body["result"]) == ("ok", 42)
        assert body["outputs"] == {"doubled": 42, "greeting": "hello ada"}

        rotated = nestflow("service", "token", "rotate", "acme/doubler", "--db", db)
        assert rotated.returncode == 0, rotated.stderr
        new_token = json.loads(rotated.stdout)["token"]
        old = http.get(url, headers={"Authorization": f"Bearer {token}"})
        assert old.status_code == 401
        assert http.get(url, headers={"Authorization": f"Bearer {new_token}"}).status_code == 200

    audit = nestflow("service", "audit", "--org", "acme", "--db", db)
    assert audit.returncode == 0, audit.stderr
    records = json.loads(audit.stdout)
    assert [(r["status"], r["caller_org"]) for r in records if r["reason"] is None] == [
        ("ok", "acme")
    ]
    database = Path(db.removeprefix("sqlite:///"))
    stored = b"".join(path.read_bytes() for path in database.parent.glob(database.name + "*"))
    for credential in (admin_key, token, new_token):
        assert credential.encode() not in stored


def test_serve_without_the_service_extra_says_how_to_install_it(workspace: Path) -> None:
    nestflow: Invoke = invoker(without("uvicorn"), workspace)
    done = nestflow("serve", "--port", "0")
    assert done.returncode == 1
    assert "pip install 'nestflow[service]'" in done.stderr
