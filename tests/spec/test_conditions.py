"""Conditions, failure references and fallbacks in workflows (SPEC 11.4, A11.7)."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from nestflow import DiskCache, LocalBackend, Pipeline
from nestflow.diagram.text import to_text
from nestflow.errors import SpecValidationError, TemplateError
from nestflow.spec.loader import load_yaml

MODULE = """
from nestflow import node

CALLS = []

def primary(data: str) -> str:
    CALLS.append(("primary", data))
    if data == "bad":
        raise ValueError("cannot read bad data")
    return data.upper()

def recover(error: dict, original: str) -> str:
    CALLS.append(("recover", original))
    return f"recovered {original} after {error['type']}: {error['message']} at {error['path']}"

def double(n: int) -> int:
    CALLS.append(("double", n))
    return 2 * n

def either(a, b):
    return a if a is not None else b

def describe(status: str, error) -> str:
    return status if error is None else f"{status}: {error['message']}"

@node(output_name="tripled")
def tripled(n: int) -> int:
    CALLS.append(("tripled", n))
    return 3 * n
"""

PRIMARY = """
version: 1
workflow:
  name: primary_flow
  inputs: {data: {type: string}}
  steps:
    - {name: upper, type: function, function: "MOD:primary"}
"""

FALLBACK = """
version: 1
workflow:
  name: fallback_flow
  inputs:
    error: {type: object}
    original: {type: string}
  steps:
    - {name: recovered, type: function, function: "MOD:recover"}
"""

MAIN = """
version: 1
workflow:
  name: main
  inputs:
    data: {type: string}
  steps:
    - name: primary
      type: pipeline
      pipeline_file: ./primary.yaml
      config: {continue_on_error: true}
    - name: fallback
      type: pipeline
      pipeline_file: ./fallback.yaml
      condition: "{{steps.primary.error != null}}"
      inputs: {error: "{{steps.primary.error}}", original: "{{inputs.data}}"}
    - name: answer
      type: function
      function: "MOD:either"
      inputs:
        a: "{{ steps.primary.upper | default(null) }}"
        b: "{{ steps.fallback.recovered | default(null) }}"
