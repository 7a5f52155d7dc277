"""Guards set from workflow files: max_total_steps, max_depth, memory (SPEC 11.6, 11.7)."""

from __future__ import annotations

import sys
import textwrap
import warnings
from collections.abc import Callable
from pathlib import Path

import pytest

import nestflow.guards
from nestflow import Limits, RecursionDepthError
from nestflow.errors import MemoryLimitError, MemoryWarning, StepLimitError
from nestflow.spec.loader import load_yaml

MODULE = """
CALLS = []

def square(n: int) -> int:
    CALLS.append(n)
    return n * n
"""


@pytest.fixture
def folder(tmp_path: Path, step_module: Callable[[str, str], str]) -> Path:
    step_module("guardsteps", MODULE)
    return tmp_path


def write(folder: Path, file: str, text: str) -> Path:
    module = f"guardsteps_{folder.name.replace('-', '_')}"
    path = folder / file
    path.write_text(textwrap.dedent(text).lstrip().replace("MOD", module))
    return path


def calls(folder: Path) -> list[int]:
    found: list[int] = sys.modules[f"guardsteps_{folder.name.replace('-', '_')}"].CALLS
    return found


FOR_EACH = """
version: 1
workflow:
  name: squares
  inputs: {ns: {type: array}}
  config: {max_total_steps: 5}
  steps:
    - name: each
      type: for_each
      over: "{{inputs.ns}}"
      as: n
      step: {type: function, function: "MOD:square", inputs: {n: "{{n}}"}}
"""


def test_a11_10_max_total_steps_stops_a_for_each_before_the_sixth_execution(
    folder: Path,
) -> None:
    flow = load_yaml(write(folder, "squares.yaml", FOR_EACH))
    with pytest.raises(StepLimitError, match="limit of 5 node executions") as caught:
        flow.run(ns=list(range(10)))
    assert "would be execution 6" in str(caught.value)
    assert calls(folder) == [0, 1, 2, 3, 4]


def test_a_workflow_starts_from_the_project_limits_and_its_own_config_wins(
    folder: Path,
) -> None:
    (folder / "nestflow.toml").write_text("max_total_steps = 3\nmax_depth = 4\n")
    own = load_yaml(write(folder, "squares.yaml", FOR_EACH))
    assert own.config["limits"].max_total_steps == 5
    assert own.config["limits"].max_depth == 4
    plain = load_yaml(
        write(folder, "plain.yaml", FOR_EACH.replace("  config: {max_total_steps: 5}\n", ""))
    )
    assert plain.config["limits"].max_total_steps == 3
    with pytest.raises(StepLimitError, match="limit of 3"):
        plain.run(ns=[1, 2, 3, 4])


def test_without_a_project_a_workflow_has_the_default_limits(folder: Path) -> None:
    flow = load_yaml(
        write(folder, "plain.yaml", FOR_EACH.replace("  config: {max_total_steps: 5}\n", ""))
    )
    assert flow.config["limits"] == Limits(
        max_total_steps=1000, max_depth=10, memory_limit_mb=None, memory_warning_mb=None
    )


def test_max_depth_on_a_pipeline_step_limits_the_levels_below_it(folder: Path) -> None:
    write(
        folder,
        "leaf.yaml",
        """
        version: 1
        workflow:
          name: leaf
          inputs: {n: {type: integer}}
          steps:
            - {name: sq, type: function, function: "MOD:square"}
        """,
    )
    write(
        folder,
        "middle.yaml",
        """
        version: 1
        workflow:
          name: middle
          inputs: {n: {type: integer}}
          steps:
            - {name: down, type: pipeline, pipeline_file: ./leaf.yaml}
        """,
    )
    root = write(
        folder,
        "root.yaml",
        """
        version: 1
        workflow:
          name: root
          inputs: {n: {type: integer}}
          steps:
            - name: mid
              type: pipeline
              pipeline_file: ./middle.yaml
              config: {max_depth: 1}
        """,
    )
    with pytest.raises(RecursionDepthError) as caught:
        load_yaml(root).run(n=3)
    assert "root -> middle -> leaf" in str(caught.value)
    root.write_text(root.read_text().replace("max_depth: 1", "max_depth: 2"))
    assert load_yaml(root).run(n=3)["sq"] == 9


def test_a11_11_memory_limit_from_the_workflow_with_an_injected_probe(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    readings = iter([100, 760, 770, 780, 1001])
    last = [1001]
    monkeypatch.setattr(nestflow.guards, "memory_probe", lambda: next(readings, last[0]) * 2**20)
    flow = load_yaml(
        write(
            folder, "mem.yaml", FOR_EACH.replace("{max_total_steps: 5}", "{memory_limit_mb: 1000}")
        )
    )
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        with pytest.raises(MemoryLimitError, match="memory limit of 1000 MiB"):
            flow.run(ns=list(range(10)))
    warned = [w for w in seen if issubclass(w.category, MemoryWarning)]
    assert len(warned) == 1
    assert "76 %" in str(warned[0].message)
    assert calls(folder) == [0, 1]
