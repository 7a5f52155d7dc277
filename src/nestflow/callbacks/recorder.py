"""RunRecorder: the report of every root run saved as JSON, for ``nestflow trace``.

The report is written when the root pipeline ends. The run closes its report only after that
hook, so the recorder saves a copy whose status and duration it settles itself, from the
same facts the run uses: an error ends it ``failed``, errors it continued past leave it
``partial``.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nestflow.callbacks.events import CallbackContext, PipelineCallback

if TYPE_CHECKING:
    from nestflow.runtime.report import RunReport, Status

DEFAULT_DIRECTORY = ".nestflow/runs"


class RunRecorder(PipelineCallback):
    """Writes ``<directory>/<run_id>.json`` when a root run ends (``RunReport.load`` reads it).

    Parameters
    ----------
    directory
        Where reports go, created when the first one is written; relative paths are taken
        from the current directory at that time.
    """

    def __init__(self, directory: str | os.PathLike[str] = DEFAULT_DIRECTORY) -> None:
        self.directory = Path(directory)

    def on_pipeline_end(
        self, pipeline_id: str, outputs: Mapping[str, Any], duration: float, ctx: CallbackContext
    ) -> None:
        if ctx.depth != 0:  # a nested level: its records are part of the root's report
            return
        self._save(ctx.report, duration, ctx.error)

    def _save(self, report: RunReport, duration: float, error: BaseException | None) -> Path:
        """Write ``report`` as it stands at the end of its root level; returns the file."""
        final = dataclasses.replace(report, status=_status(report, error), duration_s=duration)
        return final.save(self.directory)

    def __repr__(self) -> str:
        return f"RunRecorder({os.fspath(self.directory)!r})"


def _status(report: RunReport, error: BaseException | None) -> Status:
    if error is not None:
        return "failed"
    return "partial" if report.errors else "ok"
