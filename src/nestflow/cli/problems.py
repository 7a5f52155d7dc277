"""How a command stops: exit 2 for what the user can fix in the call or the files, 1 for a
failed run.

Both print to stderr and leave the exit code to click, so ``python -m nestflow`` and the
console script behave alike, and click's own usage errors (exit 2) fit in.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import IO, Any

import click

USAGE_EXIT = 2
FAILURE_EXIT = 1


class InvalidCall(click.ClickException):
    """A usage or validation problem: bad arguments, a file that does not load, wrong inputs.

    ``lines`` follow the message, one per problem (``file:line:column: message``).
    """

    exit_code = USAGE_EXIT

    def __init__(self, message: str, lines: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.lines = list(lines)

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(f"Error: {self.message}", err=True)
        for line in self.lines:
            click.echo(line, err=True)


class RunFailed(click.ClickException):
    """The run itself failed; ``report`` (the failure report) goes to stderr as it is."""

    exit_code = FAILURE_EXIT

    def __init__(self, report: str) -> None:
        super().__init__(report)

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(self.message, err=True)
