"""``nestflow run TARGET``: run a pipeline once and print its outputs as JSON.

Exit codes: 0 when the run succeeds, also ``partial`` (failures the run continued past are
summed up on stderr); 1 when the run fails (the failure report goes to stderr); 2 for usage
and validation problems, found before anything runs. Every run's report is saved by a
``RunRecorder`` for ``nestflow trace``.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from nestflow.callbacks.recorder import DEFAULT_DIRECTORY, RunRecorder
from nestflow.cli.inputs import gather
from nestflow.cli.output import shown, to_json
from nestflow.cli.problems import InvalidCall, RunFailed
from nestflow.cli.targets import load_target
from nestflow.errors import MissingInputError, NestflowError
from nestflow.runtime.failure import format_error
from nestflow.runtime.report import capture

if TYPE_CHECKING:
    from nestflow.callbacks.events import PipelineCallback
    from nestflow.core.pipeline import Pipeline
    from nestflow.runtime.report import RunReport


@click.command("run")
@click.argument("target")
@click.option(
    "--input", "-i", "pairs", multiple=True, metavar="NAME=VALUE",
    help="An input; VALUE is read as JSON when valid (n=3), else as text (name=abc). Repeatable.",
)  # fmt: skip
@click.option(
    "--inputs-json", metavar="JSON|@FILE",
    help="Inputs as one JSON object, or @FILE to read it from a file; --input values win.",
)  # fmt: skip
@click.option(
    "--output", "-o", "outputs", multiple=True, metavar="NAME",
    help="Compute and print only this output (once: its bare value). Repeatable.",
)  # fmt: skip
@click.option("--no-cache", is_flag=True, help="Run without the pipeline's cache.")
@click.option("--no-progress", is_flag=True, help="Do not show progress bars.")
@click.option(
    "--json", "as_json", is_flag=True,
    help='Print one JSON document: {"status", "outputs", "run_id"}.',
)  # fmt: skip
def run_command(
    target: str,
    pairs: Sequence[str],
    inputs_json: str | None,
    outputs: Sequence[str],
    no_cache: bool,
    no_progress: bool,
    as_json: bool,
) -> None:
    """Run TARGET (a YAML file, or module:attribute naming a Pipeline) once."""
    loaded = load_target(target)
    values = gather(pairs, inputs_json, loaded.pipeline.input_types)
    progress = not (no_progress or as_json) and sys.stdout.isatty()
    pipeline = prepared(loaded.pipeline, no_cache=no_cache, progress=progress)
    result, report, failure = execute(pipeline, values, list(dict.fromkeys(outputs)))
    if failure is not None:
        if as_json:  # machines get their document; people read the report on stderr
            click.echo(to_json({"status": "failed", "outputs": None, "run_id": report.run_id}))
        raise RunFailed(failure_text(failure, report))
    if report.status == "partial":
        click.echo(partial_summary(report), err=True)
    selected = result[outputs[0]] if len(outputs) == 1 else result
    if as_json:
        document = {"status": report.status, "outputs": selected, "run_id": report.run_id}
        click.echo(to_json(document))
    else:
        click.echo(shown(selected))


def prepared(pipeline: Pipeline, *, no_cache: bool, progress: bool) -> Pipeline:
    """``pipeline`` with the recorder (and progress bars) added to its own callbacks."""
    if no_cache:
        pipeline = pipeline.with_cache(None)
    own = pipeline.callbacks
    callbacks: list[PipelineCallback] = list(own) if isinstance(own, tuple) else []
    callbacks.append(RunRecorder(DEFAULT_DIRECTORY))
    if progress:
        callbacks += progress_bars()
    return pipeline.with_callbacks(callbacks)


def progress_bars() -> list[PipelineCallback]:
    """A ``ProgressCallback`` drawing on stderr; none when rich is not installed."""
    try:
        import rich.console

        from nestflow.callbacks.progress import ProgressCallback
    except ImportError:  # the `progress` extra is optional: outputs are printed all the same
        return []
    return [ProgressCallback(console=rich.console.Console(stderr=True))]


def execute(
    pipeline: Pipeline, values: dict[str, Any], outputs: list[str]
) -> tuple[dict[str, Any], RunReport, Exception | None]:
    """Run once: the outputs, the report and the failure if the run failed; exit 2 when
    the run is refused before it starts (inputs, outputs)."""
    options: dict[str, Any] = {"output_name": outputs} if outputs else {}
    with capture() as runs:
        try:
            result = pipeline.run(values, **options)
        except Exception as exc:
            if runs.reports:  # it ran, and failed
                return {}, runs.last, exc
            if isinstance(exc, NestflowError):
                raise InvalidCall(str(exc), _hints(exc)) from None
            raise
    return dict(result), runs.last, None


def _hints(exc: NestflowError) -> list[str]:
    if isinstance(exc, MissingInputError) and exc.missing:
        given = " ".join(f"--input {name}=..." for name in exc.missing)
        return [f"Give them on the command line: {given}"]
    return []


def failure_text(exc: BaseException, report: RunReport) -> str:
    """The failure report, and where the run's report was saved."""
    saved = Path(DEFAULT_DIRECTORY, f"{report.run_id}.json")
    if not saved.is_file():  # the recorder could not write it (it warned)
        return format_error(exc)
    return f"{format_error(exc)}\nRun report saved to {saved}; show it with: nestflow trace --last"


def partial_summary(report: RunReport) -> str:
    """One line per failure the run continued past."""
    count = len(report.errors)
    lines = [f"Run partial: {count} failure{'s' if count != 1 else ''} continued past."]
    for error in report.errors:
        item = f" [item {' > '.join(map(str, error.item_path))}]" if error.item_path else ""
        lines.append(f"  {error.node_path}{item}: {error.exception_type}: {error.message}")
    return "\n".join(lines)
