"""What a command's TARGET names: a YAML workflow file, or ``module:attribute`` of a Pipeline.

Modules are imported from ``sys.path`` with the current directory first, for the console
script as for ``python -m nestflow``: a target or a workflow's function step may name a
module of the folder the command runs in.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

from nestflow.cli.problems import InvalidCall
from nestflow.core.gates import is_private
from nestflow.core.nesting import PipelineNode
from nestflow.core.pipeline import Pipeline
from nestflow.errors import SpecError, SpecValidationError
from nestflow.service.sources import SourceError, is_yaml, load_pipeline


@dataclass(frozen=True)
class Target:
    """A loaded target: the pipeline, and what its files say beyond it."""

    pipeline: Pipeline
    files: tuple[Path, ...] = ()
    """The YAML files involved: the root file and every file it reaches (none for a module)."""


def load_target(text: str) -> Target:
    """The target ``text`` names; ``InvalidCall`` (exit 2) when it cannot be loaded."""
    put_current_directory_first()
    if is_yaml(text):
        return _from_yaml(Path(text))
    try:
        return Target(load_pipeline(text))  # a `module:attribute` reference
    except SourceError as exc:
        raise InvalidCall(str(exc)) from None


def put_current_directory_first() -> None:
    """Make modules of the current directory importable, ahead of installed ones."""
    here = os.getcwd()
    if not sys.path or sys.path[0] not in ("", here):
        sys.path.insert(0, here)


def shape(pipeline: Pipeline, depth: int = 0) -> tuple[int, int]:
    """(function nodes across all levels, deepest nesting level; the root is level 0)."""
    steps, deepest = 0, depth
    for node_id, member in zip(pipeline.node_ids, pipeline.nodes, strict=True):
        if is_private(node_id):  # a front end's own wiring, not a step of the user's
            continue
        if isinstance(member, PipelineNode):
            inner, reached = shape(member.pipeline, depth + 1)
            steps, deepest = steps + inner, max(deepest, reached)
        else:
            steps += 1
    return steps, deepest


# --- YAML --------------------------------------------------------------------------------------


def _from_yaml(path: Path) -> Target:
    from nestflow.spec.loader import load_with_files

    try:
        pipeline, files = load_with_files(path)
    except SpecValidationError as exc:
        lines = [
            f"{_shown(file)}:{line}:{column}: {text}" for file, line, column, text in exc.problems
        ]
        raise InvalidCall(exc.message, lines) from None
    except SpecError as exc:
        raise InvalidCall(f"{path}: {exc}") from None
    return Target(pipeline, files)


def _shown(file: str) -> str:
    """``file`` relative to the current directory when it is inside it, as the user wrote it."""
    path = Path(file)
    here = Path.cwd()
    return str(path.relative_to(here)) if path.is_absolute() and path.is_relative_to(here) else file
