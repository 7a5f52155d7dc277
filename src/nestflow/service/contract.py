"""The typed contract of a callable pipeline (SPEC 12.2, 12.10): what callers send and get back.

A contract file names the pipeline, its source and the contract proper:

.. code-block:: yaml

    name: summarise_thread
    source: flows/summarise.yaml
    contract:
      inputs:
        - {name: thread, type: array, required: true}
        - {name: style, type: string, required: false}
      outputs: [summary, sentiment]
      response_key: summary
      time_budget_s: 30            # default 30, maximum 300
    allow_cross_org: false

A contract is checked three times, and each time every problem is reported at once: when it is
read (``Contract.from_mapping``), against the loaded pipeline when it is registered
(``Contract.check``), and against the inputs of every call (``Contract.input_problems``, the
422 of a call). Nothing here does I/O or imports a web framework, so the server, the command
line and the client share one reading of contracts.

>>> contract = Contract.from_mapping({
...     "name": "summarise_thread", "source": "flows/summarise.yaml",
...     "contract": {"inputs": [{"name": "thread", "type": "array"}],
...                  "outputs": ["summary"], "response_key": "summary"}})
>>> contract.time_budget_s, contract.allow_cross_org, contract.inputs[0].required
(30, False, True)
>>> contract.input_problems({"thread": "not a list"})
["input `thread` must be of type array, got str 'not a list'"]
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from nestflow.core.contracts import TYPES, type_problems
from nestflow.core.names import input_name_problem, name_problem
from nestflow.errors import ContractError
from nestflow.spec.schema import closest

if TYPE_CHECKING:
    from nestflow.core.pipeline import Pipeline

DEFAULT_TIME_BUDGET_S: Final = 30
MAX_TIME_BUDGET_S: Final = 300
"""Budgets lie in (0, ``MAX_TIME_BUDGET_S``] seconds; a longer run should be streamed."""

FILE_KEYS: Final = ("name", "source", "contract", "allow_cross_org")
CONTRACT_KEYS: Final = ("inputs", "outputs", "response_key", "time_budget_s")
INPUT_KEYS: Final = ("name", "type", "required")

_MISSING: Final = object()
"""A key absent from the contract file; shown as "nothing" in problems."""


@dataclass(frozen=True, slots=True)
class ContractInput:
    """One input a caller may send: its name, its type and whether it must be sent.

    ``type`` defaults to ``any`` and ``required`` to true, as a workflow input with no type
    is ``any`` and one with no default is required (SPEC 11.1).
    """

    name: str
    type: str = "any"
    required: bool = True

    def to_mapping(self) -> dict[str, Any]:
        """The entry as written in a contract file."""
        return {"name": self.name, "type": self.type, "required": self.required}


@dataclass(frozen=True, slots=True)
class Contract:
    """The interface under which a pipeline is published: inputs, outputs, reply and budget.

    Built with ``from_mapping``; building one directly checks the same rules, so a
    ``Contract`` is always valid on its own (its fit to a pipeline is ``check``'s business).
    """

    name: str
    source: str
    inputs: tuple[ContractInput, ...]
    outputs: tuple[str, ...]
    response_key: str
    time_budget_s: float = DEFAULT_TIME_BUDGET_S
    allow_cross_org: bool = False

    def __post_init__(self) -> None:
        problems = _file_problems(self.to_mapping())
        if problems:
            raise ContractError(_report(f"Contract `{self.name}` is invalid", problems))

    @classmethod
    def from_mapping(cls, data: object) -> Contract:
        """Read a contract file's content (its YAML, loaded), reporting every problem at once.

        Raises ``ContractError`` whose message lists, for each problem, where it is, what was
        expected, what was found and how to fix it.
        """
        problems = _file_problems(data)
        if problems:
            name = data.get("name") if isinstance(data, Mapping) else None
            title = f"Contract `{name}`" if isinstance(name, str) else "The contract"
            raise ContractError(_report(f"{title} is invalid", problems))
        assert isinstance(data, Mapping)
        body = data["contract"]
        # Keys left out take the defaults of the fields, declared once, on the class.
        given = {k: data[k] for k in ("allow_cross_org",) if k in data}
        given |= {k: body[k] for k in ("time_budget_s",) if k in body}
        return cls(
            name=data["name"],
            source=data["source"],
            inputs=tuple(ContractInput(**entry) for entry in body.get("inputs", ())),
            outputs=tuple(body["outputs"]),
            response_key=body["response_key"],
            **given,
        )

    def to_mapping(self) -> dict[str, Any]:
        """The contract file's content; ``from_mapping`` reads it back to an equal contract."""
        return {
            "name": self.name,
            "source": self.source,
            "contract": {
                "inputs": [entry.to_mapping() for entry in self.inputs],
                "outputs": list(self.outputs),
                "response_key": self.response_key,
                "time_budget_s": self.time_budget_s,
            },
            "allow_cross_org": self.allow_cross_org,
        }

    def check(self, pipeline: Pipeline) -> None:
        """Raise ``ContractError`` unless ``pipeline`` can serve this contract.

        Every contract input must be an input of the pipeline, with a type no wider than the
        one the pipeline declares; every input the pipeline requires must be a required
        contract input; every contract output must be a pipeline output.
        """
        problems = [*_input_fit(self, pipeline), *_output_fit(self, pipeline)]
        if problems:
            title = f"Contract `{self.name}` does not fit pipeline `{pipeline.name}`"
            raise ContractError(_report(title, problems))

    def input_problems(self, inputs: Mapping[str, Any]) -> list[str]:
        """Why a call's ``inputs`` break the contract: missing, unknown or ill-typed names."""
        names = tuple(entry.name for entry in self.inputs)
        missing = [
            f"input `{entry.name}` ({entry.type}) is required by `{self.name}` and was not "
            f'given; add it to "inputs"'
            for entry in self.inputs
            if entry.required and entry.name not in inputs
        ]
        unknown = [
            f"input `{name}` is not in the contract of `{self.name}`{closest(str(name), names)}; "
            f"its inputs are: {_listed(names)}"
            for name in inputs
            if name not in names
        ]
        typed = type_problems({entry.name: entry.type for entry in self.inputs}, inputs)
        return [*missing, *unknown, *typed]

    def to_json_schema(self) -> dict[str, Any]:
        """The JSON Schema of a call's ``inputs`` object: ``inputs_schema`` in SPEC 12.10.

        ``any`` has no JSON Schema type name, so its property is the empty schema ``{}``,
        which accepts every value.
        """
        return {
            "type": "object",
            "properties": {
                entry.name: {} if entry.type == "any" else {"type": entry.type}
                for entry in self.inputs
            },
            "required": [entry.name for entry in self.inputs if entry.required],
            "additionalProperties": False,
        }

    def to_document(self) -> dict[str, Any]:
        """What ``GET /v1/call/{org}/{pipeline}`` returns (SPEC 12.10)."""
        return {
            "name": self.name,
            "inputs_schema": self.to_json_schema(),
            "outputs": list(self.outputs),
            "response_key": self.response_key,
            "time_budget_s": self.time_budget_s,
        }


# --- reading a contract file -------------------------------------------------------------------


class _Problems:
    """Problems of a contract, each saying where, what was expected and found, and the fix."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def add(self, where: str, expected: str, found: str, fix: str) -> None:
        self.lines.append(f"{where}: expected {expected}, found {found}; {fix}")

    def expect(self, ok: bool, where: str, value: object, expected: str, fix: str) -> None:
        """Report ``value`` (shown as its repr) unless ``ok``.

        An absent key is no problem here: an optional one takes its field's default, and
        ``mapping`` has reported a required one.
        """
        if not ok and value is not _MISSING:
            self.add(where, expected, _shown(value), fix)

    def mapping(
        self, value: object, where: str, allowed: tuple[str, ...], required: tuple[str, ...]
    ) -> Mapping[str, Any] | None:
        """``value`` when it is a mapping, after reporting unknown and missing keys.

        ``where`` is the mapping's place; an empty one is the file itself.
        """
        if not isinstance(value, Mapping):
            expected = f"a mapping with keys {_listed(allowed)}"
            self.add(where or "the contract file", expected, _shown(value), "write `key: value`")
            return None
        prefix = f"{where}." if where else ""
        for key in value:
            if key not in allowed:
                self.add(
                    f"{prefix}{key}",
                    f"one of the keys {_listed(allowed)}",
                    f"unknown key {key!r}{closest(str(key), allowed)}",
                    "remove it or correct its spelling",
                )
        for key in required:
            if key not in value:
                self.add(f"{prefix}{key}", "a required key", "nothing", f"add `{key}: ...`")
        return value


def _file_problems(data: object) -> list[str]:
    """Every problem of a contract file's content; an empty list when it is valid."""
    found = _Problems()
    top = found.mapping(data, "", FILE_KEYS, ("name", "source", "contract"))
    if top is None:
        return found.lines
    _top_problems(top, found)
    if "contract" in top:
        _body_problems(top["contract"], found)
    return found.lines


def _top_problems(top: Mapping[str, Any], found: _Problems) -> None:
    name, source = top.get("name", _MISSING), top.get("source", _MISSING)
    found.expect(
        isinstance(name, str) and name.isascii() and name_problem(name) is None,
        "name",
        name,
        "an ASCII identifier: it is the {pipeline} of /v1/call/{org}/{pipeline}",
        "rename it, e.g. `summarise_thread`",
    )
    found.expect(
        isinstance(source, str) and source.strip() != "",
        "source",
        source,
        "a YAML file path or `module:attribute`",
        "name the pipeline, e.g. `flows/summarise.yaml` or `flows.summarise:pipeline`",
    )
    allow = top.get("allow_cross_org", _MISSING)
    found.expect(
        isinstance(allow, bool), "allow_cross_org", allow, "true or false", "write true or false"
    )


def _body_problems(value: object, found: _Problems) -> None:
    body = found.mapping(value, "contract", CONTRACT_KEYS, ("outputs", "response_key"))
    if body is None:
        return
    _inputs_problems(body.get("inputs", []), found)  # no inputs: a pipeline that needs none
    outputs = _outputs_problems(body.get("outputs", _MISSING), found)
    key = body.get("response_key", _MISSING)
    found.expect(
        isinstance(key, str) and key in outputs,
        "contract.response_key",
        key,
        f"one of the outputs ({_listed(outputs)})",
        "set it to the output that is the call's `result`, or add it to `outputs`",
    )
    budget = body.get("time_budget_s", _MISSING)
    found.expect(
        _is_budget(budget),
        "contract.time_budget_s",
        budget,
        f"a number of seconds in (0, {MAX_TIME_BUDGET_S}]",
        f"set a positive number of seconds up to {MAX_TIME_BUDGET_S}; longer runs are called "
        "in streaming mode",
    )


def _is_budget(value: object) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return math.isfinite(value) and 0 < value <= MAX_TIME_BUDGET_S


def _inputs_problems(value: object, found: _Problems) -> None:
    if not isinstance(value, list):
        found.add(
            "contract.inputs",
            "a list of {name, type, required} entries",
            _shown(value),
            "write one `- {name: ..., type: ..., required: ...}` line per input",
        )
        return
    seen: set[str] = set()
    for index, entry in enumerate(value):
        where = f"contract.inputs[{index}]"
        fields = found.mapping(entry, where, INPUT_KEYS, ("name",))
        if fields is None:
            continue
        _input_problems(fields, where, found)
        name = fields.get("name")
        if isinstance(name, str):
            found.expect(
                name not in seen,
                f"{where}.name",
                name,
                "a name no earlier input has",
                "remove the duplicate entry",
            )
            seen.add(name)


def _input_problems(fields: Mapping[str, Any], where: str, found: _Problems) -> None:
    name = fields.get("name", _MISSING)
    if name is not _MISSING and (problem := input_name_problem(name)) is not None:
        found.add(f"{where}.name", "a valid input name", f"{_shown(name)} ({problem})", "rename it")
    kind = fields.get("type", _MISSING)
    found.expect(
        kind in TYPES,
        f"{where}.type",
        kind,
        f"one of {_listed(TYPES)}",
        f"use one of those{closest(str(kind), TYPES)}",
    )
    required = fields.get("required", _MISSING)
    found.expect(
        isinstance(required, bool),
        f"{where}.required",
        required,
        "true or false",
        "write true or false",
    )


def _outputs_problems(value: object, found: _Problems) -> tuple[str, ...]:
    """The valid output names of ``value``, after reporting what is wrong with it."""
    if value is _MISSING:
        return ()
    if not isinstance(value, list) or not value:
        found.add(
            "contract.outputs",
            "a non-empty list of pipeline output names",
            _shown(value),
            "list the outputs a call returns, e.g. [summary, sentiment]",
        )
        return ()
    valid: list[str] = []
    for index, output in enumerate(value):
        ok = isinstance(output, str) and output != "" and output not in valid
        found.expect(
            ok,
            f"contract.outputs[{index}]",
            output,
            "a pipeline output name listed once",
            "correct or remove it",
        )
        if ok:
            valid.append(output)
    return tuple(valid)


# --- fitting a pipeline ------------------------------------------------------------------------


def _input_fit(contract: Contract, pipeline: Pipeline) -> list[str]:
    found = _Problems()
    # A workflow may declare inputs no step reads (SPEC 11.1); runs accept them, so may calls.
    accepted = (*pipeline.inputs, *(n for n in pipeline.input_types if n not in pipeline.inputs))
    for index, entry in enumerate(contract.inputs):
        _entry_fit(entry, f"contract.inputs[{index}]", pipeline, accepted, found)
    declared = {entry.name for entry in contract.inputs}
    for name in pipeline.required_inputs:
        if name not in declared:
            kind = pipeline.input_types.get(name, "any")
            found.add(
                "contract.inputs",
                f"an entry for every input pipeline `{pipeline.name}` requires",
                f"none for `{name}`",
                f"add {{name: {name}, type: {kind}, required: true}}",
            )
    return found.lines


def _entry_fit(
    entry: ContractInput,
    where: str,
    pipeline: Pipeline,
    accepted: tuple[str, ...],
    found: _Problems,
) -> None:
    """Report a contract input the pipeline lacks, or would refuse although the call passed."""
    if entry.name not in accepted:
        found.add(
            f"{where}.name",
            f"an input of pipeline `{pipeline.name}` ({_listed(accepted)})",
            f"`{entry.name}`{closest(entry.name, accepted)}",
            "rename it to one of those or remove the entry",
        )
        return
    if not entry.required and entry.name in pipeline.required_inputs:
        found.add(
            f"{where}.required",
            f"true: pipeline `{pipeline.name}` cannot run without it",
            "false",
            f"set required: true, or give `{entry.name}` a default in the pipeline",
        )
    declared = pipeline.input_types.get(entry.name, "any")
    if not _narrows(entry.type, declared):
        found.add(
            f"{where}.type",
            f"{declared} (or narrower), the type pipeline `{pipeline.name}` "
            f"declares for `{entry.name}`",
            entry.type,
            f"set type: {declared}",
        )


def _narrows(kind: str, declared: str) -> bool:
    """Whether every value of type ``kind`` is also of type ``declared``."""
    return declared in ("any", kind) or (kind, declared) == ("integer", "number")


def _output_fit(contract: Contract, pipeline: Pipeline) -> list[str]:
    found = _Problems()
    for index, output in enumerate(contract.outputs):
        if output not in pipeline.outputs:
            found.add(
                f"contract.outputs[{index}]",
                f"an output of pipeline `{pipeline.name}` ({_listed(pipeline.outputs)})",
                f"`{output}`{closest(output, pipeline.outputs)}",
                "rename it or remove it",
            )
    return found.lines


def _shown(value: object) -> str:
    return "nothing" if value is _MISSING else f"{value!r:.60}"


def _listed(names: Collection[str]) -> str:
    return ", ".join(names) if names else "none"


def _report(title: str, problems: list[str]) -> str:
    count = "1 problem" if len(problems) == 1 else f"{len(problems)} problems"
    return f"{title} ({count}):\n" + "\n".join(f"  - {problem}" for problem in problems)
