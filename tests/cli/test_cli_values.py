"""The pieces of the command line that read and write values: inputs, JSON output, units."""

from __future__ import annotations

import json
import math
from typing import Any

import click
import pytest

from nestflow.cli.inputs import parse_value
from nestflow.cli.output import jsonable, shown, to_json
from nestflow.cli.units import BYTES, SECONDS, amount, size_text


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("3", 3),
        ("2.5", 2.5),
        ("abc", "abc"),
        ("true", True),
        ("null", None),
        ('"quoted"', "quoted"),
        ("[1, 2]", [1, 2]),
        ('{"a": 1}', {"a": 1}),
        ("", ""),
        ("NaN", "NaN"),  # not JSON, whatever Python's json module accepts
        ("Infinity", "Infinity"),
        ("3 apples", "3 apples"),
    ],
)
def test_an_input_value_is_json_when_valid_else_its_text(text: str, value: Any) -> None:
    assert parse_value(text) == value
    assert type(parse_value(text)) is type(value)


def test_values_json_cannot_hold_become_their_repr() -> None:
    value = {"set": {1}, 2: (1, 2), None: math.nan, "inf": math.inf, "ok": [1.5, "x", None]}
    assert jsonable(value) == {
        "set": "{1}",
        "2": [1, 2],
        "null": "nan",
        "inf": "inf",
        "ok": [1.5, "x", None],
    }
    assert json.loads(to_json({(1, 2): object})) == {"(1, 2)": repr(object)}


def test_a_string_result_is_shown_as_it_is_and_the_rest_as_indented_json() -> None:
    assert shown("hello\nworld") == "hello\nworld"
    assert shown(["a"]) == '[\n  "a"\n]'
    assert shown(3) == "3"


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90", 90), ("30s", 30), ("15m", 900), ("12h", 43200), ("7d", 604800), ("2W", 1209600)],
)
def test_durations(text: str, seconds: float) -> None:
    assert amount(text, SECONDS, "s", "") == seconds


@pytest.mark.parametrize(
    ("text", "count"),
    [("1000", 1000), ("1GB", 10**9), ("1.5 MB", 1_500_000), ("512MiB", 512 * 2**20), ("2kb", 2000)],
)
def test_byte_sizes(text: str, count: int) -> None:
    assert amount(text, BYTES, "b", "") == count


@pytest.mark.parametrize("text", ["", "GB", "1 GBs", "-1", "1e3"])
def test_an_amount_without_a_number_and_known_unit_is_refused(text: str) -> None:
    with pytest.raises(click.BadParameter, match="is not an amount such as"):
        amount(text, BYTES, "b", "1GB")


def test_sizes_are_shown_in_decimal_units() -> None:
    assert [size_text(n) for n in (0, 999, 1500, 2_000_000, 3 * 10**12)] == [
        "0 B",
        "999 B",
        "1.5 kB",
        "2.0 MB",
        "3.0 TB",
    ]
