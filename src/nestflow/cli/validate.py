"""``nestflow validate TARGET``: load without running, and say what was loaded."""

from __future__ import annotations

import click

from nestflow.cli.targets import load_target, shape


@click.command("validate")
@click.argument("target")
def validate_command(target: str) -> None:
    """Load TARGET without running it: exit 0 and a summary, or 2 and every problem.

    The summary counts function steps across all nesting levels, the deepest level
    (the root is 0) and the YAML files involved (0 for a module:attribute target).
    """
    loaded = load_target(target)
    steps, depth = shape(loaded.pipeline)
    files = len(loaded.files)
    click.echo(
        f"ok: {loaded.pipeline.name}: {steps} step{'s' if steps != 1 else ''}, depth {depth}, "
        f"{files} file{'s' if files != 1 else ''}"
    )
