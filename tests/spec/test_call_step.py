"""YAML ``call`` steps (SPEC 11.2, 12.7) against a real nestflow service on uvicorn.

The callee is a YAML workflow registered in a SQLite store and served by
``nestflow.service.app.create_app`` on a loopback port; every call crosses a real socket.
"""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from nestflow import Pipeline
from nestflow.errors import ImportReferenceError, SpecValidationError
from nestflow.service import registration
from nestflow.service.app import create_app
from nestflow.service.call import RemoteCall
from nestflow.service.contract import Contract
from nestflow.service.store import open_store

# The real-server helpers of the service tests, shared rather than copied.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "service"))
from servers import serve, unreachable_url

TOKEN_VAR = "NESTFLOW_TEST_CALL_STEP_TOKEN"
StepModule = Callable[[str, str], str]  # the `step_module` fixture of tests/spec/conftest.py

CALLEE = """
def shout(text: str) -> str:
    return text.upper() + "!"


def describe(answer, error) -> dict:
    return {"answer": answer, "error_type": None if error is None else error["type"]}
"""


@dataclass
class Service:
    url: str
    token: str
    module: str

    def call_url(self, pipeline: str = "shout") -> str:
        return f"{self.url}/v1/call/acme/{pipeline}"


@pytest.fixture
def service(tmp_path: Path, step_module: StepModule) -> Iterator[Service]:
    """A service on a free port serving ``acme/shout`` (``text`` -> ``text.upper() + "!"``)."""
    module = step_module("callee", CALLEE)
    flow = tmp_path / "shout.yaml"
    flow.write_text(
        textwrap.dedent(f"""
        version: 1
        workflow:
          name: shout
          inputs: {{text: {{type: string}}}}
          steps:
            - {{name: shout, type: function, function: "{module}:shout"}}
        """)
    )
    contract = Contract.from_mapping(
        {
            "name": "shout",
            "source": str(flow),
            "contract": {
                "inputs": [{"name": "text", "type": "string", "required": True}],
                "outputs": ["shout"],
                "response_key": "shout",
            },
        }
    )
    with open_store(f"sqlite:///{tmp_path / 'service.db'}") as store:
        store.create_org("acme")
        registration.register(store, "acme", contract)
        token = store.issue_token("acme", "shout").token
        with serve(create_app(store)) as url:
            yield Service(url, token, module)


def workflow(tmp_path: Path, call: str, after: str = "") -> Path:
    """A caller workflow with input ``ticket`` (an object), a call step, then ``after``."""
    flow = tmp_path / "caller.yaml"
    flow.write_text(
        "version: 1\nworkflow:\n  name: caller\n  inputs: {ticket: {type: object}}\n"
        "  steps:\n"
        + textwrap.indent(textwrap.dedent(call).strip(), "    ")
        + "\n"
        + textwrap.indent(textwrap.dedent(after).strip(), "    ")
        + "\n"
    )
    return flow


def test_a_call_step_returns_the_served_pipelines_result(tmp_path: Path, service: Service) -> None:
    flow = workflow(
        tmp_path,
        f"""
        - name: loud
          type: call
          url: {service.call_url()}
          token: {service.token}
          inputs: {{text: "{{{{inputs.ticket.body}}}}"}}
        """,
    )
    pipeline = Pipeline.from_yaml(flow)
    assert pipeline.inputs == ("ticket",)
    outputs = pipeline.run(ticket={"body": "help"})
    assert outputs["loud"] == "HELP!"
    assert outputs["loud._error"] is None


