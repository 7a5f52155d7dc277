"""Stores for the service tests: SQLite in a temporary folder, and a real PostgreSQL.

The PostgreSQL server is a throwaway cluster made for the session: ``initdb`` in a temporary
folder, started by ``pg_ctl`` on a free loopback port (TCP only, trust authentication, no
fsync), run as a non-root user since PostgreSQL refuses root, stopped and deleted at the end
of the session. Each test gets a fresh database on it. The binaries are required, never
optional: without them the PostgreSQL tests fail and say how to get them (``make test``
installs Debian's ``postgresql``), so a missing server cannot silently skip a backend.
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import psycopg
import pytest

from nestflow.service.store import Store, open_store

INSTALL_HINT = (
    "PostgreSQL's initdb and pg_ctl were not found (on PATH or in /usr/lib/postgresql/*/bin), "
    "and the store tests need a real server. Run `make test`, which installs them "
    "(or: apt-get install -y postgresql)."
)
# The account that runs the server when the tests run as root: Debian's package makes
# `postgres`; without it, this one is created.
FALLBACK_USER = "nestflow-pg"
BACKENDS = {"sqlite": "sqlite_url", "postgresql": "postgres_url"}  # test id: fixture


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def postgres_binaries() -> tuple[str, str]:
    """``initdb`` and ``pg_ctl`` of one installation: PATH first, then Debian's newest."""
    on_path = shutil.which("initdb"), shutil.which("pg_ctl")
    if on_path[0] is not None and on_path[1] is not None:
        return on_path[0], on_path[1]
    installed = glob.glob("/usr/lib/postgresql/*/bin/pg_ctl")
    for pg_ctl in sorted(installed, key=lambda p: int(Path(p).parts[-3]), reverse=True):
        initdb = Path(pg_ctl).with_name("initdb")
        if initdb.exists():
            return str(initdb), pg_ctl
    pytest.fail(INSTALL_HINT, pytrace=False)


def server_account() -> pwd.struct_passwd | None:
    """The account to run PostgreSQL as, or ``None`` to run it as the current user."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", FALLBACK_USER):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    useradd = ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin"]
    subprocess.run([*useradd, FALLBACK_USER], check=True, capture_output=True)
    return pwd.getpwnam(FALLBACK_USER)


class PostgresServer:
    """A throwaway PostgreSQL cluster on a free loopback port."""

    def __init__(self) -> None:
        self.initdb, self.pg_ctl = postgres_binaries()
        self.account = server_account()
        self.folder = Path(tempfile.mkdtemp(prefix="nestflow-pg-"))
        self.data = self.folder / "data"
        self.log = self.folder / "server.log"
        self.port = 0
        self._names = itertools.count()

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        user = None if self.account is None else self.account.pw_uid
        group = None if self.account is None else self.account.pw_gid
        return subprocess.run(
            args, user=user, group=group, cwd=self.folder, capture_output=True, text=True
        )

    def start(self) -> None:
        if self.account is not None:
            os.chown(self.folder, self.account.pw_uid, self.account.pw_gid)
        made = self._run(
            self.initdb,
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--no-locale",
            "--no-sync",
        )
        if made.returncode != 0:
            self.fail("initdb failed", made.stdout + made.stderr)
        output = ""
        for _attempt in range(3):  # a free port may be taken before the server binds it
            self.port = free_port()
            self._configure()
            started = self._run(
                self.pg_ctl, "-D", str(self.data), "-l", str(self.log), "-w", "start"
            )
            if started.returncode == 0:
                return
            output += started.stdout + started.stderr
        self.fail("pg_ctl could not start the server", output)

    def _configure(self) -> None:
        settings = {
            "listen_addresses": "'127.0.0.1'",
            "port": str(self.port),
            "unix_socket_directories": "''",
            # A throwaway server: durability costs time and protects nothing here.
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
        }
        lines = [f"{name} = {value}" for name, value in settings.items()]
        (self.data / "postgresql.auto.conf").write_text("\n".join(lines) + "\n")

    def fail(self, what: str, output: str) -> NoReturn:
        log = self.log.read_text() if self.log.exists() else ""
        self.stop()
        pytest.fail(f"{what}.\n{output}\n{log[-3000:]}", pytrace=False)

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self._run(self.pg_ctl, "-D", str(self.data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.folder, ignore_errors=True)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        """The URL of a new, empty database."""
        name = f"store_{next(self._names)}"
        with psycopg.connect(self.url(), autocommit=True) as connection:
            connection.execute(f"CREATE DATABASE {name}")
        return self.url(name)


class Clock:
    """A clock that moves only when told: ``clock()`` is Unix seconds."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """The session's PostgreSQL server."""
    server = PostgresServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    """A new, empty database on the session's PostgreSQL server."""
    return postgres_server.new_database()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A SQLite store file in the test's temporary folder (created when opened)."""
    return f"sqlite:///{tmp_path / 'service.db'}"


@pytest.fixture(params=sorted(BACKENDS))
def store_url(request: pytest.FixtureRequest) -> str:
    """An empty store database, once on SQLite and once on PostgreSQL."""
    return str(request.getfixturevalue(BACKENDS[request.param]))


@pytest.fixture
def clock() -> Clock:
    """A clock the test moves by hand."""
    return Clock()


@pytest.fixture
def store(store_url: str, clock: Clock) -> Iterator[Store]:
    """An open store on each backend, reading ``clock``."""
    with open_store(store_url, clock=clock) as opened:
        yield opened


@pytest.fixture
def sqlite_store(sqlite_url: str) -> Iterator[Store]:
    """An open SQLite store in the test's temporary folder."""
    with open_store(sqlite_url) as opened:
        yield opened
