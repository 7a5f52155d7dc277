"""``nestflow trace``: the execution tree and performance summary of a recorded run.

Runs are the reports ``nestflow run`` saves in ``.nestflow/runs`` of the current directory
(any ``RunRecorder`` writes the same files).
"""

from __future__ import annotations

from pathlib import Path

import click

from nestflow.callbacks.recorder import DEFAULT_DIRECTORY
from nestflow.cli.problems import InvalidCall
from nestflow.runtime.report import RunReport


@click.command("trace")
@click.argument("run_id", required=False)
@click.option("--last", is_flag=True, help="The most recent run (the default without RUN_ID).")
@click.option("--items", is_flag=True, help="List map items one by one in the tree.")
@click.option("--json", "as_json", is_flag=True, help="Print the run's report as JSON.")
def trace_command(run_id: str | None, last: bool, items: bool, as_json: bool) -> None:
    """Show a recorded run: RUN_ID (or a unique start of it), or --last."""
    if run_id is not None and last:
        raise click.UsageError("Give RUN_ID or --last, not both.")
    path = find_run(Path(DEFAULT_DIRECTORY), run_id)
    try:
        report = RunReport.load(path)
    except (ValueError, KeyError, TypeError) as exc:
        raise InvalidCall(f"{path} is not a readable run report: {exc}") from None
    if as_json:
        click.echo(report.to_json(indent=2))
        return
    click.echo(report.tree(items=items))
    click.echo()
    click.echo(str(report.summary()))


def find_run(folder: Path, run_id: str | None) -> Path:
    """The report file of ``run_id`` (or of a unique start of it), or of the latest run."""
    runs = sorted(folder.glob("*.json"), key=_age) if folder.is_dir() else []
    if not runs:
        raise InvalidCall(
            f"No recorded runs in {folder}: `nestflow run` records each run there "
            "(run it from this directory first)."
        )
    if run_id is None:
        return runs[-1]
    found = [path for path in runs if path.stem.startswith(run_id)]
    if len(found) == 1:
        return found[0]
    if not found:
        latest = ", ".join(path.stem[:12] for path in reversed(runs[-5:]))
        raise InvalidCall(f"No recorded run `{run_id}` in {folder}; the latest are: {latest}.")
    raise InvalidCall(
        f"`{run_id}` starts {len(found)} run ids in {folder}; give more of it: "
        + ", ".join(path.stem for path in found)
    )


def _age(path: Path) -> tuple[int, str]:
    # A report is written when its run ends: the newest file is the run that ended last.
    return path.stat().st_mtime_ns, path.name
