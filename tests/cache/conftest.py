"""A real redis-server for the cache tests, started on a free loopback port.

The binary is required, never optional: without it the Redis tests fail and say how to get
it (``make test`` installs it), so a missing server cannot silently skip a store.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator

import pytest

INSTALL_HINT = (
    "redis-server is not installed, and the RedisCache tests need a real server. "
    "Run `make test`, which installs it (or: apt-get install -y redis-server)."
)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _answers_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as conn:
            conn.sendall(b"PING\r\n")
            return conn.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def _send(port: int, command: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        conn.sendall(command)
        return conn.recv(64)


class RedisServer:
    """One redis-server process without persistence; can be stopped and started again."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail(INSTALL_HINT, pytrace=False)
        args = [binary, "--port", str(self.port), "--bind", "127.0.0.1"]
        args += ["--save", "", "--appendonly", "no"]
        self._process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while not _answers_ping(self.port):
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                pytest.fail(f"redis-server did not answer PING on port {self.port}", pytrace=False)
            time.sleep(0.02)

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None:
            process.terminate()
            process.wait(10)

    def flush(self) -> None:
        assert _send(self.port, b"FLUSHALL\r\n").startswith(b"+OK")


@pytest.fixture(scope="session")
def redis_session_server() -> Iterator[RedisServer]:
    """The session's redis-server."""
    server = RedisServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_url(redis_session_server: RedisServer) -> str:
    """The url of the session's redis-server (``redis://127.0.0.1:<port>/0``)."""
    return redis_session_server.url


@pytest.fixture
def redis_db(redis_session_server: RedisServer) -> Iterator[str]:
    """The session server's url, with every database emptied before and after the test."""
    redis_session_server.flush()
    yield redis_session_server.url
    redis_session_server.flush()


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """A private redis-server the test may stop and restart (on the same port)."""
    server = RedisServer()
    server.start()
    yield server
    server.stop()
