"""``nestflow validate``: a one-line summary, or every load problem with file:line:column."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

from cli_workspace import Invoke
from click.testing import Result


def test_a11_14_validate_of_a_bad_file_exits_2_with_every_problem(nestflow: Invoke) -> None:
    done = nestflow("validate", "bad.yaml")
    assert done.returncode == 2
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert lines[0] == "Error: The workflow cannot be loaded: 3 problems."
    located = [line.split(": ", 1)[0] for line in lines[1:]]  # relative, as written
    assert located == ["bad.yaml:9:17", "bad.yaml:12:17", "bad.yaml:16:19"]
    assert "no input `missing`" in lines[3]


def test_validate_summarises_steps_depth_and_files(nestflow: Invoke) -> None:
    flat = nestflow("validate", "flow.yaml")
    assert (flat.returncode, flat.stdout) == (0, "ok: flow: 3 steps, depth 0, 1 file\n")
    nested = nestflow("validate", "failing.yaml")
    assert nested.stdout == "ok: outer: 1 step, depth 1, 2 files\n"


def test_a_module_target_involves_no_files(script: Invoke) -> None:
    assert (
        script("validate", "flowfuncs:doubling").stdout
        == "ok: doubling: 1 step, depth 0, 0 files\n"
    )
    assert (
        script("validate", "flowfuncs:partial").stdout == "ok: partial: 1 step, depth 1, 0 files\n"
    )


def _write(folder: Path, name: str, text: str) -> None:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")


def test_files_reached_by_file_and_by_registry_name_count_once_each(
    cli: Callable[..., Result], workspace: Path
) -> None:
    _write(workspace, "pipelines/shared.yaml", """
        version: 1
        workflow:
          name: shared
          inputs: {n: {type: integer}}
          steps:
            - {name: doubled, type: function, function: "flowfuncs:twice"}
        """)  # fmt: skip
    _write(workspace, "pipelines/middle.yaml", """
        version: 1
        workflow:
          name: middle
          inputs: {n: {type: integer}, name: {type: string}}
          steps:
            - {name: again, type: pipeline, pipeline_file: shared.yaml}
            - {name: greeting, type: function, function: "flowfuncs:greet"}
        """)  # fmt: skip
    _write(workspace, "root.yaml", """
        version: 1
        workflow:
          name: root
          inputs: {n: {type: integer}, name: {type: string}}
          steps:
            - {name: by_file, type: pipeline, pipeline_file: pipelines/shared.yaml}
            - {name: by_name, type: pipeline, pipeline_ref: middle, outputs: [greeting]}
        """)  # fmt: skip
    done = cli("validate", "root.yaml")
    assert done.exit_code == 0, done.stderr
    assert done.stdout == "ok: root: 3 steps, depth 2, 3 files\n"


def test_a_target_that_is_no_pipeline_exits_2(script: Invoke) -> None:
    done = script("validate", "flowfuncs:number")
    assert done.returncode == 2
    assert "`flowfuncs:number` is an object of type int, not a Pipeline" in done.stderr
