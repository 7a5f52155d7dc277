"""What the distribution promises has code behind it: exports, console scripts, extras.

Every name of ``nestflow.__all__`` imports and is no placeholder, every console script
resolves, every runtime extra backs a module that imports it, and every extra is installed
in the environment ``make test`` sets up (which installs them all).
"""

from __future__ import annotations

import ast
import importlib.metadata
import inspect
import textwrap
import tomllib
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement

import nestflow
from errors_to_come import NOT_RAISED_YET
from nestflow import errors as errors_module

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "nestflow"
PROJECT: dict[str, Any] = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))["project"]
EXTRAS: dict[str, list[str]] = PROJECT.get("optional-dependencies", {})
SCRIPTS: dict[str, str] = PROJECT.get("scripts", {})

TOOL_EXTRAS = {"dev", "bench"}
"""Extras of tools (tests and checks, benchmarks) rather than of the library."""

RUNTIME_EXTRAS = sorted(set(EXTRAS) - TOOL_EXTRAS - {"all"})

NO_OP_HOOKS = {"PipelineCallback"}
"""Classes whose empty methods are the implementation: hooks a subclass overrides."""


def _distribution() -> importlib.metadata.Distribution:
    return importlib.metadata.distribution("nestflow")


def _placeholder(func: Callable[..., Any]) -> str | None:
    """What makes ``func`` a placeholder (an empty body, ``...``, NotImplementedError)."""
    try:
        source = inspect.getsource(func)
    except OSError:  # generated (a dataclass's __init__, __eq__): no placeholder
        return None
    tree = ast.parse(textwrap.dedent(source))
    definition = tree.body[0]
    assert isinstance(definition, ast.FunctionDef | ast.AsyncFunctionDef)
    body = definition.body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]  # the docstring
    if not body:
        return "an empty body"
    if len(body) > 1:
        return None
    statement = body[0]
    if isinstance(statement, ast.Pass):
        return "`pass`"
    if isinstance(statement, ast.Expr) and getattr(statement.value, "value", None) is Ellipsis:
        return "`...`"
    if isinstance(statement, ast.Raise) and "NotImplementedError" in ast.unparse(statement):
        return "`raise NotImplementedError`"
    return None


def _own_functions(cls: type) -> Iterator[tuple[str, Callable[..., Any]]]:
    for attribute, member in vars(cls).items():
        function = member.fget if isinstance(member, property) else member
        function = getattr(function, "__func__", function)  # staticmethod, classmethod
        if inspect.isfunction(function) and function.__module__.startswith("nestflow"):
            yield attribute, function


def _placeholders(value: object) -> list[str]:
    if inspect.isfunction(value):
        problem = _placeholder(value)
        return [f"{value.__name__} has {problem}"] if problem else []
    if not inspect.isclass(value) or issubclass(value, BaseException):
        return []
    if getattr(value, "_is_protocol", False) or value.__name__ in NO_OP_HOOKS:
        return []
    return [
        f"{value.__name__}.{attribute} has {problem}"
        for attribute, function in _own_functions(value)
        if (problem := _placeholder(function))
    ]


@pytest.mark.parametrize("name", nestflow.__all__)
def test_every_exported_name_imports_and_is_no_placeholder(name: str) -> None:
    namespace: dict[str, object] = {}
    exec(f"from nestflow import {name}", namespace)
    value = namespace[name]
    assert value is not None
    assert _placeholders(value) == []


@cache
def _names_used_by_the_package() -> frozenset[str]:
    """Every name and attribute the package's modules mention, outside the declarations."""
    used: set[str] = set()
    for path in PACKAGE.rglob("*.py"):
        if path.relative_to(PACKAGE).as_posix() in ("errors.py", "__init__.py"):
            continue
        for item in ast.walk(ast.parse(path.read_text("utf-8"))):
            if isinstance(item, ast.Name):
                used.add(item.id)
            elif isinstance(item, ast.Attribute):
                used.add(item.attr)
            elif isinstance(item, ast.alias):
                used.add(item.name.rsplit(".", 1)[-1])
    return frozenset(used)


def _exported_errors() -> list[str]:
    errors = [getattr(nestflow, n) for n in nestflow.__all__]
    return [
        e.__name__ for e in errors if inspect.isclass(e) and issubclass(e, BaseException | Warning)
    ]


@pytest.mark.parametrize("name", sorted(NOT_RAISED_YET))
def test_an_error_of_a_feature_to_come_is_defined_but_not_exported(name: str) -> None:
    assert isinstance(getattr(errors_module, name), type)
    assert name not in nestflow.__all__
    assert name not in errors_module.__all__
    assert name not in _names_used_by_the_package(), f"{name} is raised now: export it"


@pytest.mark.parametrize("name", _exported_errors())
def test_every_exported_error_is_raised_by_some_module(name: str) -> None:
    error = getattr(nestflow, name)
    family = [
        e
        for e in (getattr(nestflow, n) for n in nestflow.__all__)
        if inspect.isclass(e) and issubclass(e, error)
    ]
    used = _names_used_by_the_package()
    assert any(e.__name__ in used for e in family), (
        f"{name} is exported, but no module of nestflow raises it or one of its subclasses"
    )


