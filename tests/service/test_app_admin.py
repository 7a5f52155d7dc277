"""The management API of the service app over real HTTP: registration, tokens, audit.

Pipelines come from ``test_app_calls`` by reference, as a user registers ``module:attribute``.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from servers import serve

from nestflow.service.app import create_app
from nestflow.service.store import open_store

PUBLIC_URL = "https://flows.example.com"
CONTRACT: dict[str, Any] = {
    "name": "summariser",
    "source": "test_app_calls:summariser",
    "contract": {
        "inputs": [{"name": "thread", "type": "array", "required": True}],
        "outputs": ["summary", "sentiment"],
        "response_key": "summary",
    },
}


class Admin:
    """An HTTP client acting with one organisation's admin key."""

    def __init__(self, http: httpx.Client, url: str, key: str) -> None:
        self.http, self.url, self.key = http, url, key

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.key}"}
        return self.http.request(method, self.url + path, headers=headers, **kwargs)

    def register(self, contract: dict[str, Any]) -> httpx.Response:
        return self.request("POST", "/v1/admin/pipelines", json=contract)

    def tokens(self, action: str = "", **params: str) -> httpx.Response:
        path = "/v1/admin/pipelines/summariser/tokens" + (f"/{action}" if action else "")
        return self.request("POST", path, params=params)

    def audit(self, **params: int) -> list[dict[str, Any]]:
        reply = self.request("GET", "/v1/audit", params=params)
        assert reply.status_code == 200, reply.text
        records: list[dict[str, Any]] = reply.json()["records"]
        return records


@contextlib.contextmanager
def served(store_url: str) -> Iterator[dict[str, Admin]]:
    with (
        open_store(store_url) as store,
        serve(create_app(store, public_url=PUBLIC_URL)) as url,
        httpx.Client(timeout=10) as http,
    ):
        yield {org: Admin(http, url, store.create_org(org)) for org in ("acme", "beta")}


@pytest.fixture
def admins(sqlite_url: str) -> Iterator[dict[str, Admin]]:
    with served(sqlite_url) as made:
        yield made


def changed(path: tuple[str, ...], value: Any) -> dict[str, Any]:
    contract = copy.deepcopy(CONTRACT)
    place = contract
    for key in path[:-1]:
        place = place[key]
    place[path[-1]] = value
    return contract


def test_a_valid_registration_returns_the_call_url(admins: dict[str, Admin]) -> None:
    reply = admins["acme"].register(CONTRACT)
    assert reply.status_code == 201
    assert reply.json() == {
        "name": "summariser",
        "url": f"{PUBLIC_URL}/v1/call/acme/summariser",
    }


@pytest.mark.parametrize(
    ("path", "value", "cited"),
    [
        (("contract", "time_budget_s"), 301, "time_budget_s"),
        (("contract", "inputs"), [{"name": "thread"}, {"name": "colour"}], "colour"),
        (("contract", "response_key"), "verdict", "verdict"),
        (("contract", "outputs"), ["summary", "mood"], "mood"),
    ],
)
def test_an_invalid_contract_gives_400_with_the_contract_error(
    admins: dict[str, Admin], path: tuple[str, ...], value: Any, cited: str
) -> None:
    reply = admins["acme"].register(changed(path, value))
    assert reply.status_code == 400
    error = reply.json()["error"]
    assert error["type"] == "ContractError"
    assert error["message"].startswith("ContractError: ")
    assert cited in error["message"]
    assert error["run_id"] is None


def test_a_source_that_cannot_be_loaded_gives_400(admins: dict[str, Admin]) -> None:
    reply = admins["acme"].register(changed(("source",), "test_app_calls:nothing_here"))
    assert reply.status_code == 400
    assert "nothing_here" in reply.json()["error"]["message"]


def test_admin_endpoints_refuse_a_missing_or_unknown_key(admins: dict[str, Admin]) -> None:
    anonymous = Admin(admins["acme"].http, admins["acme"].url, "not-a-key")
    assert anonymous.register(CONTRACT).status_code == 401
    reply = anonymous.http.get(anonymous.url + "/v1/audit")
    assert reply.status_code == 401
    assert reply.json()["error"]["type"] == "unauthorized"


def test_tokens_are_issued_rotated_and_revoked_for_the_own_organisation_only(
    admins: dict[str, Admin],
) -> None:
    acme, beta = admins["acme"], admins["beta"]
    acme.register(CONTRACT)
    issued = acme.tokens().json()
    assert set(issued) == {"token", "secret"}
    assert issued["secret"] is None
    rotated = acme.tokens("rotate").json()
    assert rotated["token"] != issued["token"]
    assert acme.tokens("revoke").json() == {"revoked": True}
    assert beta.tokens().status_code == 404  # beta has no pipeline of that name


def test_tokens_for_another_organisation_need_cross_org_and_come_with_a_secret(
    admins: dict[str, Admin],
) -> None:
    acme = admins["acme"]
    acme.register(CONTRACT)
    assert acme.tokens(holder="beta").status_code == 403
    path = "/v1/admin/pipelines/summariser/allow-cross-org"
    assert acme.request("PUT", path, json={"allow_cross_org": "yes"}).status_code == 400
    assert acme.request("PUT", path, json={"allow_cross_org": True}).json() == {
        "allow_cross_org": True
    }
    issued = acme.tokens(holder="beta").json()
    assert isinstance(issued["secret"], str)


def make_calls(admin: Admin, count: int) -> str:
    admin.register(CONTRACT)
    token = admin.tokens().json()["token"]
    url = f"{admin.url}/v1/call/acme/summariser"
    for size in range(count):
        reply = admin.http.post(
            url,
            json={"inputs": {"thread": ["m"] * size}},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert reply.status_code == 200
    return str(token)


def test_the_audit_listing_is_newest_first_limited_and_of_the_own_organisation(
    admins: dict[str, Admin],
) -> None:
    make_calls(admins["acme"], 3)
    records = admins["acme"].audit()
    assert len(records) == 3
    assert [r["id"] for r in records] == sorted((r["id"] for r in records), reverse=True)
    assert len(admins["acme"].audit(limit=2)) == 2
    assert admins["beta"].audit() == []
    bad_limit = admins["acme"].request("GET", "/v1/audit", params={"limit": 0})
    assert bad_limit.status_code == 400
    assert "limit" in bad_limit.json()["error"]["message"]


def test_calls_and_rotation_work_against_postgresql(postgres_url: str) -> None:
    with served(postgres_url) as admins:
        acme = admins["acme"]
        old = make_calls(acme, 1)
        acme.tokens("rotate")
        reply = acme.http.post(
            f"{acme.url}/v1/call/acme/summariser",
            json={"inputs": {"thread": []}},
            headers={"Authorization": f"Bearer {old}"},
        )
        assert reply.status_code == 401
        statuses = [(r["status"], r["reason"]) for r in acme.audit()]
        assert statuses == [("rejected", "invalid_token"), ("ok", None)]
        assert {"wall_s", "cpu_s"} <= set(acme.audit()[1]["usage"])
