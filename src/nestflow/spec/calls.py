"""Compiling a YAML ``call`` step into a ``pipeline_call`` node (SPEC 11.2, 12.7).

A call step has the fields of ``pipeline_call``::

    - name: summary
      type: call
      url: https://flows.example.org/v1/call/acme/summarise_thread
      token: env:ACME_TOKEN              # the token itself, or env:VAR read at call time
      secret: env:ACME_SECRET            # optional: signs every request
      inputs: {thread: "{{inputs.ticket.messages}}", style: "{{steps.style.result}}"}
      mode: sync                         # or stream
      timeout: 20                        # seconds; default: the callee's budget plus 5
      output_key: summary                # default: the step name
      cache: false                       # default

Each input is one plain reference, which becomes a selector of ``input_mapping``
(``{{inputs.ticket.messages}}`` is ``ticket.messages``): the node reads the values
themselves, so nothing is rendered between the pipeline and the request. ``url``, ``token``
and ``secret`` are taken exactly as written and never templated, so a credential cannot
travel through a value, a cache key or a report. The step publishes ``output_key``;
``{{steps.<step>.error}}`` reads ``<output_key>._error``, where a failed call says what
happened (the step itself always succeeds: its failures are data, SPEC 14 decision 21).

``pipeline_call`` lives in ``nestflow.service``, a layer above this one. The compiler names
it by reference, as a function step names any importable callable, so loading a workflow
without call steps never imports the service code, and one with call steps fails to load
with the install hint when httpx (the ``client`` extra) is missing.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Final

from nestflow.core.gates import error_output
from nestflow.core.node import Node
from nestflow.errors import InvalidOptionError
from nestflow.spec.imports import ReferenceProblem, import_reference
from nestflow.spec.schema import is_identifier

if TYPE_CHECKING:
    from nestflow.spec import templates
    from nestflow.spec.compile import Level, Path_
    from nestflow.spec.schema import Problems
    from nestflow.spec.source import Marks

PIPELINE_CALL: Final = "nestflow.service.call:pipeline_call"
MODES: Final = ("sync", "stream")

Template = Callable[[Any, "Path_"], "templates.Compiled | None"]
"""Compiles a value written at a path against the step's level (``Compiler._template``)."""


def compile_call(
    step: Mapping[str, Any],
    path: Path_,
    marks: Marks,
    level: Level,
    problems: Problems,
    template: Template,
) -> Node | None:
    """The ``pipeline_call`` node of a checked call step, or ``None`` with its problems
    added to ``problems`` (every one of the step's at once)."""
    name = str(step["name"])
    before = len(problems.found)
    settings = _settings(step, path, marks, problems)
    mapping = _input_mapping(step, path, marks, level, problems, template)
    if len(problems.found) > before or mapping is None:
        return None
    made = _made(name, settings, mapping, marks.at(path), problems)
    if made is None:
        return None
    output_key = made.outputs[0]
    level.steps[name] = (output_key,)
    level.call_errors[name] = error_output(output_key)
    return made


def _made(
    name: str, settings: dict[str, Any], mapping: dict[str, str], where: Any, problems: Problems
) -> Node | None:
    """``pipeline_call(...)`` for the step; its refusals reported at the step."""
    try:
        pipeline_call = import_reference(PIPELINE_CALL)
        made: Node = pipeline_call(input_mapping=mapping, name=name, **settings)
    except ImportError as exc:  # httpx, of the `client` extra, is missing: exc says so
        problems.add(where, f"`call` step `{name}` needs the `client` extra: {exc}", kind="import")
        return None
    except ReferenceProblem as exc:
        problems.add(where, f"`call` step `{name}`: {exc}", kind="import")
        return None
    except InvalidOptionError as exc:
        detail = str(exc).partition("\n")[2].strip()
        problems.add(where, f"`call` step `{name}` cannot be made:\n  {detail}")
        return None
    return made


