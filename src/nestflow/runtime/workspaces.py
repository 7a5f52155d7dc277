"""The directory a nested pipeline works in (``Workspace``), and ``nestflow.workspace()``."""

from __future__ import annotations

import contextvars
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from nestflow.core.workspaces import Workspace
    from nestflow.runtime.context import Level

_current: contextvars.ContextVar[Path | None] = contextvars.ContextVar(
    "nestflow_workspace", default=None
)


def workspace() -> Path:
    """The directory of the nested pipeline this code runs in (``as_node(workspace=...)``).

    Raises ``LookupError`` outside one. Code in worker processes (``parallel`` nodes, dask)
    has none: the directory is named in the coordinating process only.
    """
    found = _current.get()
    if found is None:
        raise LookupError(
            "nestflow.workspace() is read inside a nested pipeline that has a workspace: give "
            'it one with inner.as_node(workspace="./scratch/${step.name}") or, in a workflow '
            "file, config: {workspace_dir: ...} on the pipeline step. (Nodes running in worker "
            "processes cannot read it.)"
        )
    return found


class Opened:
    """A workspace made for one run of a nested pipeline."""

    __slots__ = ("path", "spec", "token")

    def __init__(self, spec: Workspace, level: Level, step_id: str) -> None:
        self.spec = spec
        path = Path(spec.resolved(step_id, level.run.run_id))
        self.path = path if path.is_absolute() else Path.cwd() / path
        self.path.mkdir(parents=True, exist_ok=True)
        self.token = _current.set(self.path)

    def close(self, failed: bool) -> None:
        """Leave it; removed as the cleanup flags say."""
        _current.reset(self.token)
        if self.spec.cleanup_on_error if failed else self.spec.cleanup_on_success:
            shutil.rmtree(self.path, ignore_errors=True)
