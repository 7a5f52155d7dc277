"""Plain references compiled without Jinja's parser: the same results as the parser gives.

A template that is names joined by dots (``{{steps.a.result}}``) is read by a regular
expression, and the end of a template without strings or brackets by ``str.find``. These
tests compile random templates both ways, the slow way by switching the shortcuts off, and
compare everything a caller can see: the kind of value, references, errors and renders.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from unittest import mock

from hypothesis import given, settings
from hypothesis import strategies as st

from nestflow.errors import TemplateError
from nestflow.spec import templates
from nestflow.spec.expressions import analyse
from nestflow.spec.templates import Scope, Where, compile_value, is_expression

WHERE = Where("flow.yaml", 3, 7)
SCOPE = Scope(
    steps={"a": ("x",), "not": (), "if": ("true",), "v1": ()},
    inputs=("a", "b", "if", "none"),
    global_vars=("g",),
    workflow=("name",),
    loop_vars=("item",),
    broken=("gone",),
)
CONTEXT = {
    "steps": {
        "a": {"result": {"k": {"if": 1}, "x": 2}, "x": 3},
        "not": {"result": None, "status": "failed", "error": "boom"},
        "if": {"result": [1, 2]},
        "v1": {"result": 4},
    },
    "inputs": {"a": {"b": {"c": 5}}, "b": "text", "if": True, "none": None},
    "global_vars": {"g": {"h": 6}},
    "workflow": {"name": "flow"},
    "loop": {"index": 0, "first": True, "last": False, "length": 3},
    "item": {"not": 7, "and": {"or": 8}},
}

WORDS = [
    *("steps", "inputs", "global_vars", "workflow", "loop", "item", "a", "b", "g", "h", "k"),
    *("v1", "x", "result", "status", "error", "name", "index", "first", "length", "gone"),
    *("not", "and", "or", "in", "is", "if", "else", "true", "false", "none", "True", "None"),
    *("null", "for", "_x", "x_", "__class__", "0", "1", "-1", "A9", "nope"),
]

TOKENS = ["{{", "}}", "{%", "'", '"', "(", ")", "[", "]", "{", "}", "a", "1", " ", "|", ".", "\\"]
"""Pieces of template text around which the end of a template is easy to misplace."""


@st.composite
def dotted(draw: st.DrawFn) -> str:
    """Names joined by dots, with spaces around: mostly plain references, some not."""
    names = draw(st.lists(st.sampled_from(WORDS), min_size=1, max_size=4))
    left, right = draw(st.sampled_from(["", " ", "  "])), draw(st.sampled_from(["", " "]))
    return left + ".".join(names) + right


@contextmanager
def without_shortcuts() -> Iterator[None]:
    with (
        mock.patch.object(templates, "_plain", return_value=None),
        mock.patch.object(templates, "_WHOLE_PLAIN", re.compile(r"(?!)")),
        mock.patch.object(templates, "_OPENERS", re.compile("")),
    ):
        yield


def outcome(value: Any) -> Any:
    """All a caller sees of compiling ``value`` and rendering it against ``CONTEXT``."""
    try:
        compiled = compile_value(value, SCOPE, WHERE)
    except TemplateError as exc:
        return ("problems", exc.problems)
    try:
        rendered: Any = ("value", compiled.render(CONTEXT, "step"))
    except TemplateError as exc:
        rendered = ("fails", str(exc), exc.problems)
    return (
        type(compiled).__name__,
        is_expression(compiled),
        compiled.source,
        compiled.references,
        compiled.whole_reference,
        compiled.is_literal,
        rendered,
    )


def both_ways(value: Any) -> tuple[Any, Any]:
    fast = outcome(value)
    with without_shortcuts():
        slow = outcome(value)
    return fast, slow


@settings(max_examples=400, deadline=None)
@given(dotted(), st.sampled_from(["{{%s}}", "x {{%s}} y", "{{%s}}{{ a }}", "{{%s}}."]))
def test_plain_references_compile_as_the_parser_reads_them(source: str, shape: str) -> None:
    fast, slow = both_ways({"v": [shape % source]})
    assert fast == slow


@settings(max_examples=400, deadline=None)
@given(dotted())
def test_the_shortcut_takes_exactly_what_jinja_reads_as_a_plain_reference(source: str) -> None:
    plain = templates._plain(source)
    analysis = analyse(source)
    if plain is not None:
        assert analysis.plain == plain
        assert analysis.problems == ()
        assert analysis.references == (plain,)


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(TOKENS), max_size=12).map("".join))
def test_templates_end_where_the_scan_ends_them(text: str) -> None:
    fast, slow = both_ways(text)
    assert fast == slow


def test_a_whole_plain_reference_is_wired_and_checked() -> None:
    compiled = compile_value("{{ steps.a.result }}", SCOPE, WHERE)
    assert is_expression(compiled)
    assert compiled.whole_reference == templates.Reference("steps", ("a", "result"))
    assert compiled.render(CONTEXT, "s") == {"k": {"if": 1}, "x": 2}
    try:
        compile_value({"v": "{{steps.b.result}}"}, SCOPE, lambda path: WHERE)
    except TemplateError as exc:
        (problem,) = exc.problems
        assert problem[:3] == ("flow.yaml", 3, 7)
        assert problem[3].startswith("`{{steps.b.result}}`: there is no step `b` to read here")
    else:
        raise AssertionError("an unknown step was accepted")


def test_strings_without_templates_are_not_located() -> None:
    def locate(path: tuple[Any, ...]) -> Where:
        raise AssertionError(f"located {path}")

    compiled = compile_value({"a": ["text", "more"], "b": 1}, SCOPE, locate)
    assert compiled.is_literal
