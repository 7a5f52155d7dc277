"""Project defaults for YAML pipelines, read from ``nestflow.toml`` or ``pyproject.toml``.

Limits, registry directories, allowed pipeline directories and the workspace root are
choices of a whole project, so they live beside its code instead of in every workflow file.
The search climbs from a start directory (the root workflow's directory, or the current
directory for the command line) and stops at the first directory holding ``nestflow.toml``
or a ``pyproject.toml`` with a ``[tool.nestflow]`` table, as pytest and ruff find theirs.
Stopping there, rather than merging every file on the way up, means one file answers the
question "where did this setting come from?". Named profiles in the same file override its
keys when ``NESTFLOW_PROFILE`` selects them, so CI can tighten limits without a second file.

Relative paths resolve against the directory of the file that set them, never against the
current directory: a pipeline loads the same way wherever the command is run from.
"""

from __future__ import annotations

import difflib
import os
import re
import threading
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Final

from nestflow.core.config import UNSET, Unset
from nestflow.core.limits import Limits
from nestflow.errors import SpecValidationError

PROFILE_VARIABLE: Final = "NESTFLOW_PROFILE"
"""The environment variable naming the profile to apply."""

Problem = tuple[str, int, int, str]


@dataclass(frozen=True, slots=True, kw_only=True)
class Project:
    """The defaults a project sets for its YAML pipelines; build it with ``load_project``.

    ``source`` is the file the settings came from, or ``None`` when no file was found and
    every value is nestflow's default. Paths are absolute. ``memory_warning_mb`` stays
    ``None`` when unset: a step's own ``memory_limit_mb`` may still change the limit whose
    75 % it defaults to.
    """

    root: Path
    registry_dirs: tuple[Path, ...]
    workspace_root: Path
    source: Path | None = None
    profile: str | None = None
    max_depth: int = 10
    max_total_steps: int = 1000
    memory_limit_mb: float | None = None
    memory_warning_mb: float | None = None
    allowed_pipeline_dirs: tuple[Path, ...] = ()

    @classmethod
    def default(cls, root: Path) -> Project:
        """nestflow's defaults, with relative paths taken from ``root``."""
        base = root.resolve()
        return cls(
            root=base,
            registry_dirs=(base / "pipelines",),
            workspace_root=base / ".nestflow" / "workspaces",
        )

    def limits(self) -> Limits:
        """The run limits a workflow of this project starts from."""
        return Limits(
            max_total_steps=self.max_total_steps,
            max_depth=self.max_depth,
            memory_limit_mb=self.memory_limit_mb,
            memory_warning_mb=self.memory_warning_mb,
        )

    def pipeline_dirs(self, root_dir: Path) -> tuple[Path, ...]:
        """Where ``pipeline_file`` targets may lie when the root workflow is in ``root_dir``.

        The root file's directory and the registry directories are always allowed;
        ``allowed_pipeline_dirs`` adds more.
        """
        dirs = (root_dir.resolve(), *self.registry_dirs, *self.allowed_pipeline_dirs)
        return tuple(dict.fromkeys(dirs))


def allowed(path: Path, roots: Sequence[Path]) -> bool:
    """Whether ``path`` lies inside one of ``roots`` once symlinks and ``..`` are resolved.

    Resolving both sides first is what makes the check hold: ``pipelines/../../etc/x.yaml``
    and a symlink inside a root that points elsewhere are judged by where they really lead.
    A relative ``path`` is taken from the current directory, so pass absolute paths.
    """
    target = path.resolve()
    return any(target.is_relative_to(root.resolve()) for root in roots)


def load_project(start: Path, profile: str | Unset | None = UNSET) -> Project:
    """The project defaults in force for ``start`` (a directory, or a file in one).

    ``profile`` names the profile to apply; left out, it is read from ``NESTFLOW_PROFILE``
    (empty meaning none). Raises ``SpecValidationError`` listing every unknown key, value of
    the wrong type and unknown profile at once.
    """
    origin = f"the environment variable {PROFILE_VARIABLE}"
    if isinstance(profile, Unset):
        profile = os.environ.get(PROFILE_VARIABLE) or None
    else:
        origin = "the `profile` argument"
    directory = start.resolve()
    if directory.is_file():
        directory = directory.parent
    found = _find(directory)
    if found is None:
        if profile is not None:
            detail = _no_file_for_profile(profile, origin, directory)
            raise _invalid([(str(directory), 0, 0, detail)])
        return Project.default(directory)
    return _read(found, _Choice(profile, origin))


# --- finding the file ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Found:
    """A project file and its nestflow table (``tool.nestflow`` or the whole file)."""

    path: Path
    prefix: str
    table: Mapping[str, Any]

    def label(self, *keys: str) -> str:
        name = ".".join(k for k in (self.prefix, *keys) if k)
        return f"[{name}]" if name else "the top level"


