"""The service under load: a trivial served pipeline against a bare FastAPI endpoint.

Each server runs under uvicorn in its own process (the client load must not share the GIL
with it), on a loopback socket that this process binds and hands over, so no other program
can take the port in between. Eight client threads, each with its own ``httpx.Client``, send
a bounded number of calls, stopping early at a time cap. The served pipeline is measured on
a SQLite store and on a throwaway PostgreSQL server; the bare endpoint calls the same
function directly, so the ratios say what the service adds (checks, audit, run) per call.
Every served call must answer 200 and leave an ``ok`` audit record, or the group fails.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from time import perf_counter
from typing import Any

import httpx
from fastapi import FastAPI, Request

from benchmarks.core import Row
from nestflow import Pipeline, node

CLIENTS = 8
CALLS = 2_000
WARMUP = 50
TIME_CAP_S = 20.0
WORKERS = 4  # the service's default pool
START_TIMEOUT_S = 20.0
ROOT = Path(__file__).resolve().parents[1]
ORG, PIPELINE = "acme", "served"


def add_one(x: int) -> int:
    return x + 1


served = Pipeline([node(add_one, output_name="y")], name=PIPELINE)

CONTRACT = {
    "name": PIPELINE,
    "source": "benchmarks.service:served",
    "contract": {
        "inputs": [{"name": "x", "type": "integer", "required": True}],
        "outputs": ["y"],
        "response_key": "y",
    },
}


# --- servers, each in its own process ---------------------------------------------------------


def bare_app() -> FastAPI:
    """One POST route that calls ``add_one`` directly and answers JSON."""
    app = FastAPI()

    @app.post("/call")
    async def call(request: Request) -> dict[str, Any]:
        body = await request.json()
        return {"status": "ok", "result": add_one(**body["inputs"])}

    return app


def serve_forever() -> None:
    """Child process: serve ``sys.argv[1]`` (``bare`` or a store URL) on the socket fd
    ``sys.argv[2]`` until terminated."""
    import uvicorn

    target, fd = sys.argv[1], int(sys.argv[2])
    if target == "bare":
        app = bare_app()
    else:
        from nestflow.service.app import create_app
        from nestflow.service.store import open_store

        app = create_app(open_store(target), workers=WORKERS)
    config = uvicorn.Config(app, log_level="warning", access_log=False)
    uvicorn.Server(config).run(sockets=[socket.socket(fileno=fd)])


@contextmanager
def running(target: str) -> Iterator[str]:
    """A server for ``target`` in a new process; yields its base URL once it answers."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        code = "from benchmarks.service import serve_forever; serve_forever()"
        args = [sys.executable, "-c", code, target, str(sock.fileno())]
        child = subprocess.Popen(args, cwd=ROOT, pass_fds=(sock.fileno(),))
    try:
        _wait_until_answering(url, child)
        yield url
    finally:
        child.terminate()
        try:
            child.wait(10)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def _wait_until_answering(url: str, child: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if child.poll() is not None:
            raise RuntimeError(f"the server process for {url} exited with {child.returncode}")
        try:
            httpx.get(url + "/", timeout=1.0)
            return
        except httpx.TransportError:
            time.sleep(0.05)
    raise RuntimeError(f"the server at {url} did not answer within {START_TIMEOUT_S} s")


# --- load ------------------------------------------------------------------------------------


@dataclass
class Load:
    """What one load run saw: each successful call's latency, the errors, the wall time."""

    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def calls(self) -> int:
        return len(self.latencies) + len(self.errors)

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.seconds

    def percentile_ms(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1e3


def drive(url: str, headers: dict[str, str], calls: int) -> Load:
    """``calls`` POSTs of ``{"inputs": {"x": 1}}`` from ``CLIENTS`` threads, or fewer at the
    time cap."""
    load = Load()
    left = iter(range(calls))
    lock = threading.Lock()
    deadline = perf_counter() + TIME_CAP_S

    def client() -> None:
        with httpx.Client(headers=headers, timeout=30.0) as http:
            while perf_counter() < deadline:
                with lock:
                    if next(left, None) is None:
                        return
                _one(http, url, load)

    threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
    started = perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    load.seconds = perf_counter() - started
    return load


def _one(http: httpx.Client, url: str, load: Load) -> None:
    started = perf_counter()
    try:
        reply = http.post(url, json={"inputs": {"x": 1}})
    except httpx.HTTPError as exc:
        load.errors.append(f"{type(exc).__name__}: {exc}")
        return
    if reply.status_code == 200:
        load.latencies.append(perf_counter() - started)
    else:
        load.errors.append(f"{reply.status_code}: {reply.text[:200]}")


def measured(url: str, headers: dict[str, str], label: str) -> tuple[Load, int]:
    """A warm-up, then the measured load; fails on any error. Also returns the calls sent."""
    warm = drive(url, headers, WARMUP)
    load = drive(url, headers, CALLS)
    errors = warm.errors + load.errors
    if errors:
        raise RuntimeError(f"{label}: {len(errors)} calls failed, first: {errors[0]}")
    return load, warm.calls + load.calls


# --- the served pipeline on a store ----------------------------------------------------------


def served_load(store_url: str, label: str) -> Load:
    """The served pipeline's load on the store at ``store_url``, every call checked audited."""
    from nestflow.service.contract import Contract
    from nestflow.service.registration import register
    from nestflow.service.store import open_store

    with open_store(store_url) as store:
        store.create_org(ORG)
        register(store, ORG, Contract.from_mapping(CONTRACT))
        token = store.issue_token(ORG, PIPELINE).token
        with running(store_url) as url:
            headers = {"Authorization": f"Bearer {token}"}
            load, sent = measured(f"{url}/v1/call/{ORG}/{PIPELINE}", headers, label)
        records = store.audit_for(ORG, sent + 100)
    ok = sum(record.status == "ok" for record in records)
    if ok != sent or len(records) != sent:
        raise RuntimeError(
            f"{label}: {sent} calls answered 200 but {ok} of {len(records)} audit records are ok"
        )
    return load


def bare_load() -> Load:
    with running("bare") as url:
        return measured(f"{url}/call", {}, "bare endpoint")[0]


# --- a throwaway PostgreSQL server -----------------------------------------------------------


def postgres_binaries() -> tuple[str, str] | None:
    """``initdb`` and ``pg_ctl`` of one installation (PATH, then Debian's newest), or None."""
    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    if initdb is not None and pg_ctl is not None:
        return initdb, pg_ctl
    found = Path("/usr/lib/postgresql").glob("*/bin/pg_ctl")
    for pg_ctl_path in sorted(found, key=lambda p: int(p.parts[-3]), reverse=True):
        if pg_ctl_path.with_name("initdb").exists():
            return str(pg_ctl_path.with_name("initdb")), str(pg_ctl_path)
    return None


class Cluster:
    """A PostgreSQL cluster in a temporary folder, on a loopback port (TCP only, trust
    authentication, no fsync), run as ``postgres`` when this process is root (PostgreSQL
    refuses root)."""

    def __init__(self, initdb: str, pg_ctl: str) -> None:
        self.initdb, self.pg_ctl = initdb, pg_ctl
        self.folder = Path(tempfile.mkdtemp(prefix="nestflow-bench-pg-"))
        self.data = self.folder / "data"
        self.account = pwd.getpwnam("postgres") if os.geteuid() == 0 else None
        if self.account is not None:
            os.chown(self.folder, self.account.pw_uid, self.account.pw_gid)

    def run(self, *args: str) -> None:
        uid = None if self.account is None else self.account.pw_uid
        gid = None if self.account is None else self.account.pw_gid
        done = subprocess.run(
            args, cwd=self.folder, capture_output=True, text=True, user=uid, group=gid
        )
        if done.returncode != 0:
            raise RuntimeError(f"{Path(args[0]).name} failed:\n{done.stdout}{done.stderr}")

    def start(self) -> int:
        """Make the cluster and start it on a free port (tried three times: a port found
        free may be taken before the server binds it); its port."""
        init = ["-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-locale", "--no-sync"]
        self.run(self.initdb, "-D", str(self.data), *init)
        for attempt in range(3):
            port = self._configure()
            try:
                self.run(self.pg_ctl, "-D", str(self.data), "-l", "server.log", "-w", "start")
                return port
            except RuntimeError:
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _configure(self) -> int:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port: int = probe.getsockname()[1]
        settings = {
            "listen_addresses": "'127.0.0.1'",
            "port": str(port),
            "unix_socket_directories": "''",
            # A throwaway server, as the tests' one: durability costs time and protects nothing.
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
        }
        text = "".join(f"{name} = {value}\n" for name, value in settings.items())
        (self.data / "postgresql.auto.conf").write_text(text)
        return port

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self.run(self.pg_ctl, "-D", str(self.data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.folder, ignore_errors=True)


@contextmanager
def postgres() -> Iterator[str | None]:
    """The URL of a throwaway PostgreSQL server, or None when its binaries are not installed."""
    binaries = postgres_binaries()
    if binaries is None:
        yield None
        return
    cluster = Cluster(*binaries)
    try:
        yield f"postgresql://postgres@127.0.0.1:{cluster.start()}/postgres"
    finally:
        cluster.stop()


# --- rows ------------------------------------------------------------------------------------


def load_rows(label: str, load: Load, bare: Load) -> list[Row]:
    """Calls per second, p50 and p99 of ``load``, with the bare endpoint's as the baseline."""
    name = f"service, {label}, {CLIENTS} clients ({load.calls:,} calls)"
    p50, p99 = (
        (load.percentile_ms(0.5), bare.percentile_ms(0.5)),
        (load.percentile_ms(0.99), bare.percentile_ms(0.99)),
    )
    return [
        Row(f"{name}: calls/s", "calls/s", load.rate, bare.rate, ">= 0.6x bare"),
        Row(f"{name}: p50 latency", "ms", *p50, "-"),
        Row(f"{name}: p99 latency", "ms", *p99, "<= 2x bare"),
    ]


def sqlite_load() -> Load:
    folder = Path(tempfile.mkdtemp(prefix="nestflow-bench-service-"))
    try:
        return served_load(f"sqlite:///{folder / 'service.db'}", "SQLite")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def rows() -> list[Row]:
    """The bare endpoint, then the served pipeline on SQLite and on PostgreSQL, in one run."""
    bare = bare_load()
    name = f"service, bare FastAPI endpoint, {CLIENTS} clients ({bare.calls:,} calls)"
    found = [Row(f"{name}: calls/s", "calls/s", bare.rate, 0.0, "-")]
    found += load_rows("SQLite", sqlite_load(), bare)
    with postgres() as url:
        if url is not None:
            return found + load_rows("PostgreSQL", served_load(url, "PostgreSQL"), bare)
    print("PostgreSQL (initdb, pg_ctl) is not installed: its rows are skipped", file=sys.stderr)
    return [*found, Row("service, PostgreSQL: skipped, initdb/pg_ctl not found", "-", 0, 0, "-")]


if __name__ == "__main__":
    for row in rows():
        print(row)
