"""Fixtures: a workspace folder, and the ``nestflow`` command run in it."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cli_workspace import Invoke, command, invoker, write_workspace
from click.testing import CliRunner, Result

from nestflow.cli import main


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """A folder holding the workflow files and ``flowfuncs.py``."""
    return write_workspace(tmp_path)


@pytest.fixture(params=["script", "module"])
def nestflow(request: pytest.FixtureRequest, workspace: Path) -> Invoke:
    """``nestflow(*args)``: the real command run in the workspace, as the console script
    and as ``python -m nestflow``."""
    return invoker(command(request.param), workspace)


@pytest.fixture
def script(workspace: Path) -> Invoke:
    """The console script alone, for tests that do not depend on how it is started."""
    return invoker(command("script"), workspace)


@pytest.fixture
def cli(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Result]]:
    """``cli(*args)``: the command run by click's test runner, in this process, in the
    workspace; modules it imports from there are forgotten afterwards."""
    monkeypatch.chdir(workspace)
    monkeypatch.setattr(sys, "path", [str(workspace), *sys.path])  # for the test's own loads
    importlib.invalidate_caches()
    before = set(sys.modules)
    runner = CliRunner()
    yield lambda *args: runner.invoke(main, list(args), catch_exceptions=False)
    for name in set(sys.modules) - before:
        if str(getattr(sys.modules[name], "__file__", "")).startswith(str(workspace)):
            del sys.modules[name]