@dataclass(frozen=True, slots=True)
class _Choice:
    """The selected profile and what selected it, for error messages."""

    name: str | None
    origin: str


def _find(directory: Path) -> _Found | None:
    for folder in (directory, *directory.parents):
        own = folder / "nestflow.toml"
        if own.is_file():
            return _Found(own, "", _parse(own))
        shared = folder / "pyproject.toml"
        if shared.is_file():
            table = _parse(shared).get("tool", {})
            if isinstance(table, dict) and "nestflow" in table:
                return _Found(shared, "tool.nestflow", _table(shared, table["nestflow"]))
    return None


_TOML_PLACE = re.compile(r"\(at line (\d+), column (\d+)\)$")


class _ParsedFiles:
    """The parsed TOML of the project files read last, so a load does not parse them again.

    Every load still reads each file's bytes (a few microseconds) and reuses a parse only
    when they are exactly the bytes it was made from: an edit is always seen, even one
    that keeps the file's size and modification time (timestamps are coarser than quick
    successive writes). A file that does not parse is not kept. At most ``size`` files are
    kept, the least recently used dropped first; a parse is shared between loads, so
    nothing here may change it.
    """

    def __init__(self, size: int) -> None:
        self._size = size
        self._kept: dict[Path, tuple[bytes, dict[str, Any]]] = {}
        self._lock = threading.Lock()

    def parse(self, path: Path) -> dict[str, Any]:
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise _invalid([(str(path), 0, 0, f"cannot be read: {exc}")]) from None
        with self._lock:
            kept = self._kept.pop(path, None)
            if kept is not None and kept[0] == data:
                self._kept[path] = kept  # now the most recently used
                return kept[1]
        parsed = _parse_bytes(path, data)
        with self._lock:
            self._kept[path] = (data, parsed)
            while len(self._kept) > self._size:
                del self._kept[next(iter(self._kept))]
        return parsed


def _parse_bytes(path: Path, data: bytes) -> dict[str, Any]:
    try:
        return tomllib.loads(data.decode())
    except tomllib.TOMLDecodeError as exc:
        place = _TOML_PLACE.search(str(exc))
        line, column = (int(place[1]), int(place[2])) if place else (0, 0)
        message = f"not valid TOML: {exc}; fix the syntax so nestflow can read its settings"
        raise _invalid([(str(path), line, column, message)]) from None
    except UnicodeDecodeError as exc:
        message = f"not valid TOML: the file is not UTF-8 text ({exc})"
        raise _invalid([(str(path), 0, 0, message)]) from None


_PARSED: Final = _ParsedFiles(size=32)


def _parse(path: Path) -> dict[str, Any]:
    """The TOML of ``path`` (shared: read it, never change it)."""
    return _PARSED.parse(path)


def _table(path: Path, value: object) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        message = (
            f"`tool.nestflow` must be a table, found {_describe(value)}; "
            "write the settings under a [tool.nestflow] header"
        )
        raise _invalid([(str(path), 0, 0, message)])
    return value


# --- reading the settings --------------------------------------------------------------------


class _WrongValue(Exception):
    """A setting's value does not fit; ``expected`` says what would."""

    def __init__(self, expected: str) -> None:
        super().__init__(expected)
        self.expected = expected


def _count(minimum: int) -> Callable[[object, Path], int]:
    def read(value: object, base: Path) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise _WrongValue(f"an integer of at least {minimum}")
        return value

    return read


def _megabytes(value: object, base: Path) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise _WrongValue("a positive number of MiB, such as 512")
    return value


def _directory(value: object, base: Path) -> Path:
    if not isinstance(value, str) or not value:
        raise _WrongValue("a directory path as a string")
    return (base / Path(value).expanduser()).resolve()


def _directories(value: object, base: Path) -> tuple[Path, ...]:
    if isinstance(value, str):
        raise _WrongValue(f'a list of directory paths, such as ["{value}"]')
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise _WrongValue('a list of directory paths, such as ["pipelines"]')
    return tuple(dict.fromkeys(_directory(v, base) for v in value))


_KEYS: Final[Mapping[str, Callable[[object, Path], object]]] = {
    "max_depth": _count(0),
    "max_total_steps": _count(1),
    "memory_limit_mb": _megabytes,
    "memory_warning_mb": _megabytes,
    "registry_dirs": _directories,
    "allowed_pipeline_dirs": _directories,
    "workspace_root": _directory,
}


