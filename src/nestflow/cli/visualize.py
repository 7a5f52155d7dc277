"""``nestflow visualize TARGET``: the pipeline as a Graphviz picture, DOT text or text lines."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from nestflow.cli.problems import InvalidCall, RunFailed
from nestflow.cli.targets import load_target
from nestflow.errors import NestflowWarning

if TYPE_CHECKING:
    from nestflow.core.pipeline import Pipeline

ORIENTS = ("TB", "LR", "BT", "RL")


def _depth(context: click.Context, parameter: click.Parameter, text: str) -> int | None:
    if text == "all":
        return None
    if not text.isdigit() or int(text) < 1:
        raise click.BadParameter(f"expected a level of at least 1, or `all`; got {text!r}.")
    return int(text)


@click.command("visualize")
@click.argument("target")
@click.option(
    "--depth", default="1", show_default=True, metavar="N|all",
    callback=_depth,
    help="Nesting depth to expand: 1 draws nested pipelines as single nodes; all expands all.",
)  # fmt: skip
@click.option(
    "--orient", type=click.Choice(ORIENTS, case_sensitive=False), default="TB",
    show_default=True, help="Direction of the graph.",
)  # fmt: skip
@click.option(
    "--output", "-o", "filename", type=click.Path(dir_okay=False), metavar="FILE",
    help="Write to FILE, its format chosen by its suffix (.svg .png .pdf .dot).",
)  # fmt: skip
@click.option("--text", is_flag=True, help="One text line per node instead of a graph.")
def visualize_command(
    target: str, depth: int | None, orient: str, filename: str | None, text: bool
) -> None:
    """Draw TARGET (a YAML file, or module:attribute naming a Pipeline).

    Without --output, prints the graph as DOT text (or with --text, the text lines).
    Drawing needs the `viz` extra; .svg, .png and .pdf files need Graphviz's `dot` too.
    """
    pipeline = load_target(target).pipeline
    if text:
        drawn = pipeline.to_text(depth=depth)
        if filename is None:
            click.echo(drawn)
        else:
            Path(filename).write_text(drawn + "\n", encoding="utf-8")
        return
    graph = _draw(pipeline, depth, orient.upper(), filename)
    if filename is None:
        click.echo(graph.source, nl=False)


def _draw(pipeline: Pipeline, depth: int | None, orient: str, filename: str | None) -> Any:
    """``pipeline.visualize``, its problems made into exit codes: 2 for a file suffix no
    format has, 1 for what is missing here (the graphviz package, the ``dot`` program)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", NestflowWarning)
        try:
            graph = pipeline.visualize(depth=depth, orient=orient, filename=filename)
        except ImportError as exc:
            raise RunFailed(f"Error: {exc}") from None
        except ValueError as exc:
            raise InvalidCall(str(exc)) from None
        except Exception as exc:  # graphviz's own errors: `dot` failed or is missing
            raise RunFailed(f"Error: cannot draw {filename}: {type(exc).__name__}: {exc}") from None
    missing = [str(w.message) for w in caught if issubclass(w.category, NestflowWarning)]
    if missing:  # no `dot` program: only the DOT source was written, next to FILE
        raise RunFailed("Error: " + " ".join(missing))
    return graph
