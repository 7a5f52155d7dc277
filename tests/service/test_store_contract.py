"""One storage contract, run against SQLite and a real PostgreSQL (SPEC 12.8).

Every test that takes ``store`` (or ``store_url``) runs once per backend; both must behave
alike, down to the errors they raise.
"""

from __future__ import annotations

import base64
import hashlib
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy import inspect, select, text, update

from nestflow.service.storage.database import Database
from nestflow.service.storage.migrations import LATEST, VERSION_TABLE, migrate
from nestflow.service.storage.schema import METADATA
from nestflow.service.store import (
    AuditCall,
    AuditRecord,
    Organisation,
    RegisteredPipeline,
    Store,
    open_store,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from conftest import Clock

CONTRACT = {"inputs": [{"name": "thread", "type": "array", "required": True}], "outputs": ["s"]}


def register(store: Store, org: str = "acme", name: str = "summarise", **kw: Any) -> None:
    if store.get_org(org) is None:
        store.create_org(org)
    store.register_pipeline(
        org, name, source="flows/s.yaml", contract=CONTRACT, content_hash="sha256:1", **kw
    )


def call(callee: str = "acme", caller: str | None = "acme", **kw: Any) -> AuditCall:
    return AuditCall(callee, "summarise", caller, **kw)


def stored_text(url: str) -> str:
    """Every value of every table of the database at ``url``, as one string."""
    database = Database(url)
    try:
        with database.reading() as connection:
            rows = [
                repr(tuple(row))
                for table in METADATA.sorted_tables
                for row in connection.execute(select(table))
            ]
    finally:
        database.close()
    return "\n".join(rows)


@pytest.fixture
def second_store(store_url: str, store: Store, clock: Clock) -> Iterator[Store]:
    """Another store on the same database, with its own connections (as another process)."""
    with open_store(store_url, clock=clock) as other:
        yield other


# --- schema and migrations ------------------------------------------------------------------


@pytest.fixture
def reference_url(store_url: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """An empty database of the same backend as ``store_url``, for comparisons."""
    if store_url.startswith("sqlite"):
        return f"sqlite:///{tmp_path / 'reference.db'}"
    return str(request.getfixturevalue("postgres_server").new_database())


def shape(url: str) -> dict[str, Any]:
    """Tables, columns (type, nullable), keys and indexes of the database, as reflected."""
    database = Database(url)
    try:
        with database.reading() as connection:
            inspector = inspect(connection)
            return {name: _table_shape(inspector, name) for name in inspector.get_table_names()}
    finally:
        database.close()


def _table_shape(inspector: Any, name: str) -> dict[str, Any]:
    columns = {c["name"]: (str(c["type"]), c["nullable"]) for c in inspector.get_columns(name)}
    keys = [
        (k["constrained_columns"], k["referred_table"]) for k in inspector.get_foreign_keys(name)
    ]
    unique = [sorted(u["column_names"]) for u in inspector.get_unique_constraints(name)]
    indexes = [(i["name"], i["column_names"], i["unique"]) for i in inspector.get_indexes(name)]
    primary = inspector.get_pk_constraint(name)["constrained_columns"]
    return {"columns": columns, "primary": primary, "foreign": sorted(keys)} | {
        "unique": sorted(unique),
        "indexes": sorted(indexes),
    }


def test_migrations_build_exactly_the_tables_of_the_schema_module(
    store: Store, store_url: str, reference_url: str
) -> None:
    reference = Database(reference_url)
    try:
        with reference.writing() as connection:
            METADATA.create_all(connection)
    finally:
        reference.close()
    migrated = shape(store_url)
    assert migrated.pop(VERSION_TABLE.name) is not None
    assert migrated == shape(reference_url)


def test_the_schema_version_is_recorded_once_and_a_second_opening_migrates_nothing(
    store: Store, store_url: str
) -> None:
    store.create_org("acme")
    database = Database(store_url)
    try:
        assert migrate(database) == LATEST
        with database.reading() as connection:
            assert connection.execute(select(VERSION_TABLE.c.version)).scalars().all() == [LATEST]
    finally:
        database.close()
    with open_store(store_url) as reopened:
        assert reopened.get_org("acme") is not None


def test_a_database_of_a_newer_schema_is_refused(store: Store, store_url: str) -> None:
    database = Database(store_url)
    try:
        with database.writing() as connection:
            connection.execute(update(VERSION_TABLE).values(version=LATEST + 1))
    finally:
        database.close()
    with pytest.raises(RuntimeError, match=f"schema version {LATEST + 1}.*Upgrade nestflow"):
        open_store(store_url)


# --- the database URL -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mysql://u@localhost/db", "SQLite or PostgreSQL"),
        ("postgresql+psycopg2://u@localhost/db", "SQLite or PostgreSQL"),
        ("not a url", "is not a database URL"),
        ("sqlite://", "not an in-memory database"),
        ("sqlite:///:memory:", "not an in-memory database"),
    ],
)
def test_urls_other_than_a_sqlite_file_or_postgresql_are_refused(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        open_store(url)


def test_a_url_is_shown_without_its_password(postgres_url: str) -> None:
    with_password = postgres_url.replace("postgres@", "postgres:hunter2@")
    with open_store(with_password) as store:  # trust authentication ignores the password
        assert "hunter2" not in store.url
        assert store.url.startswith("postgresql://postgres:***@127.0.0.1")


def test_postgres_urls_of_every_spelling_reach_psycopg(postgres_url: str) -> None:
    for scheme in ("postgres://", "postgresql+psycopg://"):
        with open_store(postgres_url.replace("postgresql://", scheme)) as store:
            assert store.get_org("nobody") is None


@pytest.mark.parametrize(
    ("module", "url", "extra"),
    [
        ("sqlalchemy", "sqlite:///service.db", "service"),
        ("psycopg", "postgresql://u@127.0.0.1:1/db", "postgres"),
    ],
)
def test_a_missing_library_names_the_extra_to_install(
    without: Callable[[str, str], str], module: str, url: str, extra: str
) -> None:
    call = f"from nestflow.service.store import open_store; open_store({url!r})"
    assert f"pip install 'nestflow[{extra}]'" in without(module, call)


def test_sqlite_stores_run_in_wal_mode(sqlite_url: str) -> None:
    with open_store(sqlite_url):
        database = Database(sqlite_url)
        with database.reading() as connection:
            assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        database.close()


# --- organisations and admin keys -------------------------------------------------------------


def test_an_admin_key_is_32_random_bytes_and_names_its_organisation(store: Store) -> None:
    key = store.create_org("acme", "Acme Corp")
    assert len(base64.urlsafe_b64decode(key + "=")) == 32
    assert store.admin_org(key) == "acme"
    assert store.create_org("globex") != key
    assert store.get_org("acme") == Organisation("acme", "Acme Corp", external=False)


@pytest.mark.parametrize("presented", ["", "nope", "x" * 43])
def test_any_other_string_names_no_organisation(store: Store, presented: str) -> None:
    key = store.create_org("acme")
    assert store.admin_org(presented) is None
    assert store.admin_org(key[:-1]) is None


def test_an_organisation_is_created_once(store: Store) -> None:
    store.create_org("acme")
    with pytest.raises(ValueError, match="'acme' exists already"):
        store.create_org("acme")


@pytest.mark.parametrize("slug", ["", "a/b", "-acme", "ac me", "é", "x" * 65])
def test_an_organisation_name_must_fit_in_a_call_url(store: Store, slug: str) -> None:
    with pytest.raises(ValueError, match="is not 1 to 64 letters"):
        store.create_org(slug)
    with pytest.raises(ValueError, match="is not 1 to 64 letters"):
        store.record_external_org(slug)


def test_an_external_organisation_is_recorded_once_without_an_admin_key(
    store: Store, store_url: str
) -> None:
    store.record_external_org("globex", "Globex")
    store.record_external_org("globex", "renamed")  # already known: nothing changes
    assert store.get_org("globex") == Organisation("globex", "Globex", external=True)
    assert "globex" not in [row.split(",")[1] for row in stored_text(store_url).split("\n")]
    assert store.get_org("nobody") is None


# --- pipelines --------------------------------------------------------------------------------


def test_a_registered_pipeline_keeps_source_contract_and_hash(store: Store) -> None:
    register(store)
    assert store.get_pipeline("acme", "summarise") == RegisteredPipeline(
        "acme", "summarise", "flows/s.yaml", CONTRACT, "sha256:1", allow_cross_org=False
    )
    assert store.get_pipeline("acme", "other") is None
    assert store.get_pipeline("globex", "summarise") is None


def test_registering_again_updates_the_pipeline_and_keeps_its_tokens(store: Store) -> None:
    register(store)
    token, _ = store.issue_token("acme", "summarise")
    updated = store.register_pipeline(
        "acme", "summarise", source="v2.yaml", contract={}, content_hash="h2", allow_cross_org=True
    )
    assert store.get_pipeline("acme", "summarise") == updated
    assert (updated.source, updated.contract, updated.allow_cross_org) == ("v2.yaml", {}, True)
    assert store.lookup_token(token) is not None


def test_a_pipeline_of_an_unknown_organisation_is_refused(store: Store) -> None:
    with pytest.raises(LookupError, match="Unknown organisation 'acme'"):
        store.register_pipeline("acme", "s", source="s.yaml", contract={}, content_hash="h")


def test_an_organisation_lists_its_own_pipelines_by_name(store: Store) -> None:
    for name in ("b", "a"):
        register(store, name=name)
    register(store, org="globex", name="c")
    assert [p.name for p in store.list_pipelines("acme")] == ["a", "b"]
    assert store.list_pipelines("nobody") == []


def test_cross_org_calls_are_switched_per_pipeline(store: Store) -> None:
    register(store)
    register(store, name="other")
    store.set_allow_cross_org("acme", "summarise", True)
    assert [p.allow_cross_org for p in store.list_pipelines("acme")] == [False, True]
    store.set_allow_cross_org("acme", "summarise", False)
    assert not store.list_pipelines("acme")[1].allow_cross_org
    with pytest.raises(LookupError, match="Unknown pipeline 'acme/nope'"):
        store.set_allow_cross_org("acme", "nope", True)


# --- call tokens ------------------------------------------------------------------------------


def test_a_token_is_32_random_url_safe_bytes_granting_one_pipeline(store: Store) -> None:
    register(store)
    register(store, name="other")
    token, secret = store.issue_token("acme", "summarise")
    assert secret is None
    assert len(base64.urlsafe_b64decode(token + "=")) == 32
    grant = store.lookup_token(token)
    assert grant is not None
    assert (grant.org, grant.pipeline, grant.holder, grant.secret) == (
        "acme",
        "summarise",
        "acme",
        None,
    )
    assert store.lookup_token(store.issue_token("acme", "other").token).pipeline == "other"  # type: ignore[union-attr]


@pytest.mark.parametrize("presented", ["", "unknown", "x" * 43])
def test_an_unknown_token_grants_nothing(store: Store, presented: str) -> None:
    register(store)
    token, _ = store.issue_token("acme", "summarise")
    assert store.lookup_token(presented) is None
    assert store.lookup_token(token.upper()) is None


def test_credentials_are_stored_only_as_hashes_and_secrets_only_sealed(
    store: Store, store_url: str
) -> None:
    admin_key = store.create_org("globex")
    register(store, allow_cross_org=True)
    issued = [store.issue_token("acme", "summarise", holder) for holder in ("acme", "globex")]
    issued.append(store.rotate_token("acme", "summarise", "globex"))
    stored = stored_text(store_url)
    for token, secret in issued:
        assert secret is not None
        assert token not in stored
        assert secret not in stored
        assert hashlib.sha256(token.encode()).hexdigest() in stored
    assert admin_key not in stored
    assert hashlib.sha256(admin_key.encode()).hexdigest() in stored


def test_credentials_do_not_show_in_reprs(store: Store) -> None:
    register(store, allow_cross_org=True)
    issued = store.issue_token("acme", "summarise")
    grant = store.lookup_token(issued.token)
    assert issued.secret is not None
    for shown in (repr(issued), repr(grant), str(grant)):
        assert issued.token not in shown
        assert issued.secret not in shown


def test_rotation_refuses_the_old_token_at_once_everywhere_and_the_new_one_works(
    store: Store, second_store: Store
) -> None:
    register(store)
    old, _ = store.issue_token("acme", "summarise")
    assert second_store.lookup_token(old) is not None
    new, _ = store.rotate_token("acme", "summarise")
    assert second_store.lookup_token(old) is None
    assert store.lookup_token(old) is None
    grant = second_store.lookup_token(new)
    assert grant is not None
    assert grant.holder == "acme"


def test_rotation_replaces_only_the_tokens_of_that_holder(store: Store) -> None:
    store.create_org("globex")
    register(store, allow_cross_org=True)
    mine = [store.issue_token("acme", "summarise").token for _ in range(2)]
    theirs = store.issue_token("acme", "summarise", "globex").token
    store.rotate_token("acme", "summarise")
    assert [store.lookup_token(token) for token in mine] == [None, None]
    assert store.lookup_token(theirs) is not None


def test_revocation_refuses_the_tokens_and_counts_them(store: Store) -> None:
    register(store)
    tokens = [store.issue_token("acme", "summarise").token for _ in range(2)]
    assert store.revoke_tokens("acme", "summarise") == 2
    assert [store.lookup_token(token) for token in tokens] == [None, None]
    assert store.revoke_tokens("acme", "summarise") == 0
    with pytest.raises(LookupError, match="Unknown pipeline 'acme/nope'"):
        store.revoke_tokens("acme", "nope")


def test_no_token_for_another_organisation_while_cross_org_calls_are_off(store: Store) -> None:
    store.create_org("globex")
    register(store)
    for make in (store.issue_token, store.rotate_token):
        with pytest.raises(PermissionError, match="allow-cross-org acme/summarise on"):
            make("acme", "summarise", "globex")
    store.set_allow_cross_org("acme", "summarise", True)
    token, secret = store.issue_token("acme", "summarise", "globex")
    grant = store.lookup_token(token)
    assert grant is not None
    assert (grant.holder, grant.secret) == ("globex", secret)


def test_tokens_made_while_cross_org_calls_are_on_carry_their_own_secret(store: Store) -> None:
    register(store)
    before, none = store.issue_token("acme", "summarise")
    store.set_allow_cross_org("acme", "summarise", True)
    first, second = (store.issue_token("acme", "summarise") for _ in range(2))
    assert none is None
    assert store.lookup_token(before).secret is None  # type: ignore[union-attr]
    assert first.secret is not None
    assert len(base64.urlsafe_b64decode(first.secret + "=")) == 32
    assert first.secret != second.secret
    assert [store.lookup_token(t).secret for t, _ in (first, second)] == [  # type: ignore[union-attr]
        first.secret,
        second.secret,
    ]
    rotated = store.rotate_token("acme", "summarise")
    assert rotated.secret not in (None, first.secret)


def test_tokens_need_a_known_pipeline_and_holder(store: Store) -> None:
    register(store, allow_cross_org=True)
    with pytest.raises(LookupError, match="Unknown pipeline 'acme/nope'"):
        store.issue_token("acme", "nope")
    with pytest.raises(LookupError, match="Unknown organisation 'globex'"):
        store.issue_token("acme", "summarise", "globex")
    store.record_external_org("globex")
    assert store.issue_token("acme", "summarise", "globex").secret is not None


# --- nonces -----------------------------------------------------------------------------------


@pytest.fixture
def token_ids(store: Store) -> list[int]:
    register(store)
    grants = [store.lookup_token(store.issue_token("acme", "summarise").token) for _ in "ab"]
    return [grant.token_id for grant in grants if grant is not None]


def test_a_nonce_is_accepted_once_per_token(store: Store, token_ids: list[int]) -> None:
    first, second = token_ids
    assert store.record_nonce(first, "n" * 16, expires_at=2e9)
    assert not store.record_nonce(first, "n" * 16, expires_at=2e9)
    assert store.record_nonce(second, "n" * 16, expires_at=2e9)


def test_a_nonce_may_be_used_again_once_it_has_expired(
    store: Store, token_ids: list[int], clock: Clock
) -> None:
    token_id = token_ids[0]
    assert store.record_nonce(token_id, "nonce", expires_at=clock() + 300)
    clock.advance(299)
    assert not store.record_nonce(token_id, "nonce", expires_at=clock() + 300)
    clock.advance(1)
    assert store.record_nonce(token_id, "nonce", expires_at=clock() + 300)
    assert not store.record_nonce(token_id, "nonce", expires_at=clock() + 300)


def test_purging_forgets_only_expired_nonces(
    store: Store, token_ids: list[int], clock: Clock
) -> None:
    token_id = token_ids[0]
    for age in range(4):
        store.record_nonce(token_id, f"nonce-{age}", expires_at=clock() + age)
    clock.advance(2)
    assert store.purge_nonces() == 3
    assert store.purge_nonces() == 0
    assert not store.record_nonce(token_id, "nonce-3", expires_at=clock() + 300)


@pytest.mark.parametrize("nonce", ["", "x" * 129])
def test_a_nonce_has_1_to_128_characters(store: Store, token_ids: list[int], nonce: str) -> None:
    with pytest.raises(ValueError, match="1 to 128 characters"):
        store.record_nonce(token_ids[0], nonce, expires_at=2e9)
    assert store.record_nonce(token_ids[0], "x" * 128, expires_at=2e9)


def test_threads_recording_one_nonce_at_once_get_true_exactly_once(
    store: Store, token_ids: list[int]
) -> None:
    with ThreadPoolExecutor(8) as pool:
        for round_ in range(10):
            record = [(token_ids[0], f"nonce-{round_}", 2e9)] * 8
            accepted = list(pool.map(lambda args: store.record_nonce(*args), record))
            assert accepted.count(True) == 1


# --- audit ------------------------------------------------------------------------------------


def test_a_started_record_is_committed_before_audit_started_returns(
    store: Store, second_store: Store, clock: Clock
) -> None:
    record_id = store.audit_started(call(caller_pipeline="triage", caller_node="summ", depth=1))
    (seen,) = second_store.audit_for("acme")
    assert seen == AuditRecord(
        record_id,
        clock(),
        "acme",
        "summarise",
        "acme",
        "triage",
        "summ",
        depth=1,
        mode="sync",
        trace_id=None,
        status="started",
        reason=None,
        latency_ms=None,
        error_type=None,
        error_message=None,
        run_id=None,
        usage={},
    )


def test_a_finished_record_keeps_outcome_latency_run_id_and_usage(store: Store) -> None:
    ok = store.audit_started(call(mode="stream", trace_id="ab" * 16))
    failed = store.audit_started(call())
    usage = {"wall_s": 0.25, "cpu_s": 0.125, "llm_tokens": 42}
    store.audit_finished(ok, "ok", latency_ms=250.5, run_id="run-1", usage=usage)
    store.audit_finished(
        failed, "error", latency_ms=3, error_type="KeyError", error_message="'x'", run_id="run-2"
    )
    records = {record.id: record for record in store.audit_for("acme")}
    assert records[ok].status == "ok"
    assert (records[ok].latency_ms, records[ok].run_id, records[ok].usage) == (
        250.5,
        "run-1",
        usage,
    )
    assert (records[ok].mode, records[ok].trace_id) == ("stream", "ab" * 16)
    assert records[failed].status == "error"
    assert (records[failed].error_type, records[failed].error_message) == ("KeyError", "'x'")


def test_a_record_is_finished_once_with_an_outcome(store: Store) -> None:
    record_id = store.audit_started(call())
    with pytest.raises(ValueError, match="not 'started'"):
        store.audit_finished(record_id, "started", latency_ms=1)  # type: ignore[arg-type]
    store.audit_finished(record_id, "timeout", latency_ms=30_000)
    with pytest.raises(LookupError, match=f"No started audit record has id {record_id}"):
        store.audit_finished(record_id, "ok", latency_ms=1)
    with pytest.raises(LookupError, match="No started audit record has id 999"):
        store.audit_finished(999, "ok", latency_ms=1)
    assert store.audit_for("acme")[0].status == "timeout"


def test_a_rejected_call_is_recorded_with_its_reason(store: Store) -> None:
    store.audit_rejected(call(caller=None), "invalid token")
    store.audit_rejected(call(caller="globex", depth=9), "call depth 9 exceeds 8")
    newest, oldest = store.audit_for("acme")
    assert (oldest.status, oldest.reason, oldest.caller_org) == ("rejected", "invalid token", None)
    assert (newest.reason, newest.caller_org, newest.depth) == (
        "call depth 9 exceeds 8",
        "globex",
        9,
    )
    assert [r.status for r in store.audit_for("globex")] == ["rejected"]


def test_an_organisation_sees_only_records_it_is_caller_or_callee_of_newest_first(
    store: Store, clock: Clock
) -> None:
    ids = {}
    for callee, caller in [("acme", "acme"), ("acme", "globex"), ("globex", "initech")]:
        clock.advance(1)
        ids[callee, caller] = store.audit_started(call(callee, caller))
    clock.advance(-10)  # a later record with an earlier time (another server's clock) sorts by time
    ids["initech", "acme"] = store.audit_started(call("initech", "acme"))

    def seen(org: str) -> list[int]:
        return [record.id for record in store.audit_for(org)]

    assert seen("acme") == [ids["acme", "globex"], ids["acme", "acme"], ids["initech", "acme"]]
    assert seen("globex") == [ids["globex", "initech"], ids["acme", "globex"]]
    assert seen("initech") == [ids["globex", "initech"], ids["initech", "acme"]]
    assert seen("umbrella") == []


def test_the_audit_listing_keeps_the_newest_records_up_to_the_limit(
    store: Store, clock: Clock
) -> None:
    ids = []
    for _ in range(5):
        clock.advance(1)
        ids.append(store.audit_started(call()))
    assert [record.id for record in store.audit_for("acme", limit=2)] == ids[:2:-1][:2]
    with pytest.raises(ValueError, match="positive number"):
        store.audit_for("acme", limit=0)


def test_records_made_at_the_same_time_list_the_last_made_first(store: Store) -> None:
    ids = [store.audit_started(call()) for _ in range(3)]
    assert [record.id for record in store.audit_for("acme")] == ids[::-1]


def test_a_record_as_json_has_the_fields_of_spec_12_10(store: Store) -> None:
    store.audit_finished(store.audit_started(call()), "ok", latency_ms=1, usage={"wall_s": 1})
    shown = store.audit_for("acme")[0].to_json()
    assert list(shown) == [
        "id",
        "time",
        "callee_org",
        "pipeline",
        "caller_org",
        "caller_pipeline",
        "caller_node",
        "depth",
        "mode",
        "trace_id",
        "status",
        "reason",
        "latency_ms",
        "error_type",
        "error_message",
        "run_id",
        "usage",
    ]
    assert shown["time"] == "2023-11-14T22:13:20.000Z"
    assert json.loads(json.dumps(shown)) == shown


def test_threads_writing_audit_records_at_once_lose_none(store: Store) -> None:
    def one_call(index: int) -> int:
        record_id = store.audit_started(call(caller_node=f"node-{index}"))
        store.audit_finished(record_id, "ok", latency_ms=index, run_id=f"run-{index}")
        return record_id

    with ThreadPoolExecutor(8) as pool:
        ids = list(pool.map(one_call, range(80)))
    records = store.audit_for("acme", limit=1000)
    assert sorted(r.id for r in records) == sorted(ids)
    assert {r.run_id for r in records if r.status == "ok"} == {f"run-{i}" for i in range(80)}
