"""Two server processes on one database keep replay protection and the audit trail whole.

Each worker is this file run as a script: it reads one JSON command per line on stdin, does
it on its own store, and answers with one JSON line. The test sends a command to both
workers before reading either answer, so the two do the same work at the same time, in two
OS processes with their own connections. Run on SQLite and on the real PostgreSQL.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import TYPE_CHECKING, Any

import pytest

from nestflow.service.store import AuditCall, Store, open_store

if TYPE_CHECKING:
    from collections.abc import Iterator

NONCES = 400
CALLS = 100


def _answer(store: Store | None, command: dict[str, Any]) -> Any:
    """What one worker answers to one command."""
    op = command["op"]
    if op == "open":
        return open_store(command["url"])
    assert store is not None, "open the store first"
    if op == "nonces":
        token_id, expires_at = command["token_id"], command["expires_at"]
        return [store.record_nonce(token_id, nonce, expires_at) for nonce in command["nonces"]]
    if op == "calls":
        return [_one_call(store, f"{command['worker']}-{i}") for i in range(command["count"])]
    assert op == "lookup", op
    grant = store.lookup_token(command["token"])
    return None if grant is None else grant.holder


def _one_call(store: Store, run_id: str) -> int:
    record_id = store.audit_started(AuditCall("acme", "summarise", "globex", caller_node=run_id))
    store.audit_finished(record_id, "ok", latency_ms=1.0, run_id=run_id, usage={"wall_s": 0.001})
    return record_id


def work() -> None:
    """The worker's loop: a command per line in, an answer per line out, until stdin closes."""
    store: Store | None = None
    for line in sys.stdin:
        answer = _answer(store, json.loads(line))
        if isinstance(answer, Store):
            store, answer = answer, "opened"
        print(json.dumps(answer), flush=True)
    if store is not None:
        store.close()


class Workers:
    """Worker processes driven in lockstep."""

    def __init__(self, count: int) -> None:
        self.processes = [
            subprocess.Popen(
                [sys.executable, __file__],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            for _ in range(count)
        ]

    def ask(self, **command: Any) -> list[Any]:
        """Send ``command`` to every worker, then read every answer."""
        for index, process in enumerate(self.processes):
            assert process.stdin is not None
            process.stdin.write(json.dumps(command | {"worker": index}) + "\n")
            process.stdin.flush()
        return [self._read(process) for process in self.processes]

    def _read(self, process: subprocess.Popen[str]) -> Any:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line, f"worker {process.pid} ended with status {process.wait()}"
        return json.loads(line)

    def stop(self) -> None:
        for process in self.processes:
            assert process.stdin is not None
            process.stdin.close()
        for process in self.processes:
            assert process.wait(60) == 0
            assert process.stdout is not None
            process.stdout.close()


@pytest.fixture
def workers(store_url: str) -> Iterator[Workers]:
    """Two worker processes that opened, and so migrated, the new database at the same time."""
    started = Workers(2)
    try:
        assert started.ask(op="open", url=store_url) == ["opened", "opened"]
        yield started
    finally:
        started.stop()


@pytest.fixture
def store(workers: Workers, store_url: str) -> Iterator[Store]:
    """The test's own store on the workers' database, with a pipeline open to globex."""
    with open_store(store_url) as opened:
        opened.create_org("acme")
        opened.create_org("globex")
        opened.register_pipeline(
            "acme",
            "summarise",
            source="s.yaml",
            contract={},
            content_hash="h",
            allow_cross_org=True,
        )
        yield opened


def test_a_nonce_sent_to_two_processes_at_once_is_accepted_exactly_once(
    workers: Workers, store: Store
) -> None:
    grant = store.lookup_token(store.issue_token("acme", "summarise", "globex").token)
    assert grant is not None
    nonces = [f"nonce-{i:04d}-padding" for i in range(NONCES)]
    first = workers.ask(op="nonces", token_id=grant.token_id, nonces=nonces, expires_at=4e9)
    accepted = [a + b for a, b in zip(*first, strict=True)]
    assert accepted == [1] * NONCES
    replayed = workers.ask(op="nonces", token_id=grant.token_id, nonces=nonces, expires_at=4e9)
    assert replayed == [[False] * NONCES] * 2


def test_audit_records_written_by_two_processes_at_once_are_all_present_and_finished(
    workers: Workers, store: Store
) -> None:
    ids = workers.ask(op="calls", count=CALLS)
    records = store.audit_for("globex", limit=10 * CALLS)
    assert sorted(record.id for record in records) == sorted(ids[0] + ids[1])
    assert {record.status for record in records} == {"ok"}
    expected_runs = {f"{worker}-{i}" for worker in (0, 1) for i in range(CALLS)}
    assert {record.run_id for record in records} == expected_runs
    assert [r.id for r in store.audit_for("acme", limit=10 * CALLS)] == [r.id for r in records]


def test_a_token_rotated_in_one_process_is_refused_by_the_others_on_their_next_lookup(
    workers: Workers, store: Store
) -> None:
    old, _ = store.issue_token("acme", "summarise", "globex")
    assert workers.ask(op="lookup", token=old) == ["globex", "globex"]
    new, _ = store.rotate_token("acme", "summarise", "globex")
    assert workers.ask(op="lookup", token=old) == [None, None]
    assert workers.ask(op="lookup", token=new) == ["globex", "globex"]


if __name__ == "__main__":
    work()
