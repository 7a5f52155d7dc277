"""Pipelines by name, for ``pipeline_ref``: YAML files in registry directories and registrations.

A ``Registry`` is a value: the directories it searches and the names registered from Python.
``with_registration`` returns a copy, so one loader's registry never changes under another.
Only ``register``, the spec's module-level entry point, changes shared state: it adds to the
registrations that ``default_registry()`` starts from.

Files are found lazily, on the first lookup, and remembered. Before each later lookup the
registry compares the modification times of the directories and files it read, and reads
again only what changed, so a long-lived process sees new files without paying for a full
scan on every ``pipeline_ref``. Each file is read only as far as ``workflow.name``: it is
composed with PyYAML's safe loader but not constructed, so tags such as ``!raw`` cost
nothing and a file's other mistakes are left for the loader to report when it is used.
"""

from __future__ import annotations

import difflib
import os
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final, TypeAlias

import yaml

from nestflow.core.names import RULE, name_problem
from nestflow.core.pipeline import Pipeline
from nestflow.errors import InvalidNameError, InvalidOptionError, SpecValidationError
from nestflow.spec.project import allowed, load_project

if TYPE_CHECKING:
    from nestflow.spec.project import Project

__all__ = ["Registry", "default_registry", "register", "unregister"]

Target: TypeAlias = Pipeline | Path
"""What a name resolves to: a ``Pipeline`` registered from Python, or a YAML file."""

Place = tuple[str, int, int]
"""Where something was written: file, line and column (1-based; 0 when unknown)."""

SUFFIXES: Final = (".yaml", ".yml")
_SHOWN: Final = 20  # names listed in an error before "and N more"


class Registry:
    """The pipelines ``pipeline_ref`` can name.

    ``directories`` are searched recursively for ``*.yaml`` and ``*.yml`` files, each known
    by its ``workflow.name``; hidden directories (``.git``, ``.nestflow``) are skipped, and
    so is a file whose real path leads outside the directories. ``pipelines`` maps names to
    a ``Pipeline`` or the path of a YAML file; a registration wins over a file of the same
    name, so tests can swap in a stand-in.
    """

    __slots__ = ("_registered", "_scan", "directories")

    directories: tuple[Path, ...]

    def __init__(
        self,
        directories: Iterable[Path | str] = (),
        pipelines: Mapping[str, Pipeline | Path | str] | None = None,
    ) -> None:
        self.directories = tuple(dict.fromkeys(Path(d).expanduser().resolve() for d in directories))
        self._registered = {name: _checked(name, t) for name, t in (pipelines or {}).items()}
        self._scan = _Scan(self.directories)

    def with_registration(self, name: str, target: Pipeline | Path | str) -> Registry:
        """A copy that also resolves ``name`` to ``target``; files already read are shared."""
        checked = _checked(name, target)
        copy = object.__new__(Registry)
        copy.directories, copy._scan = self.directories, self._scan
        copy._registered = {**self._registered, name: checked}
        return copy

    def names(self) -> list[str]:
        """Every name this registry knows, sorted; a name two files claim is listed once."""
        return sorted({*self._registered, *self._scan.current().claims})

    def resolve(self, name: str, *, at: Place = ("", 0, 0)) -> Target:
        """The pipeline or YAML file registered as ``name``.

        ``at`` is where the reference was written; it locates the problem of an unknown name.
        Raises ``SpecValidationError`` when no file or registration has the name (listing
        close matches, the directories searched and the files skipped) or when two files
        claim it (naming both).
        """
        if name in self._registered:
            return self._registered[name]
        found = self._scan.current()
        claims = found.claims.get(name, [])
        if len(claims) == 1:
            return claims[0].path
        if claims:
            raise _duplicate(name, claims)
        detail = _unknown(name, self._registered, found)
        raise SpecValidationError(f"Unknown pipeline name `{name}`", [(*at, detail)])

    def __repr__(self) -> str:
        dirs = ", ".join(str(d) for d in self.directories)
        return f"Registry(directories=[{dirs}], registered={sorted(self._registered)})"


# --- the default registry --------------------------------------------------------------------

