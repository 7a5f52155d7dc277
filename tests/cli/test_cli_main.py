"""The ``nestflow`` command itself: the console script and ``python -m nestflow`` agree."""

from __future__ import annotations

from pathlib import Path

from cli_workspace import Invoke, command, invoker

from nestflow import __version__

COMMANDS = ("cache", "run", "serve", "service", "trace", "validate", "visualize")


def test_help_lists_every_command_under_the_name_nestflow(nestflow: Invoke) -> None:
    done = nestflow("--help")
    assert done.returncode == 0
    assert done.stdout.startswith("Usage: nestflow [OPTIONS] COMMAND [ARGS]...")
    listed = [line.split()[0] for line in done.stdout.split("Commands:\n")[1].splitlines()]
    assert tuple(listed) == COMMANDS


def test_the_script_and_the_module_print_the_same(workspace: Path) -> None:
    script, module = invoker(command("script"), workspace), invoker(command("module"), workspace)
    for args in (["--help"], ["run", "--help"], ["--version"], ["validate", "flow.yaml"]):
        assert script(*args).stdout == module(*args).stdout
    assert script("--version").stdout == f"nestflow, version {__version__}\n"


def test_a_missing_command_or_target_is_a_usage_error(script: Invoke) -> None:
    assert script("nosuchcommand").returncode == 2
    missing = script("run")
    assert missing.returncode == 2
    assert "Missing argument 'TARGET'" in missing.stderr
