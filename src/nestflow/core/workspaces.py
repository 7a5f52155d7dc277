"""Workspace: a directory of its own for a nested pipeline while it runs.

``inner.as_node(workspace=Workspace("./scratch/${step.name}"))`` creates the directory
before the nested pipeline starts and removes it afterwards (``cleanup_on_success``,
default true; ``cleanup_on_error``, default false, so a failure's files stay to be read).
Its nodes read the path with ``nestflow.workspace()``; the process working directory is
never changed. ``${step.name}`` is the nested node's id and ``${run_id}`` the run's id; a
relative path is taken from the working directory when the run starts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nestflow.errors import InvalidOptionError

FIELDS = ("${step.name}", "${run_id}")
"""The fields a workspace path may contain."""


@dataclass(frozen=True, slots=True)
class Workspace:
    """Where a nested pipeline works, and whether its directory is removed afterwards."""

    path: str
    cleanup_on_success: bool = True
    cleanup_on_error: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.path, str) or not self.path.strip():
            raise InvalidOptionError(
                f"Workspace(path=...) expects a directory path as a str, got {self.path!r}; "
                'for example Workspace("./scratch/${step.name}").'
            )
        rest = self.path
        for field in FIELDS:
            rest = rest.replace(field, "")
        if "${" in rest:
            raise InvalidOptionError(
                f"Workspace path `{self.path}` has a field nestflow does not fill; the fields "
                f"are {', '.join(FIELDS)}."
            )

    def resolved(self, step: str, run_id: str) -> str:
        """The path with its fields filled."""
        return self.path.replace("${step.name}", step).replace("${run_id}", run_id)


def workspace_of(node_name: str, value: Any) -> Workspace | None:
    """``workspace=`` of a nested node, as a ``Workspace`` (a str is its path)."""
    if value is None or isinstance(value, Workspace):
        return value
    if isinstance(value, str):
        return Workspace(value)
    raise InvalidOptionError(
        f"workspace= of nested node `{node_name}` expects a path or Workspace(...), got "
        f"{type(value).__name__} {value!r}."
    )
