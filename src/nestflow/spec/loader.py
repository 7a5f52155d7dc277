"""``load_yaml``: a workflow file (or its text) loaded, checked and compiled in one call.

Every problem found while loading (syntax, schema, references, imports, files, cycles,
templates) is collected, then raised as one exception: of the specific class when every
problem is of one kind, else ``SpecValidationError``; ``.problems`` lists them all with
file, line and column (SPEC 11.9, 11.11). Nothing runs.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nestflow.core.config import UNSET
from nestflow.errors import (
    CircularDependencyError,
    ImportReferenceError,
    SpecValidationError,
    TemplateError,
)
from nestflow.registry import default_registry
from nestflow.spec.compile import Compiler
from nestflow.spec.project import load_project
from nestflow.spec.source import SourceError, read

if TYPE_CHECKING:
    from nestflow.core.pipeline import Pipeline

_KINDS: dict[str, type[SpecValidationError]] = {
    "template": TemplateError,
    "import": ImportReferenceError,
    "cycle": CircularDependencyError,
}


def load_yaml(source: str | os.PathLike[str], *, registry: Any = None) -> Pipeline:
    """The pipeline a workflow file describes: ``source`` is a path, or the YAML text itself.

    Relative ``pipeline_file`` paths resolve against the file's folder (the current folder
    for text). Raises ``SpecValidationError`` (or a subclass) listing every problem.
    """
    return load_with_files(source, registry=registry)[0]


def load_with_files(
    source: str | os.PathLike[str], *, registry: Any = None
) -> tuple[Pipeline, tuple[Path, ...]]:
    """``load_yaml``, and the workflow files it read (resolved paths, each once)."""
    is_file = isinstance(source, os.PathLike) or (isinstance(source, str) and _is_path(source))
    root = Path(source).resolve().parent if is_file else Path.cwd()
    project = load_project(root)
    if registry is None:
        registry = default_registry(project)
    compiler = Compiler(
        registry, project.pipeline_dirs(root), project.workspace_root, project.max_depth
    )
    pipeline: Pipeline | None
    if is_file:
        path = Path(source)
        if not path.is_file():
            raise SpecValidationError(
                f"No workflow file at `{path}`: pass the path of a YAML file, or the YAML text "
                "itself.",
                [(str(path), 0, 0, "file not found")],
            )
        compiler._chain.append((str(path.resolve()), _origin(path)))
        pipeline = compiler.file(path)
    else:
        try:
            data, marks = read(str(source), "<text>")
        except SourceError as exc:
            compiler.problems.add(exc.where, str(exc))
            data = marks = None
        pipeline = None if marks is None else compiler.document(data, marks, Path.cwd())
    if compiler.problems or pipeline is None:
        raise _error(compiler)
    # The project's limits (or the defaults of SPEC 11.6), under what the root file sets.
    own = pipeline.config["limits"]
    base = project.limits()
    return pipeline.with_limits(base if own is UNSET else own.over(base)), compiler.files_read()


def _is_path(text: str) -> bool:
    return "\n" not in text and text.strip().endswith((".yaml", ".yml"))


def _origin(path: Path) -> Any:
    from nestflow.spec.source import Where

    return Where(str(path), 1, 1)


def _error(compiler: Compiler) -> SpecValidationError:
    found = compiler.problems.found
    kinds = {kind for kind, *_ in found}
    cls = (
        _KINDS.get(next(iter(kinds)), SpecValidationError)
        if len(kinds) == 1
        else SpecValidationError
    )
    problems = [(file, line, column, message) for _, file, line, column, message in found]
    count = len(problems)
    head = f"The workflow cannot be loaded: {count} problem{'s' if count != 1 else ''}."
    if cls is CircularDependencyError:
        return CircularDependencyError(head, chain=[], problems=problems)
    return cls(head, problems)
