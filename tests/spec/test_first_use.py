"""What a new user writing workflow files meets: accepted forms and the problems named."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from nestflow.errors import SpecValidationError
from nestflow.spec.loader import load_yaml

MODULE = """
def echo(text: str) -> str:
    return text

def upper(text: str) -> str:
    return text.upper()
"""


@pytest.fixture
def folder(tmp_path: Path, step_module: Callable[[str, str], str]) -> Path:
    step_module("firstuse", MODULE)
    return tmp_path


def write(folder: Path, file: str, text: str) -> Path:
    module = f"firstuse_{folder.name.replace('-', '_')}"
    path = folder / file
    path.write_text(textwrap.dedent(text).lstrip().replace("MOD", module))
    return path


def test_a_declared_input_no_step_reads_is_accepted_at_both_ends(folder: Path) -> None:
    write(
        folder,
        "child.yaml",
        """
        version: 1
        workflow:
          name: child
          inputs:
            text: {type: string}
            patterns: {type: array, default: []}
          steps:
            - {name: loud, type: function, function: "MOD:upper"}
        """,
    )
    root = write(
        folder,
        "root.yaml",
        """
        version: 1
        workflow:
          name: root
          inputs:
            text: {type: string}
            unused: {type: integer, default: 3}
          steps:
            - name: inner
              type: pipeline
              pipeline_file: ./child.yaml
              inputs: {text: "{{inputs.text}}", patterns: ["a"]}
        """,
    )
    flow = load_yaml(root)
    assert flow.inputs == ("text",)
    assert dict(flow.run(text="hi")) == {"loud": "HI"}


def test_a_loop_variable_named_like_the_mapped_output_is_a_load_problem(folder: Path) -> None:
    flow = write(
        folder,
        "clash.yaml",
        """
        version: 1
        workflow:
          name: clash
          inputs: {texts: {type: array}}
          steps:
            - name: text
              type: for_each
              over: "{{inputs.texts}}"
              as: text
              step: {type: function, function: "MOD:echo", inputs: {text: "{{text}}"}}
        """,
    )
    with pytest.raises(SpecValidationError, match="as: text_item") as caught:
        load_yaml(flow)
    assert f"{flow}:9" in str(caught.value)


def test_over_with_a_path_into_a_value_says_paths_are_not_supported_there(folder: Path) -> None:
    flow = write(
        folder,
        "path.yaml",
        """
        version: 1
        workflow:
          name: path
          inputs: {outline: {type: object}}
          steps:
            - name: each
              type: for_each
              over: "{{inputs.outline.sections}}"
              as: section
              step: {type: function, function: "MOD:echo", inputs: {text: "{{section}}"}}
        """,
    )
    with pytest.raises(SpecValidationError, match="a path into a value is not supported here"):
        load_yaml(flow)
