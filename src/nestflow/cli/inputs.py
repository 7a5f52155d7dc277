"""Run inputs from the command line: ``--input name=value`` and ``--inputs-json``.

A value is read as JSON when it is valid JSON (``n=3`` is an integer, ``flags=[1,2]`` a list)
and kept as the text otherwise (``name=abc``). An input the workflow declares as ``string``
keeps its text unless it is written as a JSON string, so ``--input code=007`` stays
``"007"``. The run checks the values against the declared types before anything runs.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from nestflow.cli.problems import InvalidCall


def gather(
    pairs: Sequence[str], inputs_json: str | None, declared: Mapping[str, str]
) -> dict[str, Any]:
    """The run's inputs: ``--inputs-json`` first, then each ``--input`` (which wins)."""
    values = _json_inputs(inputs_json) if inputs_json is not None else {}
    given: set[str] = set()
    for pair in pairs:
        name, value = _pair(pair, declared)
        if name in given:
            raise InvalidCall(f"--input `{name}` is given twice; give each input once.")
        given.add(name)
        values[name] = value
    return values  # the run checks them against the declared types (Pipeline.input_types)


def parse_value(text: str) -> Any:
    """``text`` read as JSON when it is valid JSON (not NaN or Infinity), else ``text``."""
    try:
        return json.loads(text, parse_constant=_refuse)
    except ValueError:
        return text


def _pair(pair: str, declared: Mapping[str, str]) -> tuple[str, Any]:
    name, equals, text = pair.partition("=")
    name = name.strip()
    if not equals or not name:
        raise InvalidCall(f"--input takes NAME=VALUE (for example n=3), got {pair!r}.")
    value = parse_value(text)
    if declared.get(name) == "string" and not isinstance(value, str):
        value = text  # written for a string input: the text as it stands
    return name, value


def _json_inputs(given: str) -> dict[str, Any]:
    source = "--inputs-json"
    text = given
    if given.startswith("@"):
        source = given[1:]
        try:
            text = Path(source).read_text(encoding="utf-8")
        except OSError as exc:
            raise InvalidCall(
                f"cannot read --inputs-json file `{source}`: {exc.strerror}."
            ) from None
    try:
        values = json.loads(text)
    except ValueError as exc:
        raise InvalidCall(f"{source} is not valid JSON: {exc}.") from None
    if not isinstance(values, dict):
        raise InvalidCall(
            f"{source} must be a JSON object of input names and values, such as "
            f'{{"n": 3}}; got {type(values).__name__}.'
        )
    return values


def _refuse(constant: str) -> Any:
    raise ValueError(f"{constant} is not JSON")