"""


@pytest.fixture
def flows(tmp_path: Path, step_module: Callable[[str, str], str]) -> tuple[Path, object]:
    """A folder with the module of step functions (importable) and the three workflows."""
    name = step_module("condsteps", MODULE)
    for file, text in (("primary", PRIMARY), ("fallback", FALLBACK), ("main", MAIN)):
        (tmp_path / f"{file}.yaml").write_text(text.replace("MOD", name))
    return tmp_path, __import__(name)


def write(folder: Path, name: str, module: object, text: str) -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text).lstrip().replace("MOD", module.__name__))  # type: ignore[attr-defined]
    return path


def statuses(out: object) -> dict[str, str]:
    return {r.path: r.status for r in out.report.records}  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "backend",
    [LocalBackend(), LocalBackend(node_execution="threaded"), LocalBackend(node_execution="async")],
    ids=["sequential", "threaded", "async"],
)
def test_the_fallback_runs_only_when_the_primary_fails_and_receives_its_error(
    flows: tuple[Path, object], backend: LocalBackend
) -> None:
    folder, module = flows
    flow = load_yaml(folder / "main.yaml").with_backend(backend)

    good = flow.run(data="fine")
    assert dict(good) == {"upper": "FINE", "recovered": None, "answer": "FINE"}
    assert good.report.status == "ok"
    assert [c[0] for c in module.CALLS] == ["primary"]  # type: ignore[attr-defined]

    module.CALLS.clear()  # type: ignore[attr-defined]
    bad = flow.run(data="bad")
    recovered = "recovered bad after ValueError: cannot read bad data at main > primary > upper"
    assert dict(bad) == {"upper": None, "recovered": recovered, "answer": recovered}
    assert bad.report.status == "partial"
    assert [c[0] for c in module.CALLS] == ["primary", "recover"]  # type: ignore[attr-defined]
    assert statuses(bad)["main > primary_flow > upper"] == "failed"
    assert statuses(bad)["main > fallback_flow > recovered"] == "executed"


def test_compiler_wiring_stays_out_of_results_and_pictures(flows: tuple[Path, object]) -> None:
    folder, _ = flows
    flow = load_yaml(folder / "main.yaml")
    assert flow.outputs == ("upper", "recovered", "answer")
    assert set(flow.run(data="bad")) == {"upper", "recovered", "answer"}
    described = to_text(flow, depth=None)
    assert "[fallback]" in described
    assert ".fallback" not in described
    assert "primary.outcome" in described  # the fallback reads how the primary went
    dot = flow.visualize(depth=None).source
    assert "fallback" in dot
    assert ".fallback.inputs" not in dot


def test_a_false_condition_skips_the_step_and_what_reads_its_result_but_not_its_status(
    flows: tuple[Path, object],
) -> None:
    folder, module = flows
    flow = write(
        folder,
        "gated.yaml",
        module,
        """
        version: 1
        workflow:
          name: gated
          inputs: {n: {type: integer}}
          steps:
            - name: big
              type: function
              function: "MOD:double"
              condition: "{{ inputs.n > 2 }}"
              inputs: {n: "{{inputs.n}}"}
            - name: after
              type: function
              function: "MOD:double"
              inputs: {n: "{{steps.big.result}}"}
            - name: safe
              type: function
              function: "MOD:double"
              inputs: {n: "{{ steps.big.result | default(0) }}"}
            - name: said
              type: function
              function: "MOD:describe"
              inputs: {status: "{{steps.big.status}}", error: "{{steps.big.error}}"}
        """,
    )
    pipeline = load_yaml(flow)
    small = pipeline.run(n=1)
    assert dict(small) == {"big": None, "after": None, "safe": 0, "said": "skipped"}
    found = statuses(small)
    assert found["gated > big"] == "skipped"
    assert found["gated > after"] == "skipped"
    assert found["gated > safe"] == "executed"
    reasons = {r.path: r.error for r in small.report.records}
    assert reasons["gated > big"] == "skipped: its condition `{{ inputs.n > 2 }}` is false"
    assert reasons["gated > after"] == "skipped: `gated > big` was skipped"
    assert small.report.status == "ok"

    large = pipeline.run(n=3)
    assert dict(large) == {"big": 6, "after": 12, "safe": 12, "said": "ok"}


def test_status_and_error_of_a_step_that_failed(flows: tuple[Path, object]) -> None:
    folder, module = flows
    flow = write(
        folder,
        "status.yaml",
        module,
        """
        version: 1
        workflow:
          name: status
          inputs: {data: {type: string}}
          steps:
            - name: first
              type: function
              function: "MOD:primary"
              config: {continue_on_error: true}
            - name: said
              type: function
              function: "MOD:describe"
              inputs: {status: "{{steps.first.status}}", error: "{{steps.first.error}}"}
        """,
    )
    pipeline = load_yaml(flow)
    assert pipeline.run(data="bad")["said"] == "failed: cannot read bad data"
    assert pipeline.run(data="ok")["said"] == "ok"


def test_a_condition_on_a_plain_step_keeps_its_cache_entries_shared_with_python(
    flows: tuple[Path, object], tmp_path: Path
) -> None:
    folder, module = flows
    flow = write(
        folder,
        "shared.yaml",
        module,
        """
        version: 1
        workflow:
          name: shared
          inputs: {n: {type: integer}}
          steps:
            - name: tripled
              type: function
              function: "MOD:tripled"
              condition: "{{ inputs.n != 0 }}"
        """,
    )
    cache = DiskCache(tmp_path / "cache")
    Pipeline([module.tripled], cache=cache).run(n=4)  # type: ignore[attr-defined]
    module.CALLS.clear()  # type: ignore[attr-defined]
    out = load_yaml(flow).with_cache(cache).run(n=4)
    assert out["tripled"] == 12
    assert out.report.cache_hits == 1
    assert module.CALLS == []  # type: ignore[attr-defined]
    skipped = load_yaml(flow).with_cache(cache).run(n=0)
    assert skipped["tripled"] is None
    assert skipped.report.cache_hits == 0


def test_conditions_on_for_each_and_parallel_steps(flows: tuple[Path, object]) -> None:
    folder, module = flows
    flow = write(
        folder,
        "shapes.yaml",
        module,
        """
        version: 1
        workflow:
          name: shapes
          inputs:
            ns: {type: array}
            go: {type: boolean}
          steps:
            - name: each
              type: for_each
              over: "{{inputs.ns}}"
              as: n
              condition: "{{ inputs.go }}"
              step: {type: function, function: "MOD:double", inputs: {n: "{{n}}"}}
            - name: inner_gate
              type: for_each
              over: "{{inputs.ns}}"
              as: n
              step:
                type: function
                function: "MOD:double"
                condition: "{{ n > 1 }}"
                inputs: {n: "{{n}}"}
            - name: side
              type: parallel
              condition: "{{ not inputs.go }}"
              steps:
                - {name: one, type: function, function: "MOD:double", inputs: {n: 1}}
                - {name: two, type: function, function: "MOD:double", inputs: {n: 2}}
        """,
    )
    pipeline = load_yaml(flow)
    on = pipeline.run(ns=[1, 2, 3], go=True)
    assert on["each"] == [2, 4, 6]
    assert on["inner_gate"] == [None, 4, 6]
    assert on["one"] is None
    assert on["two"] is None
    off = pipeline.run(ns=[1, 2], go=False)
    assert off["each"] is None
    assert (off["one"], off["two"]) == (2, 4)


def test_a_condition_that_fails_at_run_time_names_the_step(flows: tuple[Path, object]) -> None:
    folder, module = flows
    flow = write(
        folder,
        "broken.yaml",
        module,
        """
        version: 1
        workflow:
          name: broken
          inputs: {config: {type: object}}
          steps:
            - name: big
              type: function
              function: "MOD:double"
              condition: "{{ inputs.config.limit > 2 }}"
              inputs: {n: 1}
        """,
    )
    with pytest.raises(TemplateError, match="Step `big`") as caught:
        load_yaml(flow).run(config={"other": 1})
    assert "limit" in str(caught.value)
    guarded = flow.read_text().replace(
        "inputs.config.limit > 2", "inputs.config.limit | default(0) > 2"
    )
    flow.write_text(guarded)
    assert load_yaml(flow).run(config={"other": 1})["big"] is None


@pytest.mark.parametrize(
    ("condition", "message"),
    [
        ("yes {{ inputs.n > 2 }}", "a condition is one template"),
        ("true", "a condition is one template"),
        ("{{ inputs.m > 2 }}", "there is no input `m`"),
        ("{{ steps.later.result }}", "there is no step `later`"),
        ("{{ steps.big.result }}", "there is no step `big`"),
    ],
    ids=["text", "literal", "undeclared-input", "later-step", "itself"],
)
def test_a_bad_condition_fails_loading_with_its_place(
    flows: tuple[Path, object], condition: str, message: str
) -> None:
    folder, module = flows
    flow = write(
        folder,
        "bad.yaml",
        module,
        f"""
        version: 1
        workflow:
          name: bad
          inputs: {{n: {{type: integer}}}}
          steps:
            - name: big
              type: function
              function: "MOD:double"
              condition: "{condition}"
            - {{name: later, type: function, function: "MOD:double", inputs: {{n: 1}}}}
        """,
    )
    with pytest.raises(SpecValidationError, match=message) as caught:
        load_yaml(flow)
    assert f"{flow}:9" in str(caught.value)


def test_the_status_of_a_step_inside_a_parallel_step_is_not_readable_outside_it(
    flows: tuple[Path, object],
) -> None:
    folder, module = flows
    flow = write(
        folder,
        "inside.yaml",
        module,
        """
        version: 1
        workflow:
          name: inside
          steps:
            - name: side
              type: parallel
              steps:
                - {name: one, type: function, function: "MOD:double", inputs: {n: 1}}
            - name: said
              type: function
              function: "MOD:describe"
              inputs: {status: "{{steps.one.status}}", error: null}
        """,
    )
    with pytest.raises(SpecValidationError, match="from outside its parallel or for_each step"):
        load_yaml(flow)


def test_a_skipped_pipeline_step_is_on_record_under_its_own_name(
    flows: tuple[Path, object],
) -> None:
    folder, _ = flows
    out = load_yaml(folder / "main.yaml").run(data="fine")
    reasons = {r.path: r.error for r in out.report.records if r.status == "skipped"}
    assert reasons["main > fallback"] == (
        "skipped: its condition `{{steps.primary.error != null}}` is false"
    )
    tree = out.report.tree()
    assert "fallback skipped: its condition" in tree
    assert ".fallback" not in tree