def _settings(
    step: Mapping[str, Any], path: Path_, marks: Marks, problems: Problems
) -> dict[str, Any]:
    """``pipeline_call``'s keywords from the step's fields, each field checked."""
    name = str(step["name"])
    settings: dict[str, Any] = {"output_key": step.get("output_key", name)}
    for field, required in (("url", True), ("token", True), ("secret", False)):
        value = step.get(field)
        if value is None and not required:
            continue
        problem = _literal_problem(field, value)
        if problem is not None:
            problems.add(marks.at((*path, field) if field in step else path), problem)
        settings[field] = value
    for field, check in (("mode", _mode_problem), ("timeout", _timeout_problem)):
        if field in step:
            problem = check(step[field])
            if problem is not None:
                problems.add(marks.at((*path, field)), problem)
            settings[field] = step[field]
    if not is_identifier(settings["output_key"]):
        problems.add(
            marks.at((*path, "output_key")),
            f"`output_key:` names the value the call publishes, an identifier; "
            f"got {settings['output_key']!r}",
        )
    if "cache" in step:
        if not isinstance(step["cache"], bool):
            problems.add(
                marks.at((*path, "cache")), f"`cache:` is true or false; got {step['cache']!r}"
            )
        settings["cache"] = step["cache"]
    return settings


def _literal_problem(field: str, value: Any) -> str | None:
    """Why ``value`` cannot be the call's ``url``, ``token`` or ``secret``, if it cannot."""
    what = "the call URL" if field == "url" else f"the {field} itself, or env:VAR"
    if value is None:
        return f"a `call` step needs `{field}:` ({what})"
    if not isinstance(value, str) or not value:
        return f"`{field}:` is a non-empty string ({what}); got {value!r}"
    if "{{" in value:
        return (
            f"`{field}:` is taken as written and never templated, so a credential or address "
            f"cannot come from a value of the run; give {what}"
        )
    return None


def _mode_problem(value: Any) -> str | None:
    if value in MODES:
        return None
    return f"`mode:` is `sync` (wait for the result) or `stream` (read its events); got {value!r}"


def _timeout_problem(value: Any) -> str | None:
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if number and math.isfinite(value) and value > 0:
        return None
    return f"`timeout:` is a number of seconds above 0; got {value!r}"


# --- inputs ------------------------------------------------------------------------------------


def _input_mapping(
    step: Mapping[str, Any],
    path: Path_,
    marks: Marks,
    level: Level,
    problems: Problems,
    template: Template,
) -> dict[str, str] | None:
    """``{contract input: selector}`` from the step's ``inputs:`` references."""
    given = step.get("inputs", {})
    if not isinstance(given, Mapping):
        problems.add(
            marks.at((*path, "inputs")),
            "`inputs:` of a call step maps each contract input to a reference, such as "
            f'{{thread: "{{{{inputs.ticket.messages}}}}"}}; got {given!r}',
        )
        return None
    mapping: dict[str, str] = {}
    for key, value in given.items():
        where = (*path, "inputs", key)
        compiled = template(value, where)
        if compiled is None:
            continue
        selector = _selector(compiled, level)
        if isinstance(selector, str) and selector.startswith("!"):
            problems.add(marks.at(where), f"call input `{key}`: {selector[1:]}; got {value!r}")
        elif selector is not None:
            mapping[str(key)] = selector
    return mapping


EXPECTED: Final = (
    "a call input is one reference with names only, such as `{{inputs.ticket.body}}`, "
    "`{{steps.fetch.result}}` or `{{doc.title}}`: the call sends the value itself"
)


def _selector(compiled: templates.Compiled, level: Level) -> str | None:
    """The selector a whole reference names; ``"!<why not>"`` when the value is not one."""
    reference = compiled.whole_reference
    if reference is None or not all(isinstance(p, str) for p in reference.path):
        hint = "; compute other values in a function step and refer to it"
        return "!" + EXPECTED + hint
    root, rest = reference.root, tuple(str(p) for p in reference.path)
    if root == "inputs" and rest:
        return ".".join(rest)
    if root in level.loop:
        return ".".join((root, *rest))
    if root == "steps" and len(rest) >= 2:
        return _step_selector(rest, level)
    return (
        f"!`{{{{{root}...}}}}` is a constant of the workflow, which a call input cannot "
        "name; declare it as a workflow input, or pass it from a function step"
    )


def _step_selector(rest: tuple[str, ...], level: Level) -> str:
    """The selector of ``steps.<step>.<part>...``."""
    step, part, *inside = rest
    published = level.steps.get(step, ())
    if part == "result" and len(published) == 1:
        return ".".join((published[0], *inside))
    if part == "result" and inside and inside[0] in published:
        return ".".join(inside)
    if part in published:
        return ".".join((part, *inside))
    return (
        f"!`steps.{step}.{part}` is not a value step `{step}` publishes "
        f"({', '.join(published) or 'none'}); {EXPECTED}"
    )