def _read(found: _Found, choice: _Choice) -> Project:
    problems: list[Problem] = []
    values = _settings(found, found.table, (), problems, allow_profiles=True)
    profiles = _profiles(found, problems)
    if choice.name is not None and profiles is not None:
        if choice.name in profiles:
            key = ("profiles", choice.name)
            values |= _settings(found, profiles[choice.name], key, problems, allow_profiles=False)
        else:
            problems.append(_unknown_profile(found, choice, sorted(profiles)))
    problems.extend(_memory_problems(found, values))
    if problems:
        raise _invalid(problems)
    project = Project.default(found.path.parent)
    return replace(project, source=found.path, profile=choice.name, **values)


def _settings(
    found: _Found,
    table: Mapping[str, Any],
    keys: tuple[str, ...],
    problems: list[Problem],
    *,
    allow_profiles: bool,
) -> dict[str, Any]:
    """The values of one table's settings; what does not fit is added to ``problems``."""
    values: dict[str, Any] = {}
    where = found.label(*keys)
    for key, value in table.items():
        if key == "profiles" and allow_profiles:
            continue
        read = _KEYS.get(key)
        if read is None:
            problems.append((str(found.path), 0, 0, _unknown_key(where, key, allow_profiles)))
            continue
        try:
            values[key] = read(value, found.path.parent)
        except _WrongValue as wrong:
            message = f"{where}: `{key}` must be {wrong.expected}, found {_describe(value)}"
            problems.append((str(found.path), 0, 0, message))
    return values


def _profiles(found: _Found, problems: list[Problem]) -> dict[str, Mapping[str, Any]] | None:
    """The profile tables by name, or ``None`` when ``profiles`` itself is not a table.

    A profile that is not a table is reported and kept as empty, so selecting it does not
    add a second, misleading "not defined" problem.
    """
    profiles = found.table.get("profiles", {})
    if not isinstance(profiles, dict):
        message = (
            f"{found.label('profiles')} must be a table of profiles, found "
            f"{_describe(profiles)}; write each profile under {found.label('profiles', '<name>')}"
        )
        problems.append((str(found.path), 0, 0, message))
        return None
    tables: dict[str, Mapping[str, Any]] = {}
    for name, table in profiles.items():
        tables[name] = table if isinstance(table, dict) else {}
        if not isinstance(table, dict):
            where = found.label("profiles", name)
            message = f"{where} must be a table of settings, found {_describe(table)}"
            problems.append((str(found.path), 0, 0, message))
    return tables


def _memory_problems(found: _Found, values: Mapping[str, Any]) -> list[Problem]:
    limit, warning = values.get("memory_limit_mb"), values.get("memory_warning_mb")
    if limit is None or warning is None or warning < limit:
        return []
    message = (
        f"memory_warning_mb ({warning}) must be below memory_limit_mb ({limit}): the warning "
        "is meant to come before the limit stops the run; lower it, or leave it out to warn "
        "at 75 % of the limit"
    )
    return [(str(found.path), 0, 0, message)]


# --- messages --------------------------------------------------------------------------------


def _unknown_key(where: str, key: str, allow_profiles: bool) -> str:
    valid = [*_KEYS, "profiles"] if allow_profiles else list(_KEYS)
    close = difflib.get_close_matches(key, valid, n=1)
    hint = f" Did you mean `{close[0]}`?" if close else ""
    listed = ", ".join(f"`{k}`" for k in valid)
    return f"{where}: unknown key `{key}`.{hint} Valid keys: {listed}."


def _unknown_profile(found: _Found, choice: _Choice, known: list[str]) -> Problem:
    name = str(choice.name)
    close = difflib.get_close_matches(name, known, n=1)
    hint = f" Did you mean `{close[0]}`?" if close else ""
    where = found.label("profiles", "<name>")
    available = (
        f"Defined profiles: {', '.join(f'`{k}`' for k in known)}."
        if known
        else f"No profiles are defined; add one as {where}."
    )
    message = f"the profile `{name}` selected by {choice.origin} is not defined.{hint} {available}"
    return (str(found.path), 0, 0, message)


def _no_file_for_profile(profile: str, origin: str, directory: Path) -> str:
    return (
        f"the profile `{profile}` is selected by {origin}, but no nestflow.toml and no "
        f"pyproject.toml with [tool.nestflow] was found in {directory} or any directory "
        "above it; define the profile in one, or unset the profile"
    )


_TOML_TYPES: Final = {
    bool: "boolean",
    int: "integer",
    float: "float",
    str: "string",
    list: "array",
    dict: "table",
}


def _describe(value: object) -> str:
    kind = _TOML_TYPES.get(type(value), "date/time")
    return f"the {kind} {value!r}" if kind != "table" else "a table"


def _invalid(problems: Sequence[Problem]) -> SpecValidationError:
    count = f"{len(problems)} problem{'s' if len(problems) != 1 else ''}"
    return SpecValidationError(f"Invalid nestflow project settings ({count}):", problems)
