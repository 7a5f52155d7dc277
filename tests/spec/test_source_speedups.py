"""Reading YAML without PyYAML's constructor for plain values: the same data as safe_load.

``spec.source`` resolves and reads plain scalars itself. These tests hold it to
``yaml.safe_load`` on varied documents (YAML 1.1 booleans, octal and base-60 integers,
special floats, timestamps, quoted and explicitly tagged scalars, in block and flow style),
check each value's mark against its node, and pin the errors for values that cannot be read.
"""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from nestflow.spec.source import Raw, SourceError, read

# Plain scalars whose YAML 1.1 type is easy to get wrong.
TRICKY = [
    *("yes", "Yes", "YES", "no", "No", "on", "On", "OFF", "off", "y", "Y", "n", "N"),
    *("true", "True", "TRUE", "tRUE", "false", "False", "FALSE"),
    *("~", "null", "Null", "NULL", "nULL", "none", "None"),
    *("0", "-0", "+0", "7", "-7", "+12", "017", "08", "0o17", "0x1F", "0X1f", "0b101"),
    *("1_000", "1__0", "_1", "1:30", "-1:30", "190:20:30", "1:60", "0x_1"),
    *("1.5", "-1.5", "1.", ".5", "1e3", "1.0e3", "1.5e-3", "1_0.5", "1:30.5", "6.8523015e+5"),
    *(".inf", "-.inf", "+.INF", ".Inf", ".NaN", ".nan", "nan", "inf", ".NAN"),
    *("2001-12-14", "2001-12-14t21:59:43.10-05:00", "2001-12-14 21:59:43.10 -5", "2001-1-1"),
    *("2002-12-14T21:59:43Z", "2001-12-14 21:59:43.10", "12:30", "1.2.3", "v1", "<<a"),
    *("a b", "steps.v1.result", "module:func", "-x", "x-", "0.", "00", "0.0.0"),
]

FLOATS_NAN = "nan"


def typed(value: Any) -> Any:
    """``value`` with each scalar paired with its type, so ``1``, ``1.0`` and ``True``
    differ; NaN compares equal to itself."""
    if isinstance(value, dict):
        return ("dict", [(typed(k), typed(v)) for k, v in value.items()])
    if isinstance(value, list):
        return ("list", [typed(v) for v in value])
    if isinstance(value, float) and math.isnan(value):
        return ("float", FLOATS_NAN)
    return (type(value).__name__, value)


plain_text = st.text(alphabet="abcxyzEFG0123456789_-./", min_size=1, max_size=8).filter(
    lambda s: s[0] not in "-." and s[-1] != "-"
)
any_text = st.text(
    # Printable text of the basic plane: escapes and line breaks libyaml and PyYAML's own
    # scanner read alike.
    st.characters(max_codepoint=0xFFFF, exclude_categories=("Cs", "Cc", "Cn", "Co", "Zl", "Zp")),
    max_size=8,
).filter(lambda s: "\ufeff" not in s)


@st.composite
def scalar(draw: st.DrawFn) -> str:
    """One scalar as written in YAML: plain, quoted or explicitly tagged."""
    kind = draw(st.sampled_from(["tricky", "plain", "single", "double", "tagged"]))
    if kind == "tricky":
        return draw(st.sampled_from(TRICKY))
    if kind == "plain":
        return draw(plain_text)
    if kind == "single":
        text = draw(st.one_of(st.sampled_from(TRICKY), any_text))
        return "'" + text.replace("'", "''") + "'"
    if kind == "double":
        return json.dumps(draw(st.one_of(st.sampled_from(TRICKY), any_text)))
    return draw(
        st.sampled_from(
            [
                "!!str 12",
                "!!str yes",
                "!!str ~",
                "!!int '12'",
                "!!int 0x1F",
                "!!float '1'",
                "!!float 1_000.5",
                "!!bool 'yes'",
                "!!bool off",
                "!!null ''",
                "!!null x",
                "!!binary aGVsbG8=",
                "!!timestamp 2001-12-14",
                '!!str "a b"',
            ]
        )
    )


def render(value: Any, indent: int, flow: bool) -> str:
    """A generated document as YAML text: ``value`` is a scalar's text, a list or a dict."""
    pad = " " * indent
    if isinstance(value, str):
        return value
    if flow or not value:
        if isinstance(value, list):
            return "[" + ", ".join(render(v, 0, True) for v in value) + "]"
        return "{" + ", ".join(f"{k}: {render(v, 0, True)}" for k, v in value.items()) + "}"
    lines = []
    if isinstance(value, list):
        for item in value:
            if isinstance(item, str):
                lines.append(f"{pad}- {item}")
            else:
                lines.append(f"{pad}-\n{render(item, indent + 2, False)}")
    else:
        for key, item in value.items():
            if isinstance(item, str):
                lines.append(f"{pad}{key}: {item}")
            else:
                lines.append(f"{pad}{key}:\n{render(item, indent + 2, False)}")
    return "\n".join(lines)


