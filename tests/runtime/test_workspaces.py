"""Workspaces: a directory per nested pipeline run, read with ``nestflow.workspace()``."""

from __future__ import annotations

import os
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import nestflow
from nestflow import LocalBackend, Pipeline, Workspace, node
from nestflow.errors import InvalidOptionError
from nestflow.spec.loader import load_yaml


@node(output_name="where")
def where(tag: str) -> str:
    folder = nestflow.workspace()
    (folder / f"{tag}.txt").write_text(tag)
    assert os.getcwd() != str(folder)
    return str(folder)


@node(output_name="done")
def fails_after_writing(where: str) -> str:
    raise RuntimeError(f"failed after writing in {where}")


MODES = [
    LocalBackend(),
    LocalBackend(node_execution="threaded"),
    LocalBackend(node_execution="async"),
]


@pytest.mark.parametrize("backend", MODES, ids=["sequential", "threaded", "async"])
def test_each_nested_pipeline_sees_its_own_directory_removed_after_success(
    tmp_path: Path, backend: LocalBackend
) -> None:
    inner = Pipeline([where], name="inner")
    outer = Pipeline(
        [
            inner.as_node(
                name="a",
                output_mapping={"where": "a"},
                workspace=str(tmp_path / "w" / "${step.name}"),
            ),
            inner.as_node(
                name="b",
                output_mapping={"where": "b"},
                workspace=str(tmp_path / "w" / "${step.name}"),
            ),
        ],
        name="outer",
        backend=backend,
    )
    cwd = os.getcwd()
    out = outer.run(tag="x")
    assert os.getcwd() == cwd
    assert out["a"] == str(tmp_path / "w" / "a")
    assert out["b"] == str(tmp_path / "w" / "b")
    assert not (tmp_path / "w" / "a").exists()
    assert not (tmp_path / "w" / "b").exists()


def test_a_failed_run_keeps_its_workspace_and_the_flags_decide(tmp_path: Path) -> None:
    inner = Pipeline([where, fails_after_writing], name="inner")
    kept = Pipeline([inner.as_node(workspace=str(tmp_path / "${step.name}-${run_id}"))])
    with pytest.raises(RuntimeError, match="failed after writing") as caught:
        kept.run(tag="t")
    (left,) = tmp_path.iterdir()
    assert left.name.startswith("inner-")
    assert (left / "t.txt").read_text() == "t"
    assert str(left) in str(caught.value)

    removed = Pipeline(
        [inner.as_node(workspace=Workspace(str(tmp_path / "gone"), cleanup_on_error=True))]
    )
    with pytest.raises(RuntimeError):
        removed.run(tag="t")
    assert not (tmp_path / "gone").exists()

    quiet = Pipeline(
        [
            Pipeline([where], name="inner").as_node(
                workspace=Workspace(str(tmp_path / "kept"), cleanup_on_success=False)
            )
        ]
    )
    quiet.run(tag="k")
    assert (tmp_path / "kept" / "k.txt").read_text() == "k"


def test_reading_the_workspace_outside_one_says_how_to_get_one() -> None:
    with pytest.raises(LookupError, match="as_node\\(workspace="):
        nestflow.workspace()
    with pytest.raises(LookupError):
        Pipeline([where]).run(tag="x")


@pytest.mark.parametrize(
    "bad", ["", "./w/${step.id}", 3], ids=["empty", "unknown-field", "not-a-path"]
)
def test_a_bad_workspace_says_what_was_expected(bad: Any) -> None:
    with pytest.raises(InvalidOptionError):
        Pipeline([where], name="inner").as_node(workspace=bad)


MODULE = """
import os
import nestflow

def where(tag: str) -> str:
    folder = nestflow.workspace()
    (folder / "out.txt").write_text(tag)
    return str(folder)

def fail(tag: str) -> str:
    raise RuntimeError("fails in " + str(nestflow.workspace()))
"""


@pytest.fixture
def folder(tmp_path: Path) -> Iterator[Path]:
    name = f"wssteps_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{name}.py").write_text(MODULE)
    sys.path.insert(0, str(tmp_path))
    try:
        yield tmp_path
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop(name, None)


def test_a11_12_two_pipeline_steps_with_workspace_dirs(folder: Path) -> None:
    module = f"wssteps_{folder.name.replace('-', '_')}"
    (folder / "inner.yaml").write_text(
        textwrap.dedent(
            f"""
            version: 1
            workflow:
              name: inner
              inputs: {{tag: {{type: string}}}}
              steps:
                - {{name: where, type: function, function: "{module}:where"}}
            """
        ).lstrip()
    )
    flow = folder / "flow.yaml"
    flow.write_text(
        textwrap.dedent(
            """
            version: 1
            workflow:
              name: flow
              inputs: {tag: {type: string}}
              steps:
                - name: first
                  type: pipeline
                  pipeline_file: ./inner.yaml
                  outputs: [{path: where, as: first_dir}]
                  config: {workspace_dir: "./nested/${step.name}"}
                - name: second
                  type: pipeline
                  pipeline_file: ./inner.yaml
                  outputs: [{path: where, as: second_dir}]
                  config: {workspace_dir: "./nested/${step.name}"}
            """
        ).lstrip()
    )
    cwd = os.getcwd()
    out = load_yaml(flow).run(tag="x")
    assert os.getcwd() == cwd
    root = folder / ".nestflow" / "workspaces" / "nested"
    assert out["first_dir"] == str(root / "first")
    assert out["second_dir"] == str(root / "second")
    assert not (root / "first").exists()
    assert not (root / "second").exists()

    (folder / "failing_inner.yaml").write_text(
        (folder / "inner.yaml").read_text().replace(":where", ":fail")
    )
    failing = folder / "failing.yaml"
    failing.write_text(
        flow.read_text()
        .replace("name: flow", "name: failing")
        .replace(
            "pipeline_file: ./inner.yaml\n      outputs: [{path: where, as: second_dir}]",
            "pipeline_file: ./failing_inner.yaml",
        )
    )
    with pytest.raises(RuntimeError, match="fails in"):
        load_yaml(failing).run(tag="x")
    assert (root / "second").is_dir()
    assert not (root / "first").exists()
