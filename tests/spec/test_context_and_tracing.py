"""``inherit_context``, ``enable_tracing`` and ``trace_metadata`` in workflow config (11.6)."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from nestflow import Pipeline, node
from nestflow.errors import SpecValidationError, TemplateError
from nestflow.spec.loader import load_yaml
from nestflow.testing import RecordingCallback

MODULE = """
def say(text: str) -> str:
    return text
"""

CHILD = """
version: 1
workflow:
  name: child
  global_vars: {tone: calm}
  steps:
    - name: said
      type: function
      function: "MOD:say"
      inputs: {text: "{{global_vars.model}} {{global_vars.tone}} {{workflow.language}}"}
"""


def _exporter() -> InMemorySpanExporter:
    exporter = InMemorySpanExporter()
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
        provider = trace.get_tracer_provider()
    assert isinstance(provider, TracerProvider)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return exporter


EXPORTER = _exporter()


@pytest.fixture
def folder(tmp_path: Path, step_module: Callable[[str, str], str]) -> Path:
    name = step_module("ctxsteps", MODULE)
    (tmp_path / "child.yaml").write_text(textwrap.dedent(CHILD).lstrip().replace("MOD", name))
    EXPORTER.clear()
    return tmp_path


def write(folder: Path, text: str) -> Path:
    path = folder / "parent.yaml"
    path.write_text(textwrap.dedent(text).lstrip())
    return path


PARENT = """
version: 1
workflow:
  name: parent
  settings: {language: en}
  global_vars: {model: small-v2, tone: loud}
  steps:
    - name: inner
      type: pipeline
      pipeline_file: ./child.yaml
      config: {inherit_context: true}
"""


def test_a_child_reads_its_parents_context_and_its_own_values_win(folder: Path) -> None:
    out = load_yaml(write(folder, PARENT)).run()
    assert out["said"] == "small-v2 calm en"


def test_without_inherit_context_the_child_cannot_read_the_parents_names(folder: Path) -> None:
    path = write(folder, PARENT.replace("      config: {inherit_context: true}\n", ""))
    with pytest.raises(TemplateError, match="there is no global variable `model`"):
        load_yaml(path)


def test_the_same_file_compiles_apart_for_each_context(folder: Path) -> None:
    path = write(
        folder,
        PARENT
        + """
    - name: plain
      type: pipeline
      pipeline_file: ./other_parent.yaml
      outputs: [{path: said, as: other}]
""",
    )
    (folder / "other_parent.yaml").write_text(
        textwrap.dedent(PARENT)
        .lstrip()
        .replace("name: parent", "name: other_parent")
        .replace("small-v2", "large-v3")
        .replace("language: en", "language: fr")
    )
    out = load_yaml(path).run()
    assert out["said"] == "small-v2 calm en"
    assert out["other"] == "large-v3 calm fr"


def _spans() -> list[Any]:
    return list(EXPORTER.get_finished_spans())


def test_enable_tracing_adds_spans_with_the_metadata_and_keeps_other_callbacks(
    folder: Path,
) -> None:
    path = write(
        folder,
        PARENT.replace(
            "config: {inherit_context: true}",
            "config:\n        inherit_context: true\n        enable_tracing: true\n"
            '        trace_metadata: {team: "{{workflow.language}}-search",\n'
            '                         model: "{{global_vars.model}}"}',
        ),
    )
    recording = RecordingCallback()
    pipeline = load_yaml(path)
    pipeline.with_callbacks([recording]).run()
    spans = _spans()
    names = {s.name for s in spans}
    assert "node said" in names
    said = next(s for s in spans if s.name == "node said")
    assert said.attributes["team"] == "en-search"
    assert said.attributes["model"] == "small-v2"
    assert recording.names("node_end") == ["said"]  # the callbacks given still hear the child


def test_trace_metadata_reads_only_what_is_known_when_the_file_loads(folder: Path) -> None:
    path = write(
        folder,
        """
        version: 1
        workflow:
          name: parent
          inputs: {who: {type: string}}
          config: {enable_tracing: true, trace_metadata: {who: "{{inputs.who}}"}}
          steps:
            - name: said
              type: function
              function: "os.path:basename"
              inputs: {p: "{{inputs.who}}"}
        """,
    )
    with pytest.raises(SpecValidationError, match="rendered when the file loads"):
        load_yaml(path)
    alone = write(
        folder,
        """
        version: 1
        workflow:
          name: parent
          config: {trace_metadata: {who: me}}
          steps:
            - {name: said, type: function, function: "os.path:basename", inputs: {p: x}}
        """,
    )
    with pytest.raises(SpecValidationError, match="set it too"):
        load_yaml(alone)


def test_callbacks_can_be_added_to_the_inherited_ones_from_python() -> None:
    @node(output_name="y")
    def inc(x: int) -> int:
        return x + 1

    outer_seen, inner_seen = RecordingCallback(), RecordingCallback()
    inner = Pipeline([inc], name="inner").with_callbacks([inner_seen], add=True)
    Pipeline([inner], name="outer", callbacks=[outer_seen]).run(x=1)
    assert outer_seen.names("node_end") == ["inc"]
    assert inner_seen.names("node_end") == ["inc"]


def test_global_vars_may_be_templates_over_inputs_and_workflow_keys(folder: Path) -> None:
    path = write(
        folder,
        """
        version: 1
        workflow:
          name: parent
          settings: {language: en}
          inputs: {user: {type: string}}
          global_vars:
            greeting: "hello {{inputs.user}} ({{workflow.language}})"
            fixed: 3
          steps:
            - name: said
              type: function
              function: "os.path:basename"
              inputs: {p: "{{global_vars.greeting}}/{{global_vars.fixed}}"}
        """,
    )
    flow = load_yaml(path)
    assert flow.inputs == ("user",)
    assert flow.run(user="ann")["said"] == "3"
    assert flow.run(user="ann")["said"] == "3"
    bad = path.read_text().replace("{{inputs.user}}", "{{steps.said.result}}")
    path.write_text(bad)
    with pytest.raises(TemplateError, match="no step `said`"):
        load_yaml(path)