def test_the_installed_metadata_matches_pyproject() -> None:
    """A stale install would make the checks below read old scripts and extras."""
    stale = "the installed metadata is older than pyproject.toml: `make test` reinstalls"
    metadata = _distribution().metadata
    assert sorted(metadata.get_all("Provides-Extra") or []) == sorted(EXTRAS), stale
    installed = {
        ep.name: ep.value for ep in _distribution().entry_points if ep.group == "console_scripts"
    }
    assert installed == SCRIPTS, stale


def test_every_entry_point_resolves() -> None:
    """Console scripts and any other entry point load and can be called."""
    for entry_point in _distribution().entry_points:
        target = entry_point.load()
        assert callable(target), f"{entry_point.value} is {target!r}, which cannot be called"


def _missing(requirement: Requirement, seen: frozenset[str] = frozenset()) -> list[str]:
    """What of ``requirement`` (and of the extras it asks for) is not installed here."""
    try:
        version = importlib.metadata.version(requirement.name)
    except importlib.metadata.PackageNotFoundError:
        return [f"{requirement} (not installed)"]
    if not requirement.specifier.contains(version, prereleases=True):
        return [f"{requirement} (installed: {version})"]
    missing: list[str] = []
    requires = importlib.metadata.requires(requirement.name) or []
    for extra in sorted(requirement.extras):
        if f"{requirement.name}[{extra}]" in seen:
            continue
        for text in requires:
            needed = Requirement(text)
            if needed.marker is not None and needed.marker.evaluate({"extra": extra}):
                missing += _missing(needed, seen | {f"{requirement.name}[{extra}]"})
    return missing


@pytest.mark.parametrize("extra", sorted(EXTRAS))
def test_every_extra_is_installed_by_the_test_setup(extra: str) -> None:
    requirements = [Requirement(text) for text in EXTRAS[extra]]
    assert requirements, f"extra {extra!r} installs nothing"
    missing = [m for r in requirements for m in _missing(r)]
    assert missing == [], f"extra {extra!r}: run `make test` to install {missing}"


def _top_level_modules(distribution_name: str) -> set[str]:
    wanted = distribution_name.lower().replace("_", "-")
    return {
        module
        for module, names in importlib.metadata.packages_distributions().items()
        if any(n.lower().replace("_", "-") == wanted for n in names)
    }


@cache
def _imported_under(folder: Path) -> frozenset[str]:
    """Top-level modules imported by the Python files under ``folder``."""
    found: set[str] = set()
    for path in folder.rglob("*.py"):
        for item in ast.walk(ast.parse(path.read_text("utf-8"))):
            if isinstance(item, ast.Import):
                found.update(alias.name.split(".")[0] for alias in item.names)
            elif isinstance(item, ast.ImportFrom) and item.module and not item.level:
                found.add(item.module.split(".")[0])
            elif (name := _imported_by_call(item)) is not None:
                found.add(name.split(".")[0])
    return frozenset(found)


def _imported_by_call(item: ast.AST) -> str | None:
    """The module of ``importlib.import_module("name")``: how an extra may load lazily."""
    if not isinstance(item, ast.Call) or not item.args:
        return None
    called = getattr(item.func, "attr", getattr(item.func, "id", None))
    argument = item.args[0]
    if called != "import_module" or not isinstance(argument, ast.Constant):
        return None
    return argument.value if isinstance(argument.value, str) else None


def test_the_all_extra_is_every_runtime_extra() -> None:
    (requirement,) = [Requirement(text) for text in EXTRAS["all"]]
    assert requirement.name == "nestflow"
    assert sorted(requirement.extras) == RUNTIME_EXTRAS


def _modules_installed_by(requirement: Requirement) -> set[str]:
    """The top-level modules of a requirement and of the extras it asks for (dask[distributed])."""
    names = {requirement.name}
    for text in importlib.metadata.requires(requirement.name) or []:
        needed = Requirement(text)
        if needed.marker is not None and any(
            needed.marker.evaluate({"extra": extra}) for extra in requirement.extras
        ):
            names.add(needed.name)
    return {module for name in names for module in _top_level_modules(name)}


@pytest.mark.parametrize("extra", RUNTIME_EXTRAS)
def test_every_runtime_extra_backs_a_module_of_the_package(extra: str) -> None:
    modules = {m for text in EXTRAS[extra] for m in _modules_installed_by(Requirement(text))}
    assert modules & _imported_under(PACKAGE), (
        f"extra {extra!r} installs {sorted(modules)}, which no module of nestflow imports"
    )


@pytest.mark.parametrize("requirement", PROJECT["dependencies"])
def test_every_core_dependency_is_imported_by_the_package(requirement: str) -> None:
    modules = _top_level_modules(Requirement(requirement).name)
    assert modules & _imported_under(PACKAGE), (
        f"{requirement} is a dependency, but no module of nestflow imports {sorted(modules)}"
    )
