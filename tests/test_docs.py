"""A0.2: every documentation example runs (README, docs pages, docstring examples).

Beyond running, the pages are checked against the code: the output they show is what their
code prints, the signatures they spell out are the real ones, they refer only to files of
this repository and to extras that exist, and the claims about where work runs hold.
"""

from __future__ import annotations

import ast
import contextlib
import doctest
import importlib
import inspect
import io
import itertools
import logging
import os
import pkgutil
import re
import threading
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import nestflow
from nestflow import DaskBackend, LocalBackend, Pipeline, node

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"```python\n(.*?)```", re.S)
EXTRAS: dict[str, list[str]] = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))[
    "project"
]["optional-dependencies"]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_a0_2_every_python_block_of_a_page_runs(page: Path) -> None:
    blocks = BLOCK.findall(page.read_text(encoding="utf-8"))
    namespace: dict[str, object] = {"__name__": f"docs_{page.stem}"}
    for block in blocks:
        exec(compile(block, str(page), "exec"), namespace)


def test_a0_2_pages_with_code_are_found() -> None:
    assert sum(len(BLOCK.findall(p.read_text(encoding="utf-8"))) for p in PAGES) >= 6


def _modules() -> list[str]:
    return [
        m.name
        for m in pkgutil.walk_packages(nestflow.__path__, prefix="nestflow.")
        if not m.ispkg or m.name.count(".") == 1
    ]


@pytest.mark.parametrize("module_name", _modules())
def test_a0_2_docstring_examples_run(module_name: str) -> None:
    module = importlib.import_module(module_name)
    failures, _ = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert failures == 0


# --- the output a page shows -----------------------------------------------------------------

INLINE_OUTPUT = re.compile(r"^print\(.*\)\s+#\s(?P<shown>.*)$")


def _shown_outputs(block: str) -> list[str]:
    """What a block shows its prints give: ``print(x)  # out``, or ``# out`` lines below."""
    shown: list[str] = []
    lines = block.splitlines()
    for index, line in enumerate(lines):
        if match := INLINE_OUTPUT.match(line):
            shown.append(match["shown"])
        elif line.startswith("print("):
            below = itertools.takewhile(lambda s: s.startswith("# "), lines[index + 1 :])
            if text := "\n".join(s[2:] for s in below):
                shown.append(text)
    return shown


def _blocks_with_output() -> list[tuple[str, int]]:
    return [
        (page.name, number)
        for page in PAGES
        for number, block in enumerate(BLOCK.findall(page.read_text(encoding="utf-8")))
        if _shown_outputs(block)
    ]


def _page(name: str) -> Path:
    return ROOT / name if name == "README.md" else ROOT / "docs" / name


@pytest.mark.parametrize(("page", "number"), _blocks_with_output())
def test_the_output_a_page_shows_is_what_its_code_prints(page: str, number: int) -> None:
    blocks = BLOCK.findall(_page(page).read_text(encoding="utf-8"))
    namespace: dict[str, object] = {"__name__": f"docs_{Path(page).stem}"}
    for block in blocks[:number]:  # earlier blocks define what later ones use
        with contextlib.redirect_stdout(io.StringIO()):
            exec(compile(block, page, "exec"), namespace)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(blocks[number], page, "exec"), namespace)
    checker = doctest.OutputChecker()
    for shown in _shown_outputs(blocks[number]):
        # A shown output may be part of what is printed; `...` stands for what varies.
        want = f"...{shown}...\n"
        assert checker.check_output(want, printed.getvalue(), doctest.ELLIPSIS), (
            f"{page} shows\n{shown}\nbut its code printed\n{printed.getvalue()}"
        )


def test_the_pages_that_show_output_are_checked() -> None:
    pages = {page for page, _ in _blocks_with_output()}
    assert {"configuration.md", "backends.md", "visualization.md"} <= pages


# --- signatures, files and extras the pages name --------------------------------------------

SIGNATURES: list[tuple[str, str, Callable[..., Any]]] = [
    ("configuration.md", "LocalBackend", LocalBackend),
    ("backends.md", "DaskBackend", DaskBackend),
    ("callbacks.md", "ProgressCallback", nestflow.ProgressCallback),
    ("callbacks.md", "LoggingCallback", nestflow.LoggingCallback),
    ("callbacks.md", "TelemetryCallback", nestflow.TelemetryCallback),
    ("callbacks.md", "report.tree", nestflow.RunReport.tree),
    ("visualization.md", "to_text", Pipeline.to_text),
    ("visualization.md", "visualize", Pipeline.visualize),
]


