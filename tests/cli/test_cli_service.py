"""``nestflow service ...``: each command's output and exit code (SPEC 12.10's table).

The commands run in this process through click's runner against a real SQLite database in the
workspace, and once through the installed console script.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cli_workspace import Invoke, invoker, without
from click.testing import Result

from nestflow.service.store import AuditCall, open_store

CONTRACT = """
    name: doubler
    source: ../flow.yaml
    contract:
      inputs:
        - {name: n, type: integer, required: true}
        - {name: name, type: string, required: true}
      outputs: [doubled, greeting]
      response_key: doubled
    """

Cli = Callable[..., Result]


@pytest.fixture
def db(workspace: Path) -> str:
    return f"sqlite:///{workspace / 'service.db'}"


def _contract(workspace: Path, text: str = CONTRACT, name: str = "doubler.yaml") -> str:
    """Write a contract file under ``contracts/`` (its source is relative to that folder)."""
    path = workspace / "contracts" / name
    path.parent.mkdir(exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return str(path.relative_to(workspace))


def _json(done: Result) -> Any:
    assert done.exit_code == 0, done.stderr
    return json.loads(done.stdout)


def _registered(cli: Cli, workspace: Path, db: str, *orgs: str) -> dict[str, str]:
    """Organisations made (first one owns `doubler`, registered): their admin keys."""
    keys = {
        org: _json(cli("service", "org", "create", org, "--db", db))["admin_key"] for org in orgs
    }
    done = cli("service", "register", _contract(workspace), "--org", orgs[0], "--db", db)
    assert done.exit_code == 0, done.stderr
    return keys


def test_org_create_prints_the_admin_key_once_and_refuses_a_second_time(cli: Cli, db: str) -> None:
    made = _json(cli("service", "org", "create", "acme", "--db", db))
    assert list(made) == ["org", "admin_key"]
    assert made["org"] == "acme"
    with open_store(db) as store:
        assert store.admin_org(made["admin_key"]) == "acme"
    again = cli("service", "org", "create", "acme", "--db", db)
    assert (again.exit_code, again.stdout) == (2, "")
    assert "exists already" in again.stderr


def test_the_database_defaults_to_nestflow_service_db_in_the_working_directory(
    cli: Cli, workspace: Path
) -> None:
    made = _json(cli("service", "org", "create", "acme"))
    assert (workspace / "nestflow-service.db").is_file()
    with open_store(f"sqlite:///{workspace / 'nestflow-service.db'}") as store:
        assert store.admin_org(made["admin_key"]) == "acme"


def test_register_prints_the_call_url_and_stores_the_source_beside_the_file(
    cli: Cli, workspace: Path, db: str
) -> None:
    _registered(cli, workspace, db, "acme")
    again = cli("service", "register", _contract(workspace), "--org", "acme", "--db", db)
    assert (again.exit_code, again.stdout) == (0, "http://127.0.0.1:8787/v1/call/acme/doubler\n")
    public = cli(
        "service", "register", _contract(workspace), "--org", "acme", "--db", db,
        "--public-url", "https://flows.example.com/",
    )  # fmt: skip
    assert public.stdout == "https://flows.example.com/v1/call/acme/doubler\n"
    with open_store(db) as store:
        stored = store.get_pipeline("acme", "doubler")
    assert stored is not None
    assert stored.source == str((workspace / "flow.yaml").resolve())
    assert stored.content_hash.startswith("sha256:")
    assert stored.contract["response_key"] == "doubled"
    assert stored.contract["time_budget_s"] == 30
    assert stored.allow_cross_org is False


@pytest.mark.parametrize(
    ("old", "new", "found"),
    [
        ("response_key: doubled", "response_key: doubled\n  time_budget_s: 301", "time_budget_s"),
        ("response_key: doubled", "response_key: described", "response_key"),
        ("{name: name, type: string, required: true}", "{name: other, required: true}", "other"),
    ],
    ids=["budget-301", "response-key-outside-outputs", "unknown-input"],
)
def test_a12_1_register_of_a_bad_contract_exits_2_with_a_contract_error(
    cli: Cli, workspace: Path, db: str, old: str, new: str, found: str
) -> None:
    cli("service", "org", "create", "acme", "--db", db)
    text = textwrap.dedent(CONTRACT).replace(old, new)
    done = cli("service", "register", _contract(workspace, text), "--org", "acme", "--db", db)
    assert (done.exit_code, done.stdout) == (2, "")
    assert done.stderr.startswith("ContractError: ")
    assert found in done.stderr
    with open_store(db) as store:
        assert store.get_pipeline("acme", "doubler") is None


def test_register_refuses_an_unknown_organisation_and_a_missing_file(
    cli: Cli, workspace: Path, db: str
) -> None:
    done = cli("service", "register", _contract(workspace), "--org", "nobody", "--db", db)
    assert (done.exit_code, done.stdout) == (2, "")
    assert "nobody" in done.stderr
    missing = cli("service", "register", "nosuch.yaml", "--org", "nobody", "--db", db)
    assert missing.exit_code == 2
    assert missing.stderr.startswith("ContractError: ")


def test_tokens_are_issued_rotated_and_revoked(cli: Cli, workspace: Path, db: str) -> None:
    _registered(cli, workspace, db, "acme")
    issued = _json(cli("service", "token", "issue", "acme/doubler", "--db", db))
    assert list(issued) == ["token", "secret"]
    assert issued["secret"] is None
    rotated = _json(cli("service", "token", "rotate", "acme/doubler", "--db", db))
    assert rotated["token"] != issued["token"]
    with open_store(db) as store:
        assert store.lookup_token(issued["token"]) is None
        grant = store.lookup_token(rotated["token"])
        assert grant is not None
        assert (grant.holder, grant.pipeline) == ("acme", "doubler")
    revoked = cli("service", "token", "revoke", "acme/doubler", "--db", db)
    assert (revoked.exit_code, revoked.stdout) == (0, '{"revoked": true}\n')
    with open_store(db) as store:
        assert store.lookup_token(rotated["token"]) is None


def test_a_token_for_another_org_is_refused_until_cross_org_calls_are_allowed(
    cli: Cli, workspace: Path, db: str
) -> None:
    _registered(cli, workspace, db, "acme", "beta")
    refused = cli("service", "token", "issue", "acme/doubler", "--holder", "beta", "--db", db)
    assert (refused.exit_code, refused.stdout) == (2, "")
    assert refused.stderr.startswith("Error: ")
    on = cli("service", "allow-cross-org", "acme/doubler", "on", "--db", db)
    assert (on.exit_code, on.stdout) == (0, '{"allow_cross_org": true}\n')
    issued = _json(cli("service", "token", "issue", "acme/doubler", "--holder", "beta", "--db", db))
    assert isinstance(issued["secret"], str)
    with open_store(db) as store:
        grant = store.lookup_token(issued["token"])
        assert grant is not None
        assert grant.holder == "beta"
        pipeline = store.get_pipeline("acme", "doubler")
        assert pipeline is not None
        assert pipeline.allow_cross_org is True
    off = cli("service", "allow-cross-org", "acme/doubler", "off", "--db", db)
    assert (off.exit_code, off.stdout) == (0, '{"allow_cross_org": false}\n')
    rotated = cli("service", "token", "rotate", "acme/doubler", "--holder", "beta", "--db", db)
    assert (rotated.exit_code, rotated.stdout) == (2, "")


@pytest.mark.parametrize(
    "args",
    [
        ("token", "issue", "acme/nosuch"),
        ("token", "rotate", "acme/nosuch"),
        ("token", "revoke", "acme/nosuch"),
        ("allow-cross-org", "acme/nosuch", "on"),
        ("token", "issue", "nosuch/doubler"),
    ],
)
def test_commands_on_an_unknown_pipeline_exit_2(
    cli: Cli, workspace: Path, db: str, args: tuple[str, ...]
) -> None:
    _registered(cli, workspace, db, "acme")
    done = cli("service", *args, "--db", db)
    assert (done.exit_code, done.stdout) == (2, "")
    assert "nosuch" in done.stderr


def test_a_target_without_a_slash_is_a_usage_error(cli: Cli, db: str) -> None:
    done = cli("service", "token", "issue", "doubler", "--db", db)
    assert done.exit_code == 2
    assert "ORG/PIPELINE" in done.stderr


def test_audit_prints_the_newest_records_of_the_org_as_a_json_array(
    cli: Cli, workspace: Path, db: str
) -> None:
    _registered(cli, workspace, db, "acme", "beta", "gamma")
    assert _json(cli("service", "audit", "--org", "acme", "--db", db)) == []
    with open_store(db) as store:
        first = store.audit_started(AuditCall("acme", "doubler", "acme"))
        second = store.audit_started(AuditCall("acme", "doubler", "beta"))
    records = _json(cli("service", "audit", "--org", "acme", "--db", db))
    assert [record["id"] for record in records] == [second, first]
    assert records[0]["status"] == "started"
    assert records[0]["caller_org"] == "beta"
    newest = _json(cli("service", "audit", "--org", "acme", "--limit", "1", "--db", db))
    assert [record["id"] for record in newest] == [second]
    beta = _json(cli("service", "audit", "--org", "beta", "--db", db))
    assert [record["id"] for record in beta] == [second]
    assert _json(cli("service", "audit", "--org", "gamma", "--db", db)) == []
    assert cli("service", "audit", "--org", "acme", "--limit", "0", "--db", db).exit_code == 2


def test_the_console_script_administers_the_service(script: Invoke, workspace: Path) -> None:
    made = script("service", "org", "create", "acme")
    assert made.returncode == 0, made.stderr
    assert json.loads(made.stdout)["org"] == "acme"
    registered = script("service", "register", _contract(workspace), "--org", "acme")
    assert (registered.returncode, registered.stdout) == (
        0,
        "http://127.0.0.1:8787/v1/call/acme/doubler\n",
    )
    bad = _contract(
        workspace, CONTRACT.replace("response_key: doubled", "response_key: x"), "b.yaml"
    )
    refused = script("service", "register", bad, "--org", "acme")
    assert (refused.returncode, refused.stdout) == (2, "")
    assert refused.stderr.startswith("ContractError: ")
    issued = script("service", "token", "issue", "acme/doubler")
    assert issued.returncode == 0, issued.stderr
    token = json.loads(issued.stdout)["token"]
    denied = script("service", "token", "issue", "acme/doubler", "--holder", "acme2")
    assert denied.returncode == 2
    assert denied.stderr
    audit = script("service", "audit", "--org", "acme")
    assert (audit.returncode, json.loads(audit.stdout)) == (0, [])
    stored = b"".join(path.read_bytes() for path in workspace.glob("nestflow-service.db*"))
    assert token.encode() not in stored
    assert json.loads(made.stdout)["admin_key"].encode() not in stored


def test_without_the_service_extra_the_commands_say_how_to_install_it(workspace: Path) -> None:
    nestflow = invoker(without("sqlalchemy"), workspace)
    done = nestflow("service", "org", "create", "acme")
    assert (done.returncode, done.stdout) == (1, "")
    assert "pip install 'nestflow[service]'" in done.stderr
    assert nestflow("validate", "flow.yaml").returncode == 0  # the rest works all the same


def test_a_database_url_that_cannot_be_opened_exits_2(cli: Cli, workspace: Path) -> None:
    unknown = cli("service", "audit", "--org", "acme", "--db", "bogus://x")
    assert (unknown.exit_code, unknown.stdout) == (2, "")
    assert "sqlite:///" in unknown.stderr
    folder = workspace / "no" / "such" / "folder"
    unreachable = cli("service", "audit", "--org", "acme", "--db", f"sqlite:///{folder}/x.db")
    assert unreachable.exit_code == 2
    assert unreachable.stderr.startswith("Error: Cannot open the service database")


def test_help_lists_serve_and_service(script: Invoke) -> None:
    done = script("--help")
    listed = [line.split()[0] for line in done.stdout.split("Commands:\n")[1].splitlines()]
    assert {"serve", "service"} <= set(listed)
    service = script("service", "--help").stdout
    for name in ("allow-cross-org", "audit", "org", "register", "token"):
        assert f"  {name} " in service
