"""Contracts of callable pipelines (SPEC 12.2, 12.10; the contract half of A12.1 and A12.2).

A contract is read from the content of a contract file, fitted to a real pipeline, described
as JSON Schema, and used to check the inputs of calls.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from typing import Any

import jsonschema  # type: ignore[import-untyped]  # installed with nbformat, a dev dependency
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nestflow import Pipeline, node
from nestflow.core.contracts import TYPES
from nestflow.core.names import input_name_problem
from nestflow.errors import ContractError, ServiceError
from nestflow.service.contract import Contract, ContractInput

SETTINGS = settings(max_examples=100, deadline=None, database=None)

# The contract file of SPEC 12.2, as yaml.safe_load returns it.
SPEC_EXAMPLE: dict[str, Any] = {
    "name": "summarise_thread",
    "source": "flows/summarise.yaml",
    "contract": {
        "inputs": [
            {"name": "thread", "type": "array", "required": True},
            {"name": "style", "type": "string", "required": False},
        ],
        "outputs": ["summary", "sentiment"],
        "response_key": "summary",
        "time_budget_s": 30,
    },
    "allow_cross_org": False,
}


@node(output_name="summary")
def summarise(thread: list[str], style: str = "short") -> str:
    return f"{style}: {len(thread)} messages"


@node(output_name="sentiment")
def judge(thread: list[str]) -> float:
    return 0.5


SUMMARISE = Pipeline([summarise, judge], name="summarise")


def contract_with(**changes: Any) -> dict[str, Any]:
    """The SPEC example with some keys of its ``contract`` block replaced (None removes)."""
    body = {**SPEC_EXAMPLE["contract"], **changes}
    return {**SPEC_EXAMPLE, "contract": {k: v for k, v in body.items() if v is not None}}


def problems_of(data: object) -> list[str]:
    """The problem lines of the ContractError that reading ``data`` raises."""
    with pytest.raises(ContractError) as caught:
        Contract.from_mapping(data)
    return [line[4:] for line in str(caught.value).splitlines()[1:]]


def fit_problems(contract: Contract, pipeline: Pipeline) -> list[str]:
    with pytest.raises(ContractError) as caught:
        contract.check(pipeline)
    return [line[4:] for line in str(caught.value).splitlines()[1:]]


# --- reading ----------------------------------------------------------------------------------


def test_the_spec_example_reads_into_its_values() -> None:
    contract = Contract.from_mapping(SPEC_EXAMPLE)
    assert contract == Contract(
        name="summarise_thread",
        source="flows/summarise.yaml",
        inputs=(ContractInput("thread", "array", True), ContractInput("style", "string", False)),
        outputs=("summary", "sentiment"),
        response_key="summary",
        time_budget_s=30,
        allow_cross_org=False,
    )
    assert contract.to_mapping() == SPEC_EXAMPLE


def test_omitted_keys_take_their_defaults() -> None:
    contract = Contract.from_mapping(
        {
            "name": "p",
            "source": "m:p",
            "contract": {"inputs": [{"name": "x"}], "outputs": ["y"], "response_key": "y"},
        }
    )
    assert contract.inputs == (ContractInput("x", "any", True),)
    assert (contract.time_budget_s, contract.allow_cross_org) == (30, False)
    no_inputs = Contract.from_mapping(
        {"name": "p", "source": "m:p", "contract": {"outputs": ["y"], "response_key": "y"}}
    )
    assert no_inputs.inputs == ()


@pytest.mark.parametrize("budget", [300, 0.5, 1, 299.9])
def test_a_budget_in_0_300_is_accepted(budget: float) -> None:
    assert Contract.from_mapping(contract_with(time_budget_s=budget)).time_budget_s == budget


@pytest.mark.parametrize("budget", [301, 300.5, 0, -1, math.inf, math.nan, True, "30", None])
def test_a12_1_a_budget_outside_0_300_is_a_contract_error(budget: Any) -> None:
    data = contract_with(time_budget_s=budget)
    if budget is None:
        data["contract"]["time_budget_s"] = None
    [problem] = problems_of(data)
    assert problem.startswith("contract.time_budget_s: expected a number of seconds in (0, 300]")
    assert f"found {budget!r}" in problem
    assert "up to 300" in problem


def test_a12_1_a_response_key_outside_the_outputs_is_a_contract_error() -> None:
    [problem] = problems_of(contract_with(response_key="verdict"))
    assert problem == (
        "contract.response_key: expected one of the outputs (summary, sentiment), found "
        "'verdict'; set it to the output that is the call's `result`, or add it to `outputs`"
    )


def test_every_problem_of_a_file_is_reported_at_once_with_expected_found_and_fix() -> None:
    data = {
        "name": "summarise thread",
        "source": "",
        "contract": {
            "inputs": [
                {"name": "thread", "type": "aray"},
                {"name": "thread", "required": "yes"},
                "style",
            ],
            "outputs": ["summary", "summary"],
            "respons_key": "summary",
            "time_budget_s": 301,
        },
        "allow_cross_org": "no",
    }
    with pytest.raises(ContractError) as caught:
        Contract.from_mapping(data)
    message = str(caught.value)
    assert message.startswith("Contract `summarise thread` is invalid (11 problems):\n")
    places = [line.split(":")[0].strip(" -") for line in message.splitlines()[1:]]
    assert places == [
        "name",
        "source",
        "allow_cross_org",
        "contract.respons_key",
        "contract.response_key",
        "contract.inputs[0].type",
        "contract.inputs[1].required",
        "contract.inputs[1].name",
        "contract.inputs[2]",
        "contract.outputs[1]",
        "contract.time_budget_s",
    ]
    lines = message.splitlines()[1:]
    assert all(" expected " in line and ", found " in line and "; " in line for line in lines)
    assert "found unknown key 'respons_key' (did you mean `response_key`?)" in message
    assert "found 'aray'; use one of those (did you mean `array`?)" in message


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (["name", "source"], "the contract file: expected a mapping with keys name, source"),
        ({"name": "p"}, "source: expected a required key, found nothing; add `source: ...`"),
        ({**SPEC_EXAMPLE, "descripton": "x"}, "descripton: expected one of the keys name,"),
        (contract_with(outputs=[]), "contract.outputs: expected a non-empty list"),
        (contract_with(outputs="summary"), "contract.outputs: expected a non-empty list"),
        (contract_with(inputs={"thread": "array"}), "contract.inputs: expected a list"),
        (contract_with(inputs=[{"name": "map_over"}]), "contract.inputs[0].name: expected a valid"),
        (contract_with(inputs=[{"nam": "x"}]), "contract.inputs[0].nam: expected one of the keys"),
        ({**SPEC_EXAMPLE, "name": "résumé"}, "name: expected an ASCII identifier"),
        ({**SPEC_EXAMPLE, "contract": "x"}, "contract: expected a mapping"),
    ],
)
def test_a_misshapen_file_names_the_place_and_what_was_expected(data: Any, expected: str) -> None:
    assert any(problem.startswith(expected) for problem in problems_of(data)), problems_of(data)


def test_each_missing_key_is_reported_once() -> None:
    assert problems_of({"name": "p", "source": "m:p", "contract": {}}) == [
        "contract.outputs: expected a required key, found nothing; add `outputs: ...`",
        "contract.response_key: expected a required key, found nothing; add `response_key: ...`",
    ]


def test_a_file_without_a_usable_name_is_called_the_contract() -> None:
    with pytest.raises(ContractError, match=r"^The contract is invalid \(1 problem\):"):
        Contract.from_mapping({"source": "m:p", "contract": contract_with()["contract"]})


def test_building_a_contract_directly_checks_the_same_rules() -> None:
    with pytest.raises(ContractError, match=r"contract.time_budget_s: .* found 301"):
        Contract("p", "m:p", (), ("y",), "y", time_budget_s=301)
    with pytest.raises(ContractError, match=r"contract.inputs\[0\].type: .* found 'text'"):
        Contract("p", "m:p", (ContractInput("x", "text"),), ("y",), "y")


def test_a_contract_error_is_a_service_error_and_a_value_error() -> None:
    with pytest.raises(ContractError) as caught:
        Contract.from_mapping({})
    assert isinstance(caught.value, ServiceError)
    assert isinstance(caught.value, ValueError)


# --- fitting the pipeline ---------------------------------------------------------------------


def test_a_contract_that_fits_its_pipeline_passes_the_check() -> None:
    Contract.from_mapping(SPEC_EXAMPLE).check(SUMMARISE)


def test_a12_1_an_input_the_pipeline_does_not_have_is_a_contract_error() -> None:
    inputs = [*SPEC_EXAMPLE["contract"]["inputs"], {"name": "styel", "type": "string"}]
    contract = Contract.from_mapping(contract_with(inputs=inputs))
    with pytest.raises(ContractError) as caught:
        contract.check(SUMMARISE)
    assert str(caught.value) == (
        "Contract `summarise_thread` does not fit pipeline `summarise` (1 problem):\n"
        "  - contract.inputs[2].name: expected an input of pipeline `summarise` (thread, style), "
        "found `styel` (did you mean `style`?); rename it to one of those or remove the entry"
    )


def test_a_required_pipeline_input_missing_from_the_contract_is_a_contract_error() -> None:
    contract = Contract.from_mapping(contract_with(inputs=[SPEC_EXAMPLE["contract"]["inputs"][1]]))
    assert fit_problems(contract, SUMMARISE.with_input_types({"thread": "array"})) == [
        (
            "contract.inputs: expected an entry for every input pipeline `summarise` requires, "
            "found none for `thread`; add {name: thread, type: array, required: true}"
        )
    ]


def test_an_output_the_pipeline_does_not_publish_is_a_contract_error() -> None:
    contract = Contract.from_mapping(contract_with(outputs=["summary", "sentimnt"]))
    assert fit_problems(contract, SUMMARISE) == [
        (
            "contract.outputs[1]: expected an output of pipeline `summarise` (summary, sentiment), "
            "found `sentimnt` (did you mean `sentiment`?); rename it or remove it"
        )
    ]


def test_every_mismatch_with_the_pipeline_is_reported_at_once() -> None:
    inputs = [{"name": "threads", "type": "array"}, {"name": "style", "type": "string"}]
    contract = Contract.from_mapping(contract_with(inputs=inputs, outputs=["summary", "mood"]))
    assert [p.split(":")[0] for p in fit_problems(contract, SUMMARISE)] == [
        "contract.inputs[0].name",
        "contract.inputs",
        "contract.outputs[1]",
    ]


def test_an_input_the_pipeline_requires_cannot_be_optional_in_the_contract() -> None:
    inputs = [{"name": "thread", "type": "array", "required": False}]
    contract = Contract.from_mapping(contract_with(inputs=inputs))
    assert fit_problems(contract, SUMMARISE) == [
        (
            "contract.inputs[0].required: expected true: pipeline `summarise` cannot run "
            "without it, found false; set required: true, or give `thread` a default in the "
            "pipeline"
        )
    ]
    # Bound, the input has a default: calls may leave it out.
    contract.check(SUMMARISE.bind(thread=[]))


@pytest.mark.parametrize(
    ("declared", "contracted", "fits"),
    [
        ("array", "array", True),
        ("any", "array", True),
        ("number", "integer", True),
        ("array", "any", False),
        ("array", "string", False),
        ("integer", "number", False),
    ],
)
def test_a_contract_type_may_narrow_the_pipeline_type_but_not_widen_it(
    declared: str, contracted: str, fits: bool
) -> None:
    pipeline = SUMMARISE.with_input_types({"thread": declared})
    inputs = [{"name": "thread", "type": contracted}]
    contract = Contract.from_mapping(contract_with(inputs=inputs))
    if fits:
        contract.check(pipeline)
    else:
        assert fit_problems(contract, pipeline) == [
            (
                f"contract.inputs[0].type: expected {declared} (or narrower), the type pipeline "
                f"`summarise` declares for `thread`, found {contracted}; set type: {declared}"
            )
        ]


def test_a_declared_input_no_node_reads_may_be_in_the_contract() -> None:
    pipeline = SUMMARISE.with_input_types({"locale": "string"}, accept_unused=True)
    inputs = [*SPEC_EXAMPLE["contract"]["inputs"], {"name": "locale", "type": "string"}]
    Contract.from_mapping(contract_with(inputs=inputs)).check(pipeline)


# --- describing -------------------------------------------------------------------------------


def test_the_get_document_has_the_shape_of_spec_12_10() -> None:
    assert Contract.from_mapping(SPEC_EXAMPLE).to_document() == {
        "name": "summarise_thread",
        "inputs_schema": {
            "type": "object",
            "properties": {"thread": {"type": "array"}, "style": {"type": "string"}},
            "required": ["thread"],
            "additionalProperties": False,
        },
        "outputs": ["summary", "sentiment"],
        "response_key": "summary",
        "time_budget_s": 30,
    }


def test_an_input_of_any_type_is_described_by_the_empty_schema() -> None:
    contract = Contract.from_mapping(contract_with(inputs=[{"name": "thread"}]))
    assert contract.to_json_schema()["properties"] == {"thread": {}}
    jsonschema.Draft202012Validator.check_schema(contract.to_json_schema())


# --- checking calls ---------------------------------------------------------------------------


def test_valid_inputs_have_no_problems_and_optional_ones_may_be_left_out() -> None:
    contract = Contract.from_mapping(SPEC_EXAMPLE)
    assert contract.input_problems({"thread": ["hi"], "style": "terse"}) == []
    assert contract.input_problems({"thread": []}) == []


def test_a12_2_a_missing_required_input_is_listed_by_name() -> None:
    assert Contract.from_mapping(SPEC_EXAMPLE).input_problems({"style": "terse"}) == [
        (
            "input `thread` (array) is required by `summarise_thread` and was not given; "
            'add it to "inputs"'
        )
    ]


def test_missing_unknown_and_ill_typed_inputs_are_listed_together() -> None:
    problems = Contract.from_mapping(SPEC_EXAMPLE).input_problems({"styel": "x", "thread": "hi"})
    assert problems == [
        (
            "input `styel` is not in the contract of `summarise_thread` (did you mean `style`?); "
            "its inputs are: thread, style"
        ),
        "input `thread` must be of type array, got str 'hi'",
    ]


# --- properties -------------------------------------------------------------------------------

# Names the contract accepts for inputs, outputs and itself (run()'s own keywords excluded).
names = st.from_regex(r"[a-z][a-z0-9_]{0,7}", fullmatch=True).filter(
    lambda n: input_name_problem(n) is None
)


@st.composite
def contracts(draw: st.DrawFn) -> Contract:
    inputs = draw(st.lists(names, unique=True, max_size=4))
    outputs = draw(st.lists(names, unique=True, min_size=1, max_size=3))
    return Contract(
        name=draw(names),
        source=draw(st.sampled_from(["flows/a.yaml", "pkg.mod:pipeline"])),
        inputs=tuple(
            ContractInput(n, draw(st.sampled_from(TYPES)), draw(st.booleans())) for n in inputs
        ),
        outputs=tuple(outputs),
        response_key=draw(st.sampled_from(outputs)),
        time_budget_s=draw(st.floats(0.001, 300) | st.integers(1, 300)),
        allow_cross_org=draw(st.booleans()),
    )


@SETTINGS
@given(contracts())
def test_a_contract_survives_a_json_round_trip_of_its_file(contract: Contract) -> None:
    assert Contract.from_mapping(json.loads(json.dumps(contract.to_mapping()))) == contract


# JSON values, with no float that is a whole number: JSON Schema counts 1.0 as an integer.
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False).filter(lambda f: not f.is_integer())
    | st.text(max_size=4),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner),
    max_leaves=6,
)


@SETTINGS
@given(contracts(), st.dictionaries(names, json_values, max_size=5))
def test_the_json_schema_accepts_exactly_the_inputs_the_contract_accepts(
    contract: Contract, inputs: dict[str, Any]
) -> None:
    schema_accepts = jsonschema.Draft202012Validator(contract.to_json_schema()).is_valid(inputs)
    assert schema_accepts == (contract.input_problems(inputs) == [])


def test_contracts_load_without_a_web_framework() -> None:
    code = (
        "import sys, nestflow.service.contract, nestflow.service.signing\n"
        "print(sorted(m for m in ('fastapi', 'starlette', 'httpx', 'pydantic') "
        "if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
