"""Templates in workflow values (SPEC 11.3, 11.4): types kept, names checked, nothing run.

Values are compiled against a ``Scope`` at load time and rendered against a context at run
time. The last tests feed random template text to the compiler and to the renderer: they
only ever succeed or raise ``TemplateError``, and never call anything or touch a file.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import sys
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nestflow.errors import SpecValidationError, TemplateError
from nestflow.spec.templates import Compiled, Raw, Reference, Scope, Where, compile_value

WHERE = Where("flow.yaml", 4, 12)

SCOPE = Scope(
    steps={"count": ("count",), "fetch": ("page", "meta"), "primary": ("primary",)},
    inputs=("n", "items", "language", "configs", "text", "record", "point", "empty"),
    global_vars=("model",),
    workflow=("name", "language"),
)
LOOP_SCOPE = SCOPE.with_loop_vars("doc")


@dataclass
class Record:
    title: str
    _secret: str = "hidden"

    def shout(self) -> str:
        return self.title.upper()


class Point(NamedTuple):
    x: int
    y: int


def context(**steps: dict[str, Any]) -> dict[str, Any]:
    return {
        "inputs": {
            "n": 5,
            "items": [{"name": "a"}, {"name": "b"}, {"name": "c"}],
            "language": "en",
            "configs": {"en": {"greeting": "hello"}, "fr": {"greeting": "bonjour"}},
            "text": " Mixed Case ",
            "record": Record("title"),
            "point": Point(1, 2),
            "empty": [],
        },
        "steps": {
            "count": {"result": 42, "count": 42, "status": "ok", "error": None},
            "fetch": {"result": {"page": {"body": "text"}, "meta": [1, 2]}},
            **steps,
        },
        "workflow": {"name": "review", "language": "en"},
        "global_vars": {"model": "small-v2"},
        "doc": {"body": "the body"},
        "loop": {"index": 1, "first": False, "last": True, "length": 2},
    }


def render(value: Any, scope: Scope = LOOP_SCOPE, **steps: dict[str, Any]) -> Any:
    return compile_value(value, scope, WHERE).render(context(**steps), "report")


def problems_of(value: Any, scope: Scope = SCOPE) -> list[tuple[str, int, int, str]]:
    with pytest.raises(TemplateError) as caught:
        compile_value(value, scope, WHERE)
    assert isinstance(caught.value, SpecValidationError)
    return caught.value.problems


# --- A11.3: types ---------------------------------------------------------------------------


def test_a11_3_a_string_that_is_one_template_keeps_the_value_type() -> None:
    assert render("{{steps.count.result}}") == 42
    assert type(render("{{steps.count.result}}")) is int


def test_a11_3_a_template_embedded_in_text_yields_a_string() -> None:
    assert render("n={{steps.count.result}}") == "n=42"


def test_a11_3_a_reference_to_a_mapping_delivers_the_mapping() -> None:
    assert render("{{inputs.configs}}") == context()["inputs"]["configs"]
    assert render("{{steps.fetch.result}}") == {"page": {"body": "text"}, "meta": [1, 2]}


def test_a11_3_arithmetic_and_length_deliver_integers() -> None:
    assert render("{{inputs.n * 2 - 1}}") == 9
    assert type(render("{{inputs.n * 2 - 1}}")) is int
    assert render("{{inputs.items | length}}") == 3
    assert type(render("{{inputs.items | length}}")) is int


@pytest.mark.parametrize(
    ("template", "refusal"),
    [("{{steps.x.result.__class__}}", "`__class__` starts with `_`"), ("{{len(x)}}", "`len(...)`")],
)
def test_a11_3_private_attributes_and_calls_fail_at_compile_time(
    template: str, refusal: str
) -> None:
    assert any(refusal in message for *_, message in problems_of(template))


def test_constants_keep_their_type_too() -> None:
    assert render("{{ 1 + 2 }}") == 3
    assert render("{{ '42' }}") == "42"
    assert render("{{ [1, 'a'] }}") == [1, "a"]
    assert render("{{ null }}") is None


def test_embedded_values_are_written_by_str_and_containers_as_compact_json() -> None:
    rendered = render("{{inputs.n}} {{inputs.items[0:2]}} {{ null }} {{ true }} {{ 0.5 }}")
    assert rendered == '5 [{"name":"a"},{"name":"b"}] None True 0.5'
    assert render("cfg: {{inputs.configs.fr}}") == 'cfg: {"greeting":"bonjour"}'


def test_other_values_in_text_are_written_by_str_even_inside_containers() -> None:
    ctx = {"inputs": {"p": Point(1, 2), "tags": frozenset({"t"}), "obj": 1j}}
    scope = Scope(inputs=("p", "tags", "obj"))
    text = "{{inputs.p}} {{inputs.obj}} {{ [inputs.tags, inputs.obj] }}"
    assert compile_value(text, scope, WHERE).render(ctx, "s") == '[1,2] 1j [["t"],"1j"]'


def test_a_string_without_templates_is_a_literal_returned_as_it_is() -> None:
    text = "plain } text { with braces }}"
    compiled = compile_value(text, SCOPE, WHERE)
    assert compiled.is_literal
    assert compiled.references == ()
    assert compiled.render({}, "s") is text


def test_a_raw_string_is_never_interpreted() -> None:
    for text in ("{{inputs.n}}", "{{ len(x) }}", "{% for x in y %}", "{{ unclosed"):
        compiled = compile_value(Raw(text), SCOPE, WHERE)
        assert compiled.is_literal
        assert compiled.render({}, "s") == text


def test_templates_in_nested_lists_and_mappings_are_rendered() -> None:
    value = {"a": ["{{inputs.n}}", {"b": "x{{inputs.language}}"}], "c": 3, "d": Raw("{{n}}")}
    compiled = compile_value(value, SCOPE, WHERE)
    assert not compiled.is_literal
    assert compiled.render(context(), "s") == {"a": [5, {"b": "xen"}], "c": 3, "d": "{{n}}"}
    assert [r.path for r in compiled.references] == [("n",), ("language",)]


def test_a_container_without_templates_is_a_literal() -> None:
    value = {"a": [1, "two"], "b": Raw("{{x}}")}
    compiled = compile_value(value, SCOPE, WHERE)
    assert compiled.is_literal
    assert compiled.render({}, "s") is value


# --- roots ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{steps.count.count}}", 42),
        ("{{steps.fetch.page.body}}", "text"),
        ("{{steps.fetch.result.meta}}", [1, 2]),
        ("{{steps.count.status}}", "ok"),
        ("{{steps.fetch.status}}", "ok"),
        ("{{steps.count.error}}", None),
        ("{{inputs.language}}", "en"),
        ("{{workflow.name}}", "review"),
        ("{{global_vars.model}}", "small-v2"),
        ("{{doc.body}}", "the body"),
        ("{{doc}}", {"body": "the body"}),
        ("{{loop.index}}", 1),
        ("{{loop.first}}", False),
        ("{{loop.last}}", True),
        ("{{loop.length}}", 2),
    ],
)
def test_each_root_reads_its_part_of_the_context(template: str, expected: Any) -> None:
    assert render(template) == expected


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{{steps.cuont.result}}", "there is no step `cuont` to read here (did you mean `count`?)"),
        ("{{steps.count.value}}", "step `count` has no `value`"),
        ("{{steps.count}}", "`steps.count` needs a field"),
        ("{{steps[inputs.language].result}}", "`steps` must be followed by a step name"),
        ("{{inputs.nn}}", "there is no input `nn` (did you mean `n`?)"),
        ("{{inputs}}", "`inputs` must be followed by a name written out"),
        ("{{global_vars.mode}}", "there is no global variable `mode`"),
        ("{{workflow.owner}}", "there is no workflow key `owner`"),
        ("{{loop.index}}", "`loop` exists only inside a `for_each` step"),
        ("{{doc.body}}", "`doc` is not a name templates can read"),
        ("{{settings.x}}", "they read `steps`, `inputs`, `workflow`, `global_vars`"),
    ],
)
def test_a_name_that_does_not_exist_where_written_fails_at_compile_time(
    template: str, message: str
) -> None:
    [(_, _, _, found)] = problems_of(template)
    assert message in found
    assert template in found


def test_loop_needs_one_of_its_fields() -> None:
    [(*_, found)] = problems_of("{{loop.count}}", LOOP_SCOPE)
    assert "`index`, `first`, `last`, `length`" in found


# --- segments and lookups -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{inputs.items.0.name}}", "a"),
        ("{{inputs.items[0].name}}", "a"),
        ("{{inputs.items[-1].name}}", "c"),
        ("{{inputs.items['1'] | default('no string index')}}", "no string index"),
        ("{{inputs.configs[inputs.language].greeting}}", "hello"),
        ("{{inputs.configs['fr']['greeting']}}", "bonjour"),
        ("{{inputs.items[0:2]}}", [{"name": "a"}, {"name": "b"}]),
        ("{{inputs.items[1:]}}", [{"name": "b"}, {"name": "c"}]),
        ("{{inputs.items[inputs.n - 5:1]}}", [{"name": "a"}]),
        ("{{inputs.record.title}}", "title"),
        ("{{inputs.point.y}}", 2),
        ("{{inputs.point.0}}", 1),
    ],
)
def test_segments_are_names_indexes_computed_keys_and_slices(template: str, expected: Any) -> None:
    assert render(template) == expected


def test_a_mapping_key_wins_over_a_method_of_the_same_name() -> None:
    ctx = {"inputs": {"d": {"items": "the key", "keys": 1}}}
    scope = Scope(inputs=("d",))
    assert compile_value("{{inputs.d.items}}", scope, WHERE).render(ctx, "s") == "the key"
    assert compile_value("{{inputs.d['keys'] + 1}}", scope, WHERE).render(ctx, "s") == 2


@pytest.mark.parametrize(
    "template",
    [
        "{{inputs.record.shout}}",
        "{{inputs.text.upper}}",
        "{{inputs.items.append}}",
        "{{inputs.record['_secret']}}",
        "{{inputs.point.count}}",
    ],
)
def test_methods_and_private_fields_are_never_reached(template: str) -> None:
    with pytest.raises(TemplateError, match="has no value"):
        render(template)


def test_pydantic_models_expose_their_fields_only(monkeypatch: pytest.MonkeyPatch) -> None:
    class BaseModel:  # what nestflow reads of pydantic: the class's field tables
        model_fields: dict[str, Any] = {}
        model_computed_fields: dict[str, Any] = {}

    class User(BaseModel):
        model_fields = {"name": None}
        model_computed_fields = {"label": None}
        name = "ada"
        label = "Ada"
        other = "not a field"

    monkeypatch.setitem(sys.modules, "pydantic", types.SimpleNamespace(BaseModel=BaseModel))
    scope = Scope(inputs=("user",))
    ctx = {"inputs": {"user": User()}}
    assert compile_value("{{inputs.user.name}}", scope, WHERE).render(ctx, "s") == "ada"
    assert compile_value("{{inputs.user.label}}", scope, WHERE).render(ctx, "s") == "Ada"
    with pytest.raises(TemplateError, match="`other` is not a field of this User"):
        compile_value("{{inputs.user.other}}", scope, WHERE).render(ctx, "s")


# --- expressions ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ 'single' + \"double\" }}", "singledouble"),
        ("{{ [1, 2.5, true, false, null] }}", [1, 2.5, True, False, None]),
        ("{{ {'a': inputs.n, 'b': [1]} }}", {"a": 5, "b": [1]}),
        ("{{ inputs.n + 1 }}", 6),
        ("{{ inputs.n - 7 }}", -2),
        ("{{ inputs.n * 3 }}", 15),
        ("{{ inputs.n / 2 }}", 2.5),
        ("{{ inputs.n // 2 }}", 2),
        ("{{ inputs.n % 3 }}", 2),
        ("{{ -inputs.n }}", -5),
        ("{{ (inputs.n + 1) * 2 }}", 12),
        ("{{ [inputs.language] * 2 }}", ["en", "en"]),
        ("{{ inputs.n == 5 }}", True),
        ("{{ inputs.n != 5 }}", False),
        ("{{ inputs.n < 5 }}", False),
        ("{{ inputs.n <= 5 }}", True),
        ("{{ inputs.n > 4 }}", True),
        ("{{ inputs.n >= 6 }}", False),
        ("{{ 'en' in inputs.configs }}", True),
        ("{{ 'de' not in inputs.configs }}", True),
        ("{{ inputs.n > 1 and inputs.n < 3 }}", False),
        ("{{ inputs.n > 1 or false }}", True),
        ("{{ not inputs.empty }}", True),
        ("{{ 'big' if inputs.n > 3 else 'small' }}", "big"),
        ("{{ steps.count.error == null }}", True),
    ],
)
def test_literals_operators_and_conditionals(template: str, expected: Any) -> None:
    assert render(template) == expected


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ inputs.items | length }}", 3),
        ("{{ inputs.configs.fr | tojson }}", '{"greeting":"bonjour"}'),
        ("{{ ['a', 1, [2]] | join(', ') }}", "a, 1, [2]"),
        ("{{ ['a', 'b'] | join }}", "ab"),
        ("{{ inputs.text | lower }}", " mixed case "),
        ("{{ inputs.text | upper }}", " MIXED CASE "),
        ("{{ inputs.text | trim }}", "Mixed Case"),
        ("{{ 2.567 | round(1) }}", 2.6),
        ("{{ 2.6 | round }}", 3),
        ("{{ '12' | int }}", 12),
        ("{{ '1.5' | float }}", 1.5),
        ("{{ inputs.n | string }}", "5"),
        ("{{ inputs.configs.fr | string }}", '{"greeting":"bonjour"}'),
        ("{{ (inputs.items | first).name }}", "a"),
        ("{{ (inputs.items | last).name }}", "c"),
        ("{{ inputs.configs | keys }}", ["en", "fr"]),
        ("{{ inputs.configs | values | length }}", 2),
        ("{{ inputs.text | trim | lower | length }}", 10),
    ],
)
def test_each_filter(template: str, expected: Any) -> None:
    assert render(template) == expected


@pytest.mark.parametrize(
    ("steps", "template"),
    [
        (
            {"primary": {"result": None, "status": "skipped"}},
            "{{steps.primary.result | default(0)}}",
        ),
        (
            {"primary": {"result": None, "status": "failed"}},
            "{{steps.primary.primary | default(0)}}",
        ),
        ({}, "{{steps.fetch.page.missing | default(0)}}"),
        ({}, "{{inputs.items[7] | default(0)}}"),
        ({}, "{{inputs.configs[inputs.language].nope | default(0)}}"),
    ],
)
def test_default_yields_its_value_for_a_skipped_or_failed_step_or_a_missing_path(
    steps: dict[str, Any], template: str
) -> None:
    assert render(template, **steps) == 0


def test_default_keeps_a_value_that_exists_even_when_it_is_none() -> None:
    assert render("{{steps.count.result | default(0)}}") == 42
    assert render("{{steps.count.error | default(0)}}") is None


def test_a_failed_steps_status_and_error_are_readable() -> None:
    error = {"type": "ValueError", "message": "boom", "path": "primary"}
    state = {"result": None, "status": "failed", "error": error}
    assert render("{{steps.primary.status}}", primary=state) == "failed"
    assert render("{{steps.primary.error}}", primary=state) == error
    assert render("{{steps.primary.error != null}}", primary=state) is True


def test_the_result_of_a_skipped_step_without_default_fails_naming_the_reason() -> None:
    state = {"result": None, "status": "skipped"}
    with pytest.raises(TemplateError, match="step `primary` was skipped"):
        render("{{steps.primary.result}}", primary=state)
    with pytest.raises(TemplateError, match="step `primary` was skipped"):
        render("{{ [steps.primary.result] }}", primary=state)


# --- A11.4: where problems are reported -----------------------------------------------------


def test_a11_4_an_undeclared_input_fails_at_compile_time_with_file_line_and_column() -> None:
    with pytest.raises(TemplateError) as caught:
        compile_value("{{inputs.nope}}", SCOPE, WHERE)
    [(file, line, column, message)] = caught.value.problems
    assert (file, line, column) == ("flow.yaml", 4, 12)
    assert "there is no input `nope`" in message
    assert "flow.yaml:4:12:" in str(caught.value)


def test_the_column_is_that_of_the_offending_template_inside_the_string() -> None:
    problems = problems_of("ok {{inputs.n}} then {{inputs.nope}}")
    assert [(line, column) for _, line, column, _ in problems] == [(4, 12 + 21)]


def test_inside_a_multi_line_string_the_line_counts_the_newlines() -> None:
    problems = problems_of("first line\n  {{inputs.nope}}")
    assert [(line, column) for _, line, column, _ in problems] == [(5, 3)]


def test_every_problem_of_a_value_is_reported_at_once_each_where_written() -> None:
    places = {("a",): Where("f.yaml", 2, 5), ("b", 1): Where("f.yaml", 4, 7)}
    value = {"a": "{{inputs.x}}", "b": ["{{ 1 }}", "{{ len(y) }} {{ x is defined }}"]}
    with pytest.raises(TemplateError) as caught:
        compile_value(value, SCOPE, lambda path: places.get(path, Where("f.yaml", 1, 1)))
    assert [p[:3] for p in caught.value.problems] == [
        ("f.yaml", 2, 5),
        ("f.yaml", 4, 7),
        ("f.yaml", 4, 20),
    ]
    assert "3 problems" in str(caught.value)


def test_a11_4_a_missing_segment_at_run_time_names_the_step_template_and_segment() -> None:
    compiled = compile_value("{{steps.fetch.page.missing}}", SCOPE, WHERE)
    with pytest.raises(TemplateError) as caught:
        compiled.render(context(), "report")
    text = str(caught.value)
    assert "Step `report`" in text
    assert "{{steps.fetch.page.missing}}" in text
    assert "`missing` is not a key of this dict; its keys: `body`" in text
    assert caught.value.problems[0][:3] == ("flow.yaml", 4, 12)


def test_a11_4_default_zero_covers_the_missing_segment() -> None:
    assert render("{{steps.fetch.page.missing | default(0)}}") == 0


@pytest.mark.parametrize(
    ("template", "segment"),
    [
        ("{{inputs.items[7].name}}", "index 7 is out of range for this list of 3 item(s)"),
        ("{{inputs.n.digits}}", "the int 5 has no key or field `digits`"),
        (
            "x {{inputs.record.author}}",
            "`author` is not a field of this Record; its fields: `title`",
        ),
        ("{{inputs.configs.de.greeting + '!'}}", "`de` is not a key of this dict"),
    ],
)
def test_missing_segments_say_what_was_there(template: str, segment: str) -> None:
    with pytest.raises(TemplateError, match="has no value") as caught:
        render(template)
    assert segment in str(caught.value)


@pytest.mark.parametrize(
    ("template", "reason"),
    [
        ("{{ inputs.n / 0 }}", "ZeroDivisionError"),
        ("{{ inputs.n + 'a' }}", "TypeError"),
        ("{{ inputs.empty | first }}", "`first` of an empty collection"),
        ("{{ inputs.n | lower }}", "the filter `lower` needs a string, not a int"),
        ("{{ inputs.items | keys }}", "the filter `keys` needs a mapping"),
        ("{{ 'x' * 2000000 }}", "`*` would build more than 1,000,000 items"),
        ("{{ [1] * inputs.n * 1000000 }}", "`*` would build more than"),
        ("{{ '%s' % inputs.n }}", "a string cannot be formatted"),
        ("{{ inputs.language | int }}", "ValueError"),
        ("{{ inputs.empty | last }}", "`last` of an empty collection"),
        ("{{ inputs.items | join(1) }}", "`join` needs a string separator, not a int"),
    ],
)
def test_a_failing_expression_fails_the_step_with_the_reason(template: str, reason: str) -> None:
    with pytest.raises(TemplateError, match="Step `report` cannot render") as caught:
        render(template)
    assert reason in str(caught.value)


def test_nothing_is_evaluated_at_compile_time() -> None:
    compiled = compile_value("{{ 1 / 0 }} {{ 'x' * 100000000 }}", SCOPE, WHERE)
    with pytest.raises(TemplateError, match="ZeroDivisionError"):
        compiled.render({}, "s")


# --- refused expressions --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{{ len(inputs.items) }}", "function calls (`len(...)`) are not allowed"),
        ("{{ inputs.text.upper() }}", "function calls (`upper(...)`)"),
        ("{{ inputs.record._secret }}", "`_secret` starts with `_`"),
        ("{{ _private }}", "`_private` starts with `_`"),
        ("{{ inputs.n is defined }}", "tests (`x is defined`) are not supported"),
        ("{{ inputs.n ~ 'a' }}", "`~` is not supported"),
        ("{{ inputs.n ** 2 }}", "`**` is not supported"),
        ("{{ (1, 2) }}", "tuples are not supported"),
        ("{{ +inputs.n }}", "unary `+` is not supported"),
        ("{{ inputs.items | map('x') }}", "there is no filter `map`"),
        ("{{ inputs.items | lenght }}", "(did you mean `length`?)"),
        ("{{ inputs.n | default(v=1) }}", "positional arguments only"),
        ("{{ inputs.n | default }}", "`default` takes 1 argument(s), not 0"),
        ("{{ inputs.items | join(',', 'x') }}", "`join` takes 0 or 1 argument(s), not 2"),
        ("{{ 'a' if inputs.n }}", "a conditional needs `else`"),
        ("{% if inputs.n %}yes{% endif %}", "statements (`{% ... %}`) are not supported"),
        ("{{ inputs.n }} {% set x = 1 %}", "statements"),
        ("{{ inputs.n", "this template is not closed"),
        ("{{ }}", "not a valid expression"),
        ("{{ inputs.n inputs.n }}", "not a valid expression"),
        ("{{ inputs.n | }}", "not a valid expression"),
        ("{{" + "[" * 40 + "1" + "]" * 40 + "}}", "nests more than 32 levels deep"),
        ("{{" + "(" * 400 + "1" + ")" * 400 + "}}", "nests more than 32 levels deep"),
        ("{{" + "9" * 5000 + "}}", "not a valid expression: Exceeds the limit"),
    ],
)
def test_anything_outside_the_grammar_fails_at_compile_time(template: str, message: str) -> None:
    assert any(message in found for *_, found in problems_of(template))


def test_a_closing_brace_inside_a_string_literal_does_not_end_the_template() -> None:
    assert render("{{ {'k': '}}'} }}") == {"k": "}}"}
    assert render("a{{ 'x}}y' }}b") == "ax}}yb"


# --- what the compiler learns ---------------------------------------------------------------


def test_references_record_the_path_and_whether_a_failed_step_skips_the_reader() -> None:
    compiled = compile_value(
        {
            "a": "{{steps.primary.result}}",
            "b": "{{steps.primary.primary}}",
            "c": "{{steps.primary.error}} {{steps.primary.status}}",
            "d": "{{steps.fetch.page.body | default('') }}",
            "e": "{{inputs.configs[inputs.language].greeting}}",
        },
        SCOPE,
        WHERE,
    )
    assert compiled.references == (
        Reference("steps", ("primary", "result")),
        Reference("steps", ("primary", "primary")),
        Reference("steps", ("primary", "error")),
        Reference("steps", ("primary", "status")),
        Reference("steps", ("fetch", "page", "body"), guarded=True),
        Reference("inputs", ("language",)),
        Reference("inputs", ("configs",)),
    )
    skipping = [r.path for r in compiled.references if r.skips_with_step]
    assert skipping == [("primary", "result"), ("primary", "primary")]
    assert [r.step for r in compiled.references][:5] == ["primary"] * 4 + ["fetch"]


@pytest.mark.parametrize(
    ("template", "whole"),
    [
        ("{{inputs.n}}", Reference("inputs", ("n",))),
        ("{{ steps.count.result }}", Reference("steps", ("count", "result"))),
        ("{{ inputs.items[0].name }}", Reference("inputs", ("items", 0, "name"))),
        ("{{inputs.n | default(1)}}", None),
        ("{{inputs.configs[inputs.language]}}", None),
        ("n={{inputs.n}}", None),
        ("{{inputs.n}}{{inputs.n}}", None),
        ("{{ 5 }}", None),
    ],
)
def test_whole_reference_is_set_for_one_plain_reference_only(
    template: str, whole: Reference | None
) -> None:
    compiled = compile_value(template, SCOPE, WHERE)
    assert compiled.whole_reference == whole
    assert not compiled.is_literal


def test_source_is_the_value_as_written() -> None:
    value = {"a": ["{{inputs.n}}", "n={{ inputs.n }}"]}
    compiled = compile_value(value, SCOPE, WHERE)
    assert compiled.source == value
    assert compile_value("n={{ inputs.n }}", SCOPE, WHERE).source == "n={{ inputs.n }}"
    assert compile_value("{{ inputs.n + 1 }}", SCOPE, WHERE).source == "{{ inputs.n + 1 }}"


def test_compiled_values_pickle_for_worker_processes() -> None:
    value = {"a": "{{inputs.n * 2}}", "b": "x{{inputs.n}}", "c": "{{steps.count.result}}"}
    compiled: Compiled = pickle.loads(pickle.dumps(compile_value(value, SCOPE, WHERE)))
    assert compiled.render(context(), "s") == {"a": 10, "b": "x5", "c": 42}


def test_a_failing_lookup_of_a_user_type_fails_the_step() -> None:
    class Strict(dict[str, Any]):
        def __getitem__(self, key: str) -> Any:
            raise RuntimeError("no reads")

    scope = Scope(inputs=("d",))
    with pytest.raises(TemplateError, match="RuntimeError: no reads"):
        compile_value("{{inputs.d.x}}", scope, WHERE).render({"inputs": {"d": Strict()}}, "s")


def test_a_context_without_a_root_or_a_step_state_fails_clearly() -> None:
    with pytest.raises(TemplateError, match="reads `inputs`, absent from the context"):
        compile_value("{{inputs.n}}", SCOPE, WHERE).render({}, "s")
    with pytest.raises(TemplateError, match="'inputs' is undefined"):
        compile_value("{{inputs.n + 1}}", SCOPE, WHERE).render({}, "s")
    with pytest.raises(TemplateError, match="'steps' is undefined"):
        compile_value("{{steps.count.result + 1}}", SCOPE, WHERE).render({}, "s")
    with pytest.raises(TemplateError, match="the context holds no state for step `count`"):
        compile_value("{{steps.count.result}}", SCOPE, WHERE).render({"steps": {}}, "s")


def test_other_mappings_and_their_contents_read_like_dicts() -> None:
    frozen = types.MappingProxyType({"a": 1, "inner": types.MappingProxyType({"b": 2})})
    ctx = {"inputs": {"m": frozen}}
    scope = Scope(inputs=("m",))
    assert compile_value("{{inputs.m.a}}", scope, WHERE).render(ctx, "s") == 1
    assert (
        compile_value("m={{inputs.m}}", scope, WHERE).render(ctx, "s")
        == 'm={"a":1,"inner":{"b":2}}'
    )
    with pytest.raises(TemplateError, match="`z` is not a key of this mappingproxy"):
        compile_value("{{inputs.m.z}}", scope, WHERE).render(ctx, "s")


def test_a_value_that_cannot_be_written_as_text_fails_the_step() -> None:
    looped: list[Any] = []
    looped.append(looped)
    scope = Scope(inputs=("l",))
    with pytest.raises(TemplateError, match="cannot be written as text: Circular reference"):
        compile_value("l={{inputs.l}}", scope, WHERE).render({"inputs": {"l": looped}}, "s")


# --- random text: only TemplateError, nothing called, no file touched -----------------------

CALLED: list[object] = []


def sentinel(*args: object, **kwargs: object) -> str:
    CALLED.append(args)
    return "called"


class Trap:
    """A value whose every method records that it ran."""

    title = "trap"

    def __getattr__(self, name: str) -> Any:
        CALLED.append(name)
        return sentinel

    def __call__(self, *args: object) -> str:
        return sentinel(*args)


FUZZ_SCOPE = Scope(steps={"s": ("out",)}, inputs=("x", "f", "trap", "items"), loop_vars=("item",))
FUZZ_CONTEXT = {
    "steps": {"s": {"result": {"out": 1}, "out": 1}},
    "inputs": {"x": 3, "f": sentinel, "trap": Trap(), "items": [1, "a", {"k": sentinel}]},
    "item": {"k": "v"},
    "loop": {"index": 0, "first": True, "last": True, "length": 1},
}

TOKENS = [
    "{{", "}}", "{%", "%}", "{#", "#}", " ", "steps", "inputs", "item", "loop", "s", "x", "f",
    "trap", "items", "result", "out", "status", "error", "index", ".", "_", "__class__",
    "__globals__", "__import__", "mro", "__subclasses__", "(", ")", "[", "]", "{", "}", "'", '"',
    "|", ",", ":", "0", "1", "-1", "2.5", "1e400", "9" * 30, "+", "-", "*", "**", "/", "//", "%",
    "~", "==", "<", "in", "not", "and", "or", "is", "if", "else", "true", "null", "none",
    "default", "length", "join", "int", "first", "keys", "attr", "map", "len", "open", "range",
    "lipsum", "cycler", "self", "config", "'/tmp/x'", "open('pwned', 'w')", "f()", "trap.title",
    "{{ inputs.f(1) }}", "\\", "\n", "é",
]  # fmt: skip

LEAVES = [
    "inputs.x", "inputs.f", "inputs.trap", "inputs.trap.title", "inputs.trap.__call__",
    "inputs.items", "inputs.items[0]", "inputs.items[2].k", "inputs.items[1:]", "item.k",
    "item", "steps.s.out", "steps.s.result", "steps.s.status", "loop.index", "1", "-3", "'a'",
    "2.5", "null", "true", "[1, 2]", "{'k': inputs.f}", "inputs.nope", "f()", "inputs.f()",
]  # fmt: skip
OPERATORS = ["+", "-", "*", "/", "//", "%", "==", "<", "in", "not in", "and", "or", "**", "~"]
FILTER_CALLS = [
    "default(inputs.f)", "length", "tojson", "join(',')", "lower", "trim", "round(1)", "int",
    "float", "string", "first", "last", "keys", "values", "attr('x')", "map('f')",
]  # fmt: skip

expressions = st.recursive(
    st.sampled_from(LEAVES),
    lambda inner: st.one_of(
        st.tuples(inner, st.sampled_from(OPERATORS), inner).map(lambda t: "({} {} {})".format(*t)),
        st.tuples(inner, st.sampled_from(FILTER_CALLS)).map(lambda t: "{} | {}".format(*t)),
        st.tuples(inner, inner, inner).map(lambda t: "({} if {} else {})".format(*t)),
        st.tuples(inner, inner).map(lambda t: "{}[{}]".format(*t)),
        st.tuples(inner, inner).map(lambda t: "[{}, {}]".format(*t)),
        inner.map(lambda e: f"-{e}"),
        inner.map(lambda e: f"not {e}"),
    ),
    max_leaves=8,
)

template_text = st.one_of(
    st.lists(st.sampled_from(TOKENS), max_size=24).map("".join),
    st.text(alphabet=st.sampled_from("{}%#()[]|.'\"_ a1-*\\"), max_size=30),
    st.lists(st.sampled_from(TOKENS), max_size=12).map(lambda t: "{{" + " ".join(t) + "}}"),
    expressions.map(lambda e: "{{ " + e + " }}"),
    st.tuples(expressions, expressions).map(lambda t: "a {{" + t[0] + "}} b {{" + t[1] + "}}"),
)


@settings(
    max_examples=400,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(text=template_text)
def test_random_templates_compile_or_raise_template_error_and_run_nothing(
    text: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    compiled: Compiled | None = None
    problems: list[tuple[str, int, int, str]] = []
    try:
        compiled = compile_value(text, FUZZ_SCOPE, WHERE)
    except TemplateError as error:
        problems = error.problems
    assert compiled is not None or (problems and all(p[0] == "flow.yaml" for p in problems))
    if compiled is not None:
        with contextlib.suppress(TemplateError):
            compiled.render(FUZZ_CONTEXT, "fuzz")
    assert CALLED == []
    assert os.listdir(tmp_path) == []