@pytest.mark.parametrize(("page", "name", "target"), SIGNATURES, ids=[s[1] for s in SIGNATURES])
def test_a_documented_signature_lists_every_parameter_with_its_default(
    page: str, name: str, target: Callable[..., Any]
) -> None:
    text = _page(page).read_text(encoding="utf-8")
    found = re.search(rf"`{re.escape(name)}\((.*?)\)`", text, re.S)
    assert found, f"{page} does not spell out the signature of {name}"
    documented = ast.parse(f"def f({found[1]}): pass").body[0]
    assert isinstance(documented, ast.FunctionDef)
    given = documented.args
    defaults = [*given.defaults, *(d for d in given.kw_defaults if d is not None)]
    real = [p for p in inspect.signature(target).parameters.values() if p.name != "self"]
    assert [a.arg for a in [*given.args, *given.kwonlyargs]] == [p.name for p in real]
    assert [a.arg for a in given.kwonlyargs] == [p.name for p in real if p.kind == p.KEYWORD_ONLY]
    for parameter, default in zip(real, defaults, strict=True):
        value = eval(ast.unparse(default), {"logging": logging})
        assert value == parameter.default, f"{name}: {parameter.name}={ast.unparse(default)}"


def _repository_files() -> set[str]:
    return {
        path.relative_to(ROOT).as_posix()
        for folder in ("docs", "src", "tests", "examples", "benchmarks")
        for path in (ROOT / folder).rglob("*")
    } | {path.name for path in ROOT.iterdir()}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_a_page_refers_only_to_files_of_this_repository(page: Path) -> None:
    text = page.read_text(encoding="utf-8")
    files = _repository_files()
    for target in re.findall(r"\]\(([^)#\s]+)\)", text):
        if "://" in target:
            continue
        assert (page.parent / target).resolve().is_relative_to(ROOT), target
        assert (page.parent / target).exists(), f"{page.name} links to missing {target}"
    for mention in re.findall(r"`([\w./-]+\.(?:md|py|toml))`", text):
        assert any(f == mention or f.endswith(f"/{mention}") for f in files), (
            f"{page.name} mentions `{mention}`, which is not a file of this repository"
        )
    assert "../" not in text
    assert not re.search(r"\bSPEC\b|ARCHITECTURE\.md", text)


def _extras_named(text: str) -> set[str]:
    """Extras of install commands and hints: ``nestflow[dask,redis]``, ``".[dask]"``."""
    groups = re.findall(r"(?:nestflow|\"\.)\[([\w,\s-]+)\]", text)
    return {extra.strip() for group in groups for extra in group.split(",")}


def test_every_extra_the_pages_and_install_hints_name_is_declared() -> None:
    texts = [p.read_text(encoding="utf-8") for p in PAGES]
    texts += [p.read_text(encoding="utf-8") for p in (ROOT / "src").rglob("*.py")]
    named = set().union(*map(_extras_named, texts))
    assert {"dask", "redis", "progress", "viz", "otel"} <= named
    assert named <= set(EXTRAS), sorted(named - set(EXTRAS))


def test_the_readme_tables_every_extra() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert set(re.findall(r"^\| `([\w-]+)` \|", readme, re.M)) == set(EXTRAS)


def test_the_make_targets_the_readme_names_exist() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    named = set(re.findall(r"\bmake (\w+)", readme))
    targets = set(re.findall(r"^([\w-]+):", (ROOT / "Makefile").read_text("utf-8"), re.M))
    assert {"demo", "test", "check", "bench"} <= named <= targets


# --- where work runs (backends.md, nesting.md) ---------------------------------------------


@pytest.fixture(scope="module")
def dask_backend() -> Iterator[DaskBackend]:
    with DaskBackend(n_workers=1) as backend:
        yield backend


def _where_pipeline(name: str, backend: Any = nestflow.UNSET) -> Pipeline:
    # Defined here, not at module level: the dask worker gets the function by value.
    def where(x: int) -> tuple[int, str]:
        return os.getpid(), threading.current_thread().name

    return Pipeline([node(where, output_name="at")], name=name, backend=backend)


def test_a_dask_backend_with_sequential_modes_still_runs_every_node_on_the_cluster(
    dask_backend: DaskBackend,
) -> None:
    sequential = DaskBackend(
        client=dask_backend.client, node_execution="sequential", map_execution="sequential"
    )
    pipeline = _where_pipeline("flat", sequential)
    at_run = pipeline.run(x=1, output_name="at")
    at_map = pipeline.map(x=[1, 2, 3], map_over="x", output_name="at")
    assert {pid for pid, _ in [at_run, *at_map]}.isdisjoint({os.getpid()})


def _nested_map(child: Any, parent: Any) -> set[tuple[int, str]]:
    each = _where_pipeline("child", child).as_node(name="each", map_over="x")
    outer = Pipeline([each], name="parent", backend=parent)
    return set(outer.run(x=[1, 2, 3], output_name="at"))


def test_a_nested_map_runs_under_the_nested_pipelines_backend(dask_backend: DaskBackend) -> None:
    here = (os.getpid(), threading.current_thread().name)
    threaded = LocalBackend(map_execution="threaded", max_workers=3)
    assert {pid for pid, _ in _nested_map(dask_backend, LocalBackend())}.isdisjoint({here[0]})
    in_threads = _nested_map(threaded, dask_backend)
    assert {pid for pid, _ in in_threads} == {here[0]}
    assert here not in in_threads
    assert _nested_map(LocalBackend(), threaded) == {here}
    assert here not in _nested_map(nestflow.UNSET, threaded)