def test_an_env_token_passes_through_untouched_and_is_read_at_call_time(
    tmp_path: Path, service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    flow = workflow(
        tmp_path,
        f"""
        - name: loud
          type: call
          url: {service.call_url()}
          token: env:{TOKEN_VAR}
          output_key: answer
          mode: sync
          timeout: 10
          inputs: {{text: "{{{{inputs.ticket.body}}}}"}}
        """,
    )
    pipeline = Pipeline.from_yaml(flow)
    call = pipeline.nodes[0].func
    assert isinstance(call, RemoteCall)
    assert call.token.given == f"env:{TOKEN_VAR}"
    assert call.timeout == 10
    monkeypatch.setenv(TOKEN_VAR, service.token)
    assert pipeline.run(ticket={"body": "hi"})["answer"] == "HI!"


def test_a_step_output_is_sent_by_selector(
    tmp_path: Path, service: Service, step_module: StepModule
) -> None:
    helper = step_module("helper", "def pick(ticket: dict) -> dict:\n    return ticket\n")
    flow = workflow(
        tmp_path,
        f"""
        - {{name: picked, type: function, function: "{helper}:pick"}}
        - name: loud
          type: call
          url: {service.call_url()}
          token: {service.token}
          inputs: {{text: "{{{{steps.picked.result.title}}}}"}}
        """,
    )
    pipeline = Pipeline.from_yaml(flow)
    call = pipeline.nodes[1].func
    assert isinstance(call, RemoteCall)
    assert [(key, str(selector)) for key, selector in call.selectors] == [("text", "picked.title")]
    assert pipeline.run(ticket={"title": "login"})["loud"] == "LOGIN!"


def test_a_failed_call_leaves_none_and_downstream_steps_read_its_error(
    tmp_path: Path, service: Service
) -> None:
    with unreachable_url() as nowhere:
        outputs = run_unreachable(tmp_path, service, nowhere)
    assert outputs["loud"] is None
    assert outputs["loud._error"]["type"] == "network"
    assert outputs["described"] == {"answer": None, "error_type": "network"}
    assert outputs["summary"] == "NETWORK FROM OK!"


def run_unreachable(tmp_path: Path, service: Service, nowhere: str) -> dict[str, Any]:
    flow = workflow(
        tmp_path,
        f"""
        - name: loud
          type: call
          url: {nowhere}/v1/call/acme/shout
          token: {service.token}
          timeout: 5
          inputs: {{text: "{{{{inputs.ticket.body}}}}"}}
        """,
        f"""
        - name: described
          type: function
          function: "{service.module}:describe"
          inputs: {{answer: "{{{{steps.loud.result}}}}", error: "{{{{steps.loud.error}}}}"}}
        - name: summary
          type: function
          function: "{service.module}:shout"
          inputs: {{text: "{{{{steps.loud.error.type}}}} from {{{{steps.loud.status}}}}"}}
        """,
    )
    return dict(Pipeline.from_yaml(flow).run(ticket={"body": "help"}))


def test_a_successful_calls_error_reads_as_none(tmp_path: Path, service: Service) -> None:
    flow = workflow(
        tmp_path,
        f"""
        - name: loud
          type: call
          url: {service.call_url()}
          token: {service.token}
          inputs: {{text: "{{{{inputs.ticket.body}}}}"}}
        """,
        f"""
        - name: described
          type: function
          function: "{service.module}:describe"
          inputs: {{answer: "{{{{steps.loud.result}}}}", error: "{{{{steps.loud.error}}}}"}}
        """,
    )
    outputs = Pipeline.from_yaml(flow).run(ticket={"body": "ok"})
    assert outputs["described"] == {"answer": "OK!", "error_type": None}


def load_problems(tmp_path: Path, call: str) -> str:
    with pytest.raises(SpecValidationError) as caught:
        Pipeline.from_yaml(workflow(tmp_path, call))
    return str(caught.value)


def test_bad_call_fields_are_all_reported_with_the_step_and_what_was_expected(
    tmp_path: Path,
) -> None:
    message = load_problems(
        tmp_path,
        """
        - name: loud
          type: call
          url: http://127.0.0.1:8787/v1/call/acme/shout
          mode: fast
          timeout: -1
          output_key: "not a name"
          inputs: {text: "{{inputs.ticket.body | upper}}", style: "short"}
        """,
    )
    assert "caller.yaml" in message
    assert "a `call` step needs `token:`" in message
    assert "`mode:` is `sync`" in message
    assert "'fast'" in message
    assert "`timeout:` is a number of seconds above 0; got -1" in message
    assert "`output_key:`" in message
    assert "'not a name'" in message
    assert "call input `text`: a call input is one reference" in message
    assert "call input `style`" in message
    assert "got 'short'" in message


def test_a_templated_token_is_refused(tmp_path: Path) -> None:
    message = load_problems(
        tmp_path,
        """
        - name: loud
          type: call
          url: http://127.0.0.1:8787/v1/call/acme/shout
          token: "{{inputs.ticket.token}}"
          inputs: {text: "{{inputs.ticket.body}}"}
        """,
    )
    assert "`token:` is taken as written and never templated" in message


def test_an_unknown_field_is_refused_with_a_suggestion(tmp_path: Path) -> None:
    message = load_problems(
        tmp_path,
        """
        - name: loud
          type: call
          url: http://127.0.0.1:8787/v1/call/acme/shout
          token: t
          timeout_seconds: 5
          inputs: {text: "{{inputs.ticket.body}}"}
        """,
    )
    assert "unknown key `timeout_seconds` in a call step (did you mean `timeout`?)" in message


def test_pipeline_calls_own_refusals_name_the_step(tmp_path: Path) -> None:
    message = load_problems(
        tmp_path,
        """
        - name: loud
          type: call
          url: ftp://example.org/v1/call/acme/shout
          token: t
          inputs: {text: "{{inputs.ticket.body}}"}
        """,
    )
    assert "`call` step `loud` cannot be made" in message
    assert "ftp://example.org" in message


def test_without_the_client_extra_a_call_step_names_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "httpx", None)
    monkeypatch.delitem(sys.modules, "nestflow.service.client", raising=False)
    with pytest.raises(ImportReferenceError) as caught:
        Pipeline.from_yaml(
            workflow(
                tmp_path,
                """
                - name: loud
                  type: call
                  url: http://127.0.0.1:8787/v1/call/acme/shout
                  token: t
                  inputs: {text: "{{inputs.ticket.body}}"}
                """,
            )
        )
    assert "`call` step `loud` needs the `client` extra" in str(caught.value)
    assert "pip install 'nestflow[client]'" in str(caught.value)
