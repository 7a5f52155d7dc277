"""Real HTTP servers for the service tests: an ASGI app under uvicorn, in a thread.

``serve(app)`` binds a free loopback port itself and hands the socket to uvicorn, so no other
process can take the port between choosing and binding it; it returns once uvicorn has
started and stops it cleanly on exit. ``unreachable_url()`` is an address where nothing
listens: a bound socket that never accepts, so a connection is refused at once.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from typing import Any

import uvicorn

START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 10.0


class _Server(uvicorn.Server):
    """uvicorn's server, saying when it has started."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = threading.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        self.ready.set()


def _loopback_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@contextlib.contextmanager
def serve(app: Any) -> Iterator[str]:
    """Run ``app`` on a free loopback port; yields its base URL (``http://127.0.0.1:<port>``).

    uvicorn is told nothing about logging (``log_config=None``), so it leaves the logging
    set-up of the test process alone and its records reach the root logger (and ``caplog``)
    as any library's do. In-flight requests get a short grace period at shutdown, so a
    handler still waiting cannot hold the test up.
    """
    sock = _loopback_socket()
    config = uvicorn.Config(app, log_config=None, lifespan="off", timeout_graceful_shutdown=2)
    server = _Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        if not server.ready.wait(START_TIMEOUT_S):
            raise RuntimeError(f"uvicorn did not start within {START_TIMEOUT_S} s")
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(STOP_TIMEOUT_S)
        sock.close()
    if thread.is_alive():
        raise RuntimeError(f"uvicorn did not stop within {STOP_TIMEOUT_S} s")


@contextlib.contextmanager
def unreachable_url() -> Iterator[str]:
    """A base URL on a loopback port that is bound but never listens: connections are refused."""
    with _loopback_socket() as sock:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