_lock = threading.Lock()
_registered: dict[str, Target] = {}


def register(name: str, target: Pipeline | Path | str) -> None:
    """Make ``pipeline_ref: name`` resolve to ``target`` in every default registry after this.

    ``target`` is a ``Pipeline`` or the path of a YAML file (relative paths are taken from
    the current directory now). Registering a name again replaces the earlier target, so
    re-running a notebook cell works.
    """
    global _registered
    checked = _checked(name, target)
    with _lock:
        _registered = {**_registered, name: checked}


def unregister(name: str) -> None:
    """Forget a name given to ``register``; an unknown name is ignored."""
    global _registered
    with _lock:
        _registered = {k: v for k, v in _registered.items() if k != name}


def default_registry(project: Project | None = None) -> Registry:
    """The names given to ``register`` so far, plus the project's registry directories.

    Without ``project``, the project of the current directory is used (``load_project``).
    """
    chosen = project if project is not None else load_project(Path.cwd())
    return Registry(chosen.registry_dirs, _registered)


def _checked(name: str, target: Pipeline | Path | str) -> Target:
    if (problem := name_problem(name)) is not None:
        raise InvalidNameError(f"Invalid registry name ({RULE}): {problem}.")
    if isinstance(target, Pipeline):
        return target
    if not isinstance(target, str | os.PathLike):
        raise InvalidOptionError(
            f"`{name}` must be registered to a Pipeline or the path of a YAML file, "
            f"not {type(target).__name__}: {target!r}."
        )
    path = Path(target).expanduser().resolve()
    if path.suffix not in SUFFIXES or not path.is_file():
        detail = (
            "not a YAML file (*.yaml or *.yml) that exists; check the path, which is taken "
            "from the current directory when relative"
        )
        raise SpecValidationError(f"Cannot register `{name}`", [(str(path), 0, 0, detail)])
    return path


# --- reading the directories -----------------------------------------------------------------

Stamp = tuple[int, int] | None


@dataclass(frozen=True, slots=True)
class _Claim:
    """A file declaring ``workflow.name``, and where it does."""

    name: str
    path: Path
    line: int
    column: int


@dataclass(frozen=True, slots=True)
class _Found:
    """What the directories held when last read."""

    claims: dict[str, list[_Claim]]
    skipped: dict[Path, str]  # file -> why it registers no name
    counts: dict[Path, int | None]  # directory -> YAML files in it, None when missing
    stamps: dict[Path, Stamp]  # every directory and file read -> its stamp then


class _Scan:
    """The YAML files under some directories, read once and again when they change."""

    def __init__(self, directories: tuple[Path, ...]) -> None:
        self.directories = directories
        self._lock = threading.Lock()
        self._found: _Found | None = None
        self._files: dict[Path, tuple[Stamp, _Claim | str]] = {}

    def current(self) -> _Found:
        with self._lock:
            if self._found is None or _changed(self._found.stamps):
                self._found = self._read()
            return self._found

    def _read(self) -> _Found:
        found = _Found(claims={}, skipped={}, counts={}, stamps={})
        seen: set[Path] = set()  # nested directories and symlinks reach one file twice
        for directory in self.directories:
            files = _yaml_files(directory, found.stamps)
            found.counts[directory] = None if files is None else len(files)
            for path in files or ():
                if path.resolve() in seen:
                    continue
                seen.add(path.resolve())
                outcome = self._outcome(path, found.stamps[path])
                if isinstance(outcome, str):
                    found.skipped[path] = outcome
                else:
                    found.claims.setdefault(outcome.name, []).append(outcome)
        self._files = {path: self._files[path] for path in found.stamps if path in self._files}
        return found

    def _outcome(self, path: Path, stamp: Stamp) -> _Claim | str:
        cached = self._files.get(path)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        outcome = (
            _claim(path)
            if allowed(path, self.directories)
            else "its real path leads outside the registry directories"
        )
        self._files[path] = (stamp, outcome)
        return outcome


def _stamp(path: Path) -> Stamp:
    try:
        status = path.stat()
    except OSError:
        return None
    return status.st_mtime_ns, status.st_size


