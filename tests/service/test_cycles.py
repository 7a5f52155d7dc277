"""Static loop prevention at registration (SPEC 12.6, 12.10; A12.6).

Pipelines here are real: Python pipelines of this module (registered as
``test_cycles:<name>``) and YAML workflows with ``call`` steps, registered in a real SQLite
store, through ``registration.register``, the command line and the admin endpoint on uvicorn.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from servers import serve

from nestflow import Pipeline, node
from nestflow.cli import main
from nestflow.errors import CallCycleError
from nestflow.service import registration
from nestflow.service.app import create_app
from nestflow.service.call import pipeline_call
from nestflow.service.contract import Contract
from nestflow.service.cycles import DEFAULT_PUBLIC_URL, local_target
from nestflow.service.store import Store, open_store

PUBLIC_URL = "https://flows.example.com"


def url(pipeline: str, org: str = "acme", base: str = DEFAULT_PUBLIC_URL) -> str:
    return f"{base}/v1/call/{org}/{pipeline}"


@node(output_name="out0")
def echo(text: str) -> str:
    return text


def calling(*urls: str) -> Pipeline:
    """A pipeline of input ``text`` whose first output is ``out0``, calling each URL."""
    calls = [
        pipeline_call(target, "token", {"text": "text"}, f"out{index}")
        for index, target in enumerate(urls)
    ]
    return Pipeline(calls or [echo], name="flow")


calls_nothing = calling()
calls_a = calling(url("A"))
calls_b = calling(url("B"))
calls_c = calling(url("C"))
calls_b_and_c = calling(url("B"), url("C"))
calls_a_on_another_server = calling(url("A", base="http://127.0.0.1:9999"))
calls_a_of_another_org = calling(url("A", org="beta"))
calls_a_on_the_public_url = calling(url("A", base=PUBLIC_URL))
calls_c_on_the_public_url = calling(url("C", base=PUBLIC_URL))
calls_a_two_levels_down = Pipeline([Pipeline([calls_a], name="middle")], name="outer")


def contract(name: str, source: str) -> Contract:
    return Contract.from_mapping(
        {
            "name": name,
            "source": source,
            "contract": {
                "inputs": [{"name": "text", "type": "string", "required": True}],
                "outputs": ["out0"],
                "response_key": "out0",
            },
        }
    )


@pytest.fixture
def acme(sqlite_store: Store) -> Store:
    sqlite_store.create_org("acme")
    return sqlite_store


def register(store: Store, name: str, attribute: str, public_url: str | None = None) -> None:
    registration.register(
        store, "acme", contract(name, f"test_cycles:{attribute}"), public_url=public_url
    )


def refusal(store: Store, name: str, attribute: str, public_url: str | None = None) -> str:
    with pytest.raises(CallCycleError) as caught:
        register(store, name, attribute, public_url)
    return str(caught.value)


def test_a_pipeline_closing_a_two_step_loop_is_refused_citing_the_chain(acme: Store) -> None:
    register(acme, "A", "calls_b")  # B is not registered yet: allowed
    message = refusal(acme, "B", "calls_a")
    # A12.6's `A -> B -> A`, told from the pipeline being registered as 12.10 pins it.
    assert "acme/B -> acme/A -> acme/B" in message
    assert acme.get_pipeline("acme", "B") is None


def test_an_update_closing_a_loop_is_refused_and_the_old_version_kept(acme: Store) -> None:
    register(acme, "A", "calls_b")
    register(acme, "B", "calls_nothing")
    message = refusal(acme, "B", "calls_a")
    assert "acme/B -> acme/A -> acme/B" in message
    registered = acme.get_pipeline("acme", "B")
    assert registered is not None
    assert registered.source == "test_cycles:calls_nothing"


def test_a_three_step_loop_is_refused_with_its_whole_chain(acme: Store) -> None:
    register(acme, "A", "calls_b")
    register(acme, "B", "calls_c")
    message = refusal(acme, "C", "calls_a")
    assert "acme/C -> acme/A -> acme/B -> acme/C" in message


def test_a_pipeline_calling_itself_is_refused(acme: Store) -> None:
    message = refusal(acme, "A", "calls_a")
    assert "acme/A -> acme/A" in message


def test_a_loop_through_one_of_several_calls_is_found(acme: Store) -> None:
    register(acme, "B", "calls_nothing")
    register(acme, "C", "calls_a")
    message = refusal(acme, "A", "calls_b_and_c")
    assert "acme/A -> acme/C -> acme/A" in message


def test_calls_to_another_server_or_organisation_are_not_part_of_the_graph(
    acme: Store,
) -> None:
    register(acme, "B", "calls_a_on_another_server")
    register(acme, "C", "calls_a_of_another_org")
    register(acme, "A", "calls_b_and_c")
    assert acme.get_pipeline("acme", "A") is not None


def test_the_servers_public_url_decides_what_is_this_server(acme: Store) -> None:
    register(acme, "B", "calls_a", public_url=PUBLIC_URL)  # 127.0.0.1:8787 is elsewhere now
    register(acme, "A", "calls_b", public_url=PUBLIC_URL)
    register(acme, "C", "calls_a_on_the_public_url", public_url=PUBLIC_URL)
    message = refusal(acme, "A", "calls_c_on_the_public_url", public_url=PUBLIC_URL)
    assert "acme/A -> acme/C -> acme/A" in message


def test_a_call_nested_two_levels_deep_counts(acme: Store) -> None:
    register(acme, "B", "calls_a_two_levels_down")
    message = refusal(acme, "A", "calls_b")
    assert "acme/A -> acme/B -> acme/A" in message


def yaml_calling(folder: Path, target: str) -> Path:
    flow = folder / "caller.yaml"
    flow.write_text(
        textwrap.dedent(f"""
        version: 1
        workflow:
          name: caller
          inputs: {{text: {{type: string}}}}
          steps:
            - name: out0
              type: call
              url: {target}
              token: env:ACME_TOKEN
              inputs: {{text: "{{{{inputs.text}}}}"}}
        """)
    )
    return flow


def test_a_yaml_call_step_counts(acme: Store, tmp_path: Path) -> None:
    registration.register(acme, "acme", contract("B", str(yaml_calling(tmp_path, url("A")))))
    message = refusal(acme, "A", "calls_b")
    assert "acme/A -> acme/B -> acme/A" in message


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("http://127.0.0.1:8787/v1/call/acme/B", "B"),
        ("HTTP://127.0.0.1:8787/v1/call/acme/B/", "B"),
        ("http://127.0.0.1:8787/v1/call/beta/B", None),
        ("http://127.0.0.1:8788/v1/call/acme/B", None),
        ("https://127.0.0.1:8787/v1/call/acme/B", None),
        ("http://127.0.0.1:8787/v1/admin/pipelines", None),
    ],
)
def test_local_target_reads_same_server_same_org_call_urls(
    target: str, expected: str | None
) -> None:
    assert local_target(target, "acme", DEFAULT_PUBLIC_URL) == expected


def test_local_target_under_a_public_url_with_a_path_and_default_port() -> None:
    base = "https://flows.example.com/nestflow"
    assert local_target("https://flows.example.com:443/nestflow/v1/call/acme/B", "acme", base)
    assert local_target("https://flows.example.com/v1/call/acme/B", "acme", base) is None


# --- the command line and the admin endpoint -------------------------------------------------


def contract_file(folder: Path, name: str, attribute: str) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(
        textwrap.dedent(f"""
        name: {name}
        source: "test_cycles:{attribute}"
        contract:
          inputs: [{{name: text, type: string, required: true}}]
          outputs: [out0]
          response_key: out0
        """)
    )
    return path


def test_service_register_exits_2_with_the_cycle_on_stderr(tmp_path: Path, sqlite_url: str) -> None:
    with open_store(sqlite_url) as store:
        store.create_org("acme")
    runner = CliRunner()

    def cli(*args: str) -> tuple[int, str, str]:
        done = runner.invoke(main, list(args), catch_exceptions=False)
        return done.exit_code, done.stdout, done.stderr

    first = cli("service", "register", str(contract_file(tmp_path, "A", "calls_b")),
                "--org", "acme", "--db", sqlite_url)  # fmt: skip
    assert first == (0, url("A") + "\n", "")
    code, out, err = cli("service", "register", str(contract_file(tmp_path, "B", "calls_a")),
                         "--org", "acme", "--db", sqlite_url)  # fmt: skip
    assert (code, out) == (2, "")
    assert err.startswith("CallCycleError: ")
    assert "acme/B -> acme/A -> acme/B" in err


@pytest.fixture
def admin(sqlite_url: str) -> Iterator[tuple[httpx.Client, str]]:
    with (
        open_store(sqlite_url) as store,
        serve(create_app(store, public_url=PUBLIC_URL)) as served,
        httpx.Client(base_url=served, timeout=10) as http,
    ):
        key = store.create_org("acme")
        yield http, key


def test_the_admin_endpoint_refuses_a_cycle_with_409(admin: tuple[httpx.Client, str]) -> None:
    http, key = admin
    headers = {"Authorization": f"Bearer {key}"}

    def post(name: str, attribute: str) -> httpx.Response:
        body = contract(name, f"test_cycles:{attribute}").to_mapping()
        return http.post("/v1/admin/pipelines", json=body, headers=headers)

    assert post("C", "calls_a_on_the_public_url").status_code == 201
    refused = post("A", "calls_c_on_the_public_url")
    assert refused.status_code == 409
    error = refused.json()["error"]
    assert error["type"] == "CallCycleError"
    assert error["message"].startswith("CallCycleError: ")
    assert "acme/A -> acme/C -> acme/A" in error["message"]