def _resolved_key(text: str) -> Any:
    """A key as a Python dict sees it (``1``, ``1.0`` and ``true`` are one key)."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return ("not valid", text)


keys = st.lists(scalar(), max_size=5, unique_by=_resolved_key)


@st.composite
def mapping(draw: st.DrawFn, children: st.SearchStrategy[Any]) -> dict[str, Any]:
    return {key: draw(children) for key in draw(keys)}


documents = st.recursive(
    scalar(),
    lambda children: st.one_of(st.lists(children, max_size=4), mapping(children)),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(documents, st.booleans())
def test_values_are_those_of_safe_load(document: Any, flow: bool) -> None:
    text = render(document, 0, flow) + "\n"
    try:
        expected = yaml.safe_load(text)
    except yaml.YAMLError:  # control characters in a quoted string, say
        with pytest.raises(SourceError):
            read(text, "doc.yaml")
        return
    data, _ = read(text, "doc.yaml")
    assert typed(data) == typed(expected), text


@settings(max_examples=150, deadline=None)
@given(documents, st.booleans())
def test_every_value_is_marked_where_its_node_starts(document: Any, flow: bool) -> None:
    text = render(document, 0, flow) + "\n"
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return
    data, marks = read(text, "doc.yaml")

    def walk(value: Any, node: yaml.Node, path: tuple[Any, ...]) -> None:
        where = marks.at(path)
        assert (where.line, where.column) == (node.start_mark.line + 1, node.start_mark.column + 1)
        if isinstance(value, dict):
            for (key, item), (_, item_node) in zip(value.items(), node.value, strict=True):
                walk(item, item_node, (*path, key))
        elif isinstance(value, list):
            for i, (item, item_node) in enumerate(zip(value, node.value, strict=True)):
                walk(item, item_node, (*path, i))

    if node is not None:
        walk(data, node, ())


def test_repeated_plain_values_resolve_alike_in_one_document() -> None:
    text = "a: [yes, 'yes', yes, !!str yes, yes, 017, '017', 017]\nyes: no\n'yes': no\n"
    data, _ = read(text, "f")
    assert typed(data) == typed(yaml.safe_load(text))
    assert data["a"] == [True, "yes", True, "yes", True, 15, "017", 15]


def test_raw_keeps_the_text_and_aliases_repeat_values() -> None:
    data, marks = read("a: !raw '{{x}}'\nb: &x [1, yes]\nc: *x\n", "f")
    assert isinstance(data["a"], Raw)
    assert data["a"] == "{{x}}"
    assert data["b"] == data["c"] == [1, True]
    assert str(marks.at(("c", 1))) == "f:2:11"  # an alias is read where its anchor was


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a: !!int abc", "not a valid value: `abc` cannot be read as tag:yaml.org,2002:int"),
        ("a: !!float x", "not a valid value: `x` cannot be read as tag:yaml.org,2002:float"),
        ("a: !!bool maybe", "not a valid value: `maybe` cannot be read as tag:yaml.org,2002:bool"),
        ("a: !!timestamp nope", "`nope` cannot be read as tag:yaml.org,2002:timestamp"),
        ("a: !!binary 'a'", "not a valid value: failed to decode base64 data"),
        ("a: !!map x", "not a valid value: expected a mapping node"),
        ("a: &x [*x]", "an alias refers to the value that holds it"),
        ("a: &x {b: *x}", "an alias refers to the value that holds it"),
        ("a: !!python/name:os.system x", "the tag tag:yaml.org,2002:python/name:os.system"),
        ("a: !!set {x}", "the tag tag:yaml.org,2002:set is not read here"),
        ("a: !foo x", "the tag !foo is not read here"),
        ("a: =", "the tag tag:yaml.org,2002:value is not read here"),
        ("<<: {b: 1}", "the tag tag:yaml.org,2002:merge is not read here"),
        ("{yes: 1, true: 2}", "the key `True` is given twice"),
        ("? [1]\n: 2", "a mapping key must be a plain value"),
    ],
)
def test_values_that_cannot_be_read_are_source_errors(text: str, message: str) -> None:
    with pytest.raises(SourceError) as caught:
        read(text, "f")
    assert message in str(caught.value)
    assert caught.value.where.file == "f"