def _changed(stamps: Mapping[Path, Stamp]) -> bool:
    return any(_stamp(path) != stamp for path, stamp in stamps.items())


def _yaml_files(directory: Path, stamps: dict[Path, Stamp]) -> list[Path] | None:
    """The YAML files under ``directory`` (None when it is missing); stamps every one read."""
    stamps[directory] = _stamp(directory)
    if not directory.is_dir():
        return None
    files: list[Path] = []
    for folder, subfolders, names in os.walk(directory):
        subfolders[:] = sorted(d for d in subfolders if not d.startswith("."))
        stamps[Path(folder)] = _stamp(Path(folder))
        for name in sorted(n for n in names if n.endswith(SUFFIXES)):
            path = Path(folder, name)
            stamps[path] = _stamp(path)
            files.append(path)
    return files


def _claim(path: Path) -> _Claim | str:
    """The name ``path`` declares, or why it declares none."""
    try:
        root = yaml.compose(path.read_text(encoding="utf-8"), Loader=yaml.SafeLoader)
    except (OSError, UnicodeDecodeError) as exc:
        return f"cannot be read: {exc}"
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f" at line {mark.line + 1}" if mark is not None else ""
        return f"not valid YAML{where}: {exc.problem}"
    except yaml.YAMLError as exc:
        return f"not valid YAML: {exc}"
    node = _child(_child(root, "workflow"), "name")
    if node is None:
        return "it has no workflow.name"
    if not isinstance(node, yaml.ScalarNode) or node.tag != "tag:yaml.org,2002:str":
        return f"its workflow.name (line {node.start_mark.line + 1}) is not a plain string"
    return _Claim(node.value, path, node.start_mark.line + 1, node.start_mark.column + 1)


def _child(node: yaml.Node | None, key: str) -> yaml.Node | None:
    if not isinstance(node, yaml.MappingNode):
        return None
    for key_node, value_node in node.value:
        if isinstance(key_node, yaml.ScalarNode) and key_node.value == key:
            assert isinstance(value_node, yaml.Node)
            return value_node
    return None


# --- messages --------------------------------------------------------------------------------


def _duplicate(name: str, claims: list[_Claim]) -> SpecValidationError:
    message = (
        f"{len(claims)} files in the registry directories claim the workflow name `{name}`; "
        "a name must lead to one pipeline"
    )
    problems = []
    for claim in claims:
        others = " and ".join(f"{c.path}:{c.line}" for c in claims if c is not claim)
        detail = (
            f"workflow name `{name}` is also claimed by {others}; rename one workflow, or "
            "move one file out of the registry directories"
        )
        problems.append((str(claim.path), claim.line, claim.column, detail))
    return SpecValidationError(message, problems)


def _unknown(name: str, registered: Mapping[str, Target], found: _Found) -> str:
    known = sorted({*registered, *found.claims})
    close = difflib.get_close_matches(name, known, n=3)
    lines = [f"no pipeline is registered as `{name}`."]
    if close:
        lines[0] += " Did you mean " + " or ".join(f"`{c}`" for c in close) + "?"
    lines.append(f"Known names: {_listed(known)}." if known else "No names are registered.")
    lines.append(f"Searched {_searched(found.counts)}.")
    if found.skipped:
        skipped = "; ".join(f"{path} ({why})" for path, why in found.skipped.items())
        lines.append(f"Skipped {len(found.skipped)} file(s) that register no name: {skipped}.")
    lines.append(
        f"Add a YAML file with `workflow: {{name: {name}}}` to a registry directory, or call "
        f"nestflow.registry.register({name!r}, pipeline_or_path)."
    )
    return " ".join(lines)


def _listed(names: list[str]) -> str:
    shown = ", ".join(f"`{n}`" for n in names[:_SHOWN])
    more = len(names) - _SHOWN
    return f"{shown} and {more} more" if more > 0 else shown


def _searched(counts: Mapping[Path, int | None]) -> str:
    if not counts:
        return "no directories (this registry has none)"
    parts = [
        f"{d} ({'missing' if n is None else f'{n} YAML file' + ('s' if n != 1 else '')})"
        for d, n in counts.items()
    ]
    return ", ".join(parts)
