"""Workflows that refer to themselves: ``recursive: true`` and the depth guard (A11.9)."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from nestflow import DiskCache, RecursionDepthError
from nestflow.errors import CircularDependencyError, SpecValidationError
from nestflow.spec.loader import load_yaml

MODULE = """
CALLS = []

def children(node: dict) -> list:
    return node.get("children", [])

def add(value: int, below: list) -> int:
    CALLS.append(value)
    return value + sum(below)
"""

TREE = """
version: 1
workflow:
  name: tree
  inputs: {node: {type: object}}
  config: {max_depth: 3}
  steps:
    - {name: kids, type: function, function: "MOD:children"}
    - name: sub
      type: for_each
      over: "{{steps.kids.result}}"
      as: node
      pipeline_file: ./tree.yaml
      recursive: true
      outputs: [{path: total, as: below}]
    - name: total
      type: function
      function: "MOD:add"
      inputs: {value: "{{inputs.node.value}}", below: "{{steps.sub.below}}"}
"""


@pytest.fixture
def folder(tmp_path: Path, step_module: Callable[[str, str], str]) -> Path:
    step_module("treesteps", MODULE)
    return tmp_path


def write(folder: Path, file: str, text: str) -> Path:
    path = folder / file
    module = f"treesteps_{folder.name.replace('-', '_')}"
    path.write_text(textwrap.dedent(text).lstrip().replace("MOD", module))
    return path


def chain(depth: int) -> dict[str, Any]:
    """A tree that is one path of ``depth`` levels below its root (values 1, 2, ...)."""
    node: dict[str, Any] = {"value": depth + 1}
    for value in range(depth, 0, -1):
        node = {"value": value, "children": [node]}
    return node


def test_a11_9_a_tree_of_depth_three_runs_and_depth_four_fails(folder: Path) -> None:
    flow = load_yaml(write(folder, "tree.yaml", TREE))
    tree = {"value": 1, "children": [{"value": 2, "children": [{"value": 3}]}, {"value": 10}]}
    assert flow.run(node=tree)["total"] == 1 + 2 + 3 + 10
    assert flow.run(node=chain(3))["total"] == 1 + 2 + 3 + 4
    with pytest.raises(RecursionDepthError) as caught:
        flow.run(node=chain(4))
    message = str(caught.value)
    assert "max_depth 3" in message
    assert "tree -> tree -> tree -> tree -> tree" in message
    assert "5. tree  (depth 4)  <- over the limit" in message


def test_without_recursive_the_same_file_is_a_cycle(folder: Path) -> None:
    path = write(folder, "tree.yaml", TREE.replace("      recursive: true\n", ""))
    with pytest.raises(CircularDependencyError, match="tree -> tree"):
        load_yaml(path)


def test_a_recursive_step_must_list_its_outputs(folder: Path) -> None:
    text = TREE.replace("      outputs: [{path: total, as: below}]\n", "")
    with pytest.raises(SpecValidationError, match="lists the outputs it publishes"):
        load_yaml(write(folder, "tree.yaml", text))


def test_the_depth_defaults_to_the_project_limit(folder: Path) -> None:
    path = write(folder, "tree.yaml", TREE.replace("  config: {max_depth: 3}\n", ""))
    flow = load_yaml(path)
    assert flow.run(node=chain(10))["total"] == sum(range(1, 12))
    with pytest.raises(RecursionDepthError, match="max_depth 10"):
        flow.run(node=chain(11))
    (folder / "nestflow.toml").write_text("max_depth = 2\n")
    with pytest.raises(RecursionDepthError, match="max_depth 2"):
        load_yaml(path).run(node=chain(3))


def test_two_workflows_calling_each_other_recursively(folder: Path) -> None:
    write(
        folder,
        "odd.yaml",
        TREE.replace("name: tree", "name: odd").replace("./tree.yaml", "./even.yaml"),
    )
    even = write(
        folder,
        "even.yaml",
        TREE.replace("name: tree", "name: even").replace("./tree.yaml", "./odd.yaml"),
    )
    flow = load_yaml(even)
    assert flow.run(node=chain(3))["total"] == 1 + 2 + 3 + 4
    with pytest.raises(RecursionDepthError, match="even -> odd -> even -> odd -> even"):
        flow.run(node=chain(4))


def test_a_recursive_workflow_caches_each_subtree(folder: Path, tmp_path: Path) -> None:
    flow = load_yaml(write(folder, "tree.yaml", TREE)).with_cache(DiskCache(tmp_path / "c"))
    calls = sys.modules[f"treesteps_{folder.name.replace('-', '_')}"].CALLS
    tree = {"value": 1, "children": [{"value": 2, "children": [{"value": 3}]}, {"value": 10}]}
    flow.run(node=tree)
    calls.clear()
    tree["children"].append({"value": 20})
    assert flow.run(node=tree)["total"] == 1 + 2 + 3 + 10 + 20
    assert calls == [20, 1]  # the new leaf and the root; the unchanged subtrees hit
