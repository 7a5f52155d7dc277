"""A working directory with real workflow files and a real module of functions, and the
``nestflow`` command run in it: the installed console script or ``python -m nestflow``."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

SCRIPT = Path(sys.executable).with_name("nestflow")

FUNCTIONS = """
from nestflow import DiskCache, Pipeline, node


def describe(n, name):
    return {"n": n, "n_type": type(n).__name__, "name": name, "name_type": type(name).__name__}


def twice(n):
    return 2 * n


def greet(name):
    return f"hello {name}"


def explode(n):
    raise ValueError(f"cannot handle n={n}")


def as_set(n):
    return {n}


@node(output_name="doubled")
def double(x):
    return 2 * x


@node(output_name="y")
def fragile(x):
    if x == 2:
        raise ValueError("two is bad")
    return 10 * x


doubling = Pipeline([double], name="doubling")
inner = Pipeline([fragile], name="inner")
partial = Pipeline([inner.as_node(name="each", map_over="x", on_error="continue")], name="partial")
cached = Pipeline([double], name="cached", cache=DiskCache("cache"))
number = 3
"""

FILES = {
    "flowfuncs.py": FUNCTIONS,
    "flow.yaml": """
        version: 1
        workflow:
          name: flow
          inputs:
            n: {type: integer}
            name: {type: string}
          steps:
            - name: described
              type: function
              function: "flowfuncs:describe"
            - name: doubled
              type: function
              function: "flowfuncs:twice"
            - name: greeting
              type: function
              function: "flowfuncs:greet"
        """,
    "failing.yaml": """
        version: 1
        workflow:
          name: outer
          inputs:
            n: {type: integer}
          steps:
            - name: stage
              type: pipeline
              pipeline_file: inner.yaml
        """,
    "inner.yaml": """
        version: 1
        workflow:
          name: inner
          inputs:
            n: {type: integer}
          steps:
            - name: explode
              type: function
              function: "flowfuncs:explode"
        """,
    "sets.yaml": """
        version: 1
        workflow:
          name: sets
          inputs:
            n: {type: integer}
          steps:
            - name: numbers
              type: function
              function: "flowfuncs:as_set"
        """,
    "bad.yaml": """
        version: 1
        workflow:
          name: bad
          inputs:
            n: {type: integer}
          steps:
            - name: first
              type: function
              function: "nosuchmodule:f"
            - name: second
              type: function
              function: "flowfuncs:nosuch"
            - name: third
              type: function
              function: "flowfuncs:twice"
              inputs: {n: "{{inputs.missing}}"}
        """,
}


def write_workspace(folder: Path) -> Path:
    """``folder`` with the workflow files and ``flowfuncs.py`` in it."""
    for name, text in FILES.items():
        (folder / name).write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return folder


Invoke = Callable[..., subprocess.CompletedProcess[str]]


def command(how: str) -> list[str]:
    """How the command is started: ``script`` (the console script) or ``module``."""
    if how == "script":
        return [str(SCRIPT)]
    return [sys.executable, "-m", "nestflow"]


def without(module: str) -> list[str]:
    """The command started in a Python where ``module`` (an extra) cannot be imported."""
    code = f"import sys; sys.modules[{module!r}] = None\nfrom nestflow.cli import main\nmain()"
    return [sys.executable, "-c", code]


def _environment() -> dict[str, str]:
    # The module of the working directory must come from there, not from a PYTHONPATH.
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "NESTFLOW_PROFILE")}


def invoker(start: list[str], folder: Path) -> Invoke:
    """``invoke(*args)``: the command started by ``start``, run in ``folder``."""

    def invoke(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*start, *args],
            cwd=folder,
            capture_output=True,
            text=True,
            env=_environment(),
            timeout=60,
        )

    return invoke


def on_a_terminal(command: list[str], folder: Path) -> tuple[int, str, str]:
    """Run ``command`` with stdout on a pseudo-terminal: (exit code, stdout, stderr)."""
    leader, follower = pty.openpty()
    try:
        done = subprocess.run(
            command, cwd=folder, stdout=follower, stderr=subprocess.PIPE, text=True,
            env=_environment(), timeout=60,
        )  # fmt: skip
    finally:
        os.close(follower)
    shown = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # every byte was read and the terminal is closed
            break
        if not chunk:
            break
        shown += chunk
    os.close(leader)
    return done.returncode, shown.decode().replace("\r\n", "\n"), done.stderr
