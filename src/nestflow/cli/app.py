"""The ``nestflow`` command: one click group, one module per command."""

from __future__ import annotations

import click

from nestflow.cli.cache import cache_group
from nestflow.cli.run import run_command
from nestflow.cli.serve import serve_command
from nestflow.cli.service import service_group
from nestflow.cli.trace import trace_command
from nestflow.cli.validate import validate_command
from nestflow.cli.visualize import visualize_command
from nestflow.version import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="nestflow")
def main() -> None:
    """Run, check, draw and trace nestflow pipelines; manage their caches.

    TARGET is a YAML workflow file, or module:attribute naming a Pipeline (modules are
    imported with the current directory first on the path).

    Exit codes: 0 success, 1 a failed run, 2 a usage or validation problem.
    """


main.add_command(run_command)
main.add_command(validate_command)
main.add_command(visualize_command)
main.add_command(trace_command)
main.add_command(cache_group)
main.add_command(serve_command)
main.add_command(service_group)
