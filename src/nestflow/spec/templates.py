"""Templates in workflow values: ``{{ expression }}`` inside strings (SPEC 11.3).

A value read from YAML is compiled once, at load time, against a ``Scope`` (the steps,
inputs, global variables, workflow keys and loop variables it may read), then rendered
once per run (or per loop item) against a context:

>>> scope = Scope(steps={"count": ("count",)}, inputs=("unit",))
>>> compiled = compile_value("{{ steps.count.result * 2 }}", scope, Where("flow.yaml", 3, 12))
>>> compiled.references
(Reference(root='steps', path=('count', 'result'), guarded=False),)
>>> compiled.render({"steps": {"count": {"result": 21}}}, step="double")
42
>>> compile_value("{{ inputs.units }}", scope, Where("flow.yaml", 3, 12))
Traceback (most recent call last):
nestflow.errors.TemplateError: Invalid templates (1 problem):
  flow.yaml:3:12: `{{ inputs.units }}`: there is no input `units` (did you mean `unit`?); ...

* ``compile_value(value, scope, where) -> Compiled`` walks strings, lists and mappings.
  ``where`` is the ``Where`` of the value, or a function from a path inside the value
  (``("inputs", 0)``) to the ``Where`` of that part, such as ``lambda p: marks.at(base + p)``.
  Every problem of the value is gathered into one ``TemplateError`` whose ``problems`` list
  ``(file, line, column, message)``; the column is that of the offending ``{{`` when the
  string is on one line (best effort inside multi-line strings).
* ``Compiled.render(context, step)`` returns the value: a string that is exactly one
  template keeps the expression's type; a template embedded in text yields a string
  (scalars by ``str``, lists and mappings as compact JSON); ``Raw`` strings and strings
  without templates are returned as they are; mapping keys are kept as written.
* ``Compiled.is_literal``: nothing to render. ``Compiled.whole_reference``: the
  ``Reference`` when the value is exactly one plain reference (``"{{inputs.x}}"``), so the
  compiler can wire it directly. ``Compiled.references``: every ``Reference`` made, with
  ``guarded`` (read under ``| default``) and ``skips_with_step`` (SPEC 11.4).

The context maps each root to its value: ``inputs``, ``workflow`` and ``global_vars`` to
mappings of names, ``loop`` to ``{"index", "first", "last", "length"}``, each loop variable
to its item, and ``steps`` to a mapping from step name to its state, a mapping with
``result``, ``status`` (``"ok"`` when absent, ``"skipped"`` or ``"failed"``), ``error``
(``None`` when absent) and optionally each published name (looked up in ``result``
otherwise). The result and published names of a step that did not succeed are missing, so
``| default(v)`` yields ``v`` for them.

Expressions are parsed by Jinja2's parser, checked by walking the tree (anything outside
SPEC 11.3's list is refused) and compiled by a ``SandboxedEnvironment`` with native types
(``spec.expressions``); values are read by ``spec.sandbox``'s lookups. Nothing is evaluated
at load time. A plain reference, alone or embedded in text, is resolved by direct lookups
without Jinja: a few hundred nanoseconds rather than a few microseconds. One written with
names only (``{{steps.a.result}}``, the most common template) is also read without Jinja's
parser at load time, with the same checks and messages.
"""

from __future__ import annotations

import dataclasses
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Final, Protocol

from jinja2.exceptions import UndefinedError

from nestflow.errors import TemplateError
from nestflow.spec.expressions import Analysis, Reference, analyse
from nestflow.spec.sandbox import Absent, evaluate, lookup, step_field, to_text
from nestflow.spec.schema import closest
from nestflow.spec.source import Key, Raw, Where

__all__ = ["Compiled", "Raw", "Reference", "Scope", "Where", "compile_value", "is_expression"]

Locator = Callable[[tuple[Key, ...]], Where]
"""The place of a part of a value, from its path inside the value."""

STEP_FIELDS: Final = ("result", "status", "error")
LOOP_FIELDS: Final = ("index", "first", "last", "length")


@dataclass(frozen=True)
class Scope:
    """What templates may read where they are written: names checked at load time."""

    steps: Mapping[str, Collection[str]] = field(default_factory=dict)
    """Each step that may be referenced, with the names it publishes."""
    inputs: Collection[str] = ()
    global_vars: Collection[str] = ()
    workflow: Collection[str] = ()
    """Readable workflow keys: ``name`` and the keys of ``settings``."""
    loop_vars: Collection[str] = ()
    """Loop variables of the enclosing ``for_each`` steps; ``loop`` exists when any do."""
    broken: Collection[str] = ()
    """Steps that could not be compiled (their problems are reported): any reference to
    them passes, so one problem is not reported again by every reader."""

    def with_loop_vars(self, *names: str) -> Scope:
        """This scope inside one more ``for_each``."""
        return dataclasses.replace(self, loop_vars=(*self.loop_vars, *names))


class Compiled(Protocol):
    """A workflow value with its templates checked, ready to render."""

    @property
    def source(self) -> Any:
        """The value as written: a string, or the list or mapping holding templates."""

    @property
    def references(self) -> tuple[Reference, ...]:
        """Every reference the value makes, in order, without repeats."""

    @property
    def is_literal(self) -> bool:
        """Whether there is nothing to render: ``render`` returns ``source`` as it is."""

    @property
    def whole_reference(self) -> Reference | None:
        """The reference when the value is exactly one, written out (``"{{inputs.x}}"``)."""

    def render(self, context: Mapping[str, Any], step: str) -> Any:
        """The value for ``context``; failures raise ``TemplateError`` naming ``step``."""


def is_expression(compiled: Compiled) -> bool:
    """Whether ``compiled`` is exactly one ``{{ ... }}`` (rendered keeping its type)."""
    return isinstance(compiled, _Template)


def compile_value(value: Any, scope: Scope, where: Where | Locator) -> Compiled:
    """``value`` with every template in it checked against ``scope``.

    Raises ``TemplateError`` listing every problem found in the value.
    """
    locate = where if callable(where) else (lambda _path: where)
    problems: list[tuple[str, int, int, str]] = []
    compiled = _compile(value, (), scope, locate, problems)
    if problems:
        count = f"{len(problems)} problem{'s' if len(problems) != 1 else ''}"
        raise TemplateError(f"Invalid templates ({count}):", problems)
    return compiled


# --- compiling values -------------------------------------------------------------------------


def _compile(
    value: Any, path: tuple[Key, ...], scope: Scope, locate: Locator, problems: list[Any]
) -> Compiled:
    if isinstance(value, str):
        if isinstance(value, Raw):
            return _Literal(str(value))
        if "{{" not in value and "{%" not in value:
            return _Literal(value)  # before `locate`: most strings hold no template
        return _compile_string(value, scope, locate(path), problems)
    if type(value) is dict or isinstance(value, Mapping):
        items = {k: _compile(v, (*path, k), scope, locate, problems) for k, v in value.items()}
        literal = all(c.is_literal for c in items.values())
        return _Literal(value) if literal else _Dict(value, items)
    if isinstance(value, list | tuple):
        parts = [_compile(v, (*path, i), scope, locate, problems) for i, v in enumerate(value)]
        return _Literal(value) if all(c.is_literal for c in parts) else _List(value, parts)
    return _Literal(value)


def _compile_string(text: str, scope: Scope, where: Where, problems: list[Any]) -> Compiled:
    if "{{" not in text and "{%" not in text:
        return _Literal(text)
    whole = _WHOLE_PLAIN.fullmatch(text)
    if whole is not None:  # `{{steps.a.result}}`: one piece, at the string's start
        source = whole[1]
        found = _compile_expression(source, scope, where)
        if isinstance(found, list):
            problems += [_problem(where, f"`{{{{{source}}}}}`: {reason}") for reason in found]
            return _Text(text, ())
        return found
    try:
        pieces = _split(text)
    except _Unclosed as unclosed:
        problems.append(_problem(_shift(where, text, unclosed.offset), unclosed.message))
        return _Literal(text)
    parts: list[str | _Template] = []
    for piece in pieces:
        if isinstance(piece, str):
            parts.append(piece)
            continue
        offset, source = piece
        at = _shift(where, text, offset)
        found = _compile_expression(source, scope, at)
        if isinstance(found, list):
            problems += [_problem(at, f"`{{{{{source}}}}}`: {reason}") for reason in found]
        else:
            parts.append(found)
    if len(pieces) == len(parts) == 1 and isinstance(parts[0], _Template):
        return parts[0]
    return _Text(text, tuple(parts))


class _Unclosed(Exception):
    def __init__(self, offset: int, message: str) -> None:
        super().__init__(message)
        self.offset = offset
        self.message = message


def _split(text: str) -> list[str | tuple[int, str]]:
    """Literal text and ``(offset of "{{", expression source)`` pieces, in order."""
    pieces: list[str | tuple[int, str]] = []
    position = 0
    while (start := text.find("{{", position)) >= 0:
        _refuse_statements(text, position, start)
        end = _template_end(text, start + 2)
        if start > position:
            pieces.append(text[position:start])
        pieces.append((start, text[start + 2 : end]))
        position = end + 2
    _refuse_statements(text, position, len(text))
    if position < len(text):
        pieces.append(text[position:])
    return pieces


def _refuse_statements(text: str, start: int, end: int) -> None:
    statement = text.find("{%", start, end)
    if statement >= 0:
        raise _Unclosed(
            statement,
            "statements (`{% ... %}`) are not supported: write a conditional expression "
            "`{{ a if condition else b }}`, or tag the string `!raw` to keep it as text",
        )


def _template_end(text: str, position: int) -> int:
    """The index of the ``}}`` closing the template whose expression starts at ``position``.

    String literals and brackets are skipped as Jinja's lexer skips them, so
    ``{{ {'a': '}}'} }}`` closes at its last ``}}``.
    """
    end = text.find("}}", position)
    if end >= 0 and _OPENERS.search(text, position, end) is None:
        return end  # no string or bracket before the first `}}`: the scan below finds it
    depth, index = 0, position
    while index < len(text):
        char = text[index]
        if char in "'\"":
            index = _string_end(text, index)
        elif char in "([{":
            depth += 1
        elif char == "}" and depth == 0 and text.startswith("}}", index):
            return index
        elif char in ")]}":
            depth = max(depth - 1, 0)
        index += 1
    raise _Unclosed(position - 2, "this template is not closed: `}}` is missing")


def _string_end(text: str, start: int) -> int:
    """The index of the quote closing the string opened at ``start``, or the text's end."""
    index = start + 1
    while index < len(text) and text[index] != text[start]:
        index += 2 if text[index] == "\\" else 1
    return index


def _shift(where: Where, text: str, offset: int) -> Where:
    """The place of ``text[offset]`` when ``text`` starts at ``where``.

    Exact on one line; past a newline the column counts from the line's start within the
    string, since the indentation a block scalar dropped is unknown here.
    """
    newlines = text.count("\n", 0, offset)
    if not newlines:
        return Where(where.file, where.line, where.column + offset)
    return Where(where.file, where.line + newlines, offset - text.rfind("\n", 0, offset))


def _problem(where: Where, message: str) -> tuple[str, int, int, str]:
    return (where.file, where.line, where.column, message)


# --- compiling expressions -----------------------------------------------------------------------


_NAMES: Final = r"[A-Za-z][A-Za-z0-9_]*(?:\.[A-Za-z][A-Za-z0-9_]*)*"
_PLAIN: Final = re.compile(rf" *({_NAMES}) *")
"""A plain reference written with names only (``steps.a.result``): what Jinja would parse
as a name followed by attribute lookups, none of them starting with ``_``."""
_WHOLE_PLAIN: Final = re.compile(rf"\{{\{{( *{_NAMES} *)\}}\}}")
"""A string that is exactly one such reference: ``{{steps.a.result}}``."""
_NOT_NAMES: Final = frozenset(
    {
        *("true", "false", "none", "True", "False", "None", "null"),  # constants (null: None)
        *("not", "and", "or", "in", "is", "if", "else"),  # operators
    }
)
"""Words Jinja does not parse as a name when they start an expression."""
_OPENERS: Final = re.compile("[\"'([{]")


@lru_cache(maxsize=4096)
def _plain(source: str) -> Reference | None:
    """The reference ``source`` is when it is names joined by dots, as ``analyse`` finds it.

    Such an expression has no problem of its own (no name starts with ``_``, nothing is
    called or filtered), so Jinja's parser is not needed to read it.
    """
    match = _PLAIN.fullmatch(source)
    if match is None:
        return None
    root, *path = match[1].split(".")
    return None if root in _NOT_NAMES else Reference(root, tuple(path))


def _compile_expression(source: str, scope: Scope, where: Where) -> _Template | list[str]:
    """The evaluator of the template ``{{source}}``, or every reason it cannot be one."""
    plain = _plain(source)
    if plain is not None:
        problem = _scope_problem(plain, scope)
        return [problem] if problem else _Path(plain, source, where)
    analysis = analyse(source)
    problems = [*analysis.problems]
    problems += filter(None, (_scope_problem(r, scope) for r in analysis.references))
    if problems:
        return problems
    if analysis.plain is not None:
        return _Path(analysis.plain, source, where)
    return _Expression(analysis, source, where)


# --- checking references against the scope ---------------------------------------------------

_DECLARED: Final = {
    "inputs": ("input", "Declare it under `workflow.inputs`."),
    "global_vars": ("global variable", "Define it under `workflow.global_vars`."),
    "workflow": ("workflow key", "Templates read `workflow.name` and the keys of `settings`."),
}


def _scope_problem(reference: Reference, scope: Scope) -> str | None:
    """Why ``reference`` cannot be read in ``scope``, or None when it can."""
    root, path = reference.root, reference.path
    if root == "steps":
        return _step_problem(path, scope)
    if root in _DECLARED:
        return _name_problem(root, path, getattr(scope, root))
    if root == "loop":
        return _loop_problem(path, scope)
    if root in scope.loop_vars:
        return None
    readable = ["steps", "inputs", "workflow", "global_vars"]
    if scope.loop_vars:
        readable += ["loop", *scope.loop_vars]
    return (
        f"`{root}` is not a name templates can read{closest(root, readable)}; "
        f"they read {_names(readable)}"
    )


def _step_problem(path: tuple[Key, ...], scope: Scope) -> str | None:
    if not path or not isinstance(path[0], str):
        return "`steps` must be followed by a step name written out: `steps.<step>.result`"
    step = path[0]
    if step in scope.broken:
        return None
    if step not in scope.steps:
        steps = sorted(scope.steps)
        return (
            f"there is no step `{step}` to read here{closest(step, steps)}; "
            f"the steps this value can read: {_names(steps) or 'none'}"
        )
    fields = [*STEP_FIELDS, *sorted(scope.steps[step])]
    if len(path) < 2:
        return f"`steps.{step}` needs a field: one of {_names(fields)}"
    if path[1] in fields:
        return None
    return (
        f"step `{step}` has no `{path[1]}`{closest(str(path[1]), fields)}; read one of "
        f"{_names(fields)} (the names after `error` are those it publishes)"
    )


def _name_problem(root: str, path: tuple[Key, ...], names: Collection[str]) -> str | None:
    what, fix = _DECLARED[root]
    if not path or not isinstance(path[0], str):
        return f"`{root}` must be followed by a name written out: `{root}.<name>`"
    if path[0] in names:
        return None
    known = sorted(names)
    return (
        f"there is no {what} `{path[0]}`{closest(path[0], known)}; "
        f"known: {_names(known) or 'none'}. {fix}"
    )


def _loop_problem(path: tuple[Key, ...], scope: Scope) -> str | None:
    if not scope.loop_vars:
        return "`loop` exists only inside a `for_each` step"
    if path and path[0] in LOOP_FIELDS:
        return None
    return f"`loop` must be followed by one of {_names(LOOP_FIELDS)}"


def _names(names: Collection[str]) -> str:
    return ", ".join(f"`{name}`" for name in names)


# --- compiled values --------------------------------------------------------------------------


class _Literal:
    """A value with nothing to render."""

    __slots__ = ("source",)
    references: tuple[Reference, ...] = ()
    is_literal = True
    whole_reference = None

    def __init__(self, source: Any) -> None:
        self.source = source

    def render(self, context: Mapping[str, Any], step: str) -> Any:
        return self.source


class _Template(ABC):
    """One ``{{ ... }}``: rendered alone (keeping its type) or inside text."""

    __slots__ = ("_source", "_where")
    is_literal = False
    references: tuple[Reference, ...]
    whole_reference: Reference | None

    def __init__(self, source: str, where: Where) -> None:
        self._source = source
        self._where = where

    @property
    def source(self) -> str:
        return f"{{{{{self._source}}}}}"

    @abstractmethod
    def render(self, context: Mapping[str, Any], step: str) -> Any:
        """The expression's value, keeping its type."""

    def render_text(self, context: Mapping[str, Any], step: str) -> str:
        value = self.render(context, step)
        try:
            return to_text(value)
        except (TypeError, ValueError) as exc:
            raise self._failure(step, f"its value cannot be written as text: {exc}") from exc

    def _failure(self, step: str, reason: str) -> TemplateError:
        problem = _problem(self._where, f"`{{{{{self._source}}}}}` {reason}")
        return TemplateError(f"Step `{step}` cannot render a template:", [problem])


class _Path(_Template):
    """A reference alone, resolved by direct lookups: the fast path."""

    __slots__ = ("_field", "_rest", "_root", "_step", "references", "whole_reference")

    def __init__(self, reference: Reference, source: str, where: Where) -> None:
        super().__init__(source, where)
        self.whole_reference = reference
        self.references = (reference,)
        self._root = reference.root
        by_step = reference.root == "steps"  # then the path starts with a step and a field
        self._step: Key | None = reference.path[0] if by_step else None
        self._field: Key | None = reference.path[1] if by_step else None
        self._rest = reference.path[2:] if by_step else reference.path

    def render(self, context: Mapping[str, Any], step: str) -> Any:
        try:
            value = context[self._root]
        except KeyError:
            raise self._failure(step, f"reads `{self._root}`, absent from the context") from None
        try:
            if self._field is not None:
                value = step_field(value, self._step, self._field)
            for key in self._rest:
                value = value[key] if type(value) is dict and key in value else lookup(value, key)
        except Absent as absent:
            raise self._failure(step, _missing(absent.segment, str(absent))) from None
        except Exception as exc:  # a user type's own lookup failing: as in any expression
            raise self._failure(step, f"failed: {type(exc).__name__}: {exc}") from exc
        return value


class _Expression(_Template):
    """Any other expression, evaluated by its compiled Jinja template."""

    __slots__ = ("_template", "references", "whole_reference")

    def __init__(self, analysis: Analysis, source: str, where: Where) -> None:
        super().__init__(source, where)
        self.references = analysis.references
        self.whole_reference = None
        self._template = analysis.template

    def render(self, context: Mapping[str, Any], step: str) -> Any:
        variables = context if isinstance(context, dict) else dict(context)
        try:
            return evaluate(self._template, variables)
        except UndefinedError as exc:
            raise self._failure(step, _missing(None, str(exc.message))) from None
        except Exception as exc:  # a value of the wrong type, a division by zero, ...
            raise self._failure(step, f"failed: {type(exc).__name__}: {exc}") from exc

    def __reduce__(self) -> tuple[Any, ...]:
        # Compiled Jinja code does not pickle: rebuild it from the text, already checked.
        return (_rebuild, (self._source, self._where))


def _rebuild(source: str, where: Where) -> _Expression:
    return _Expression(analyse(source), source, where)


def _missing(segment: object, reason: str) -> str:
    named = f" at `{segment}`" if segment is not None else ""
    return (
        f"has no value{named}: {reason}. Write `| default(...)` after a reference that may "
        "be missing"
    )


class _Text:
    """Text with templates in it: always a string."""

    __slots__ = ("_parts", "references", "source")
    is_literal = False
    whole_reference = None

    def __init__(self, source: str, parts: tuple[str | _Template, ...]) -> None:
        self.source = source
        self._parts = parts
        refs = (r for part in parts if not isinstance(part, str) for r in part.references)
        self.references = tuple(dict.fromkeys(refs))

    def render(self, context: Mapping[str, Any], step: str) -> str:
        return "".join(
            [p if isinstance(p, str) else p.render_text(context, step) for p in self._parts]
        )


class _List:
    __slots__ = ("_items", "references", "source")
    is_literal = False
    whole_reference = None

    def __init__(self, source: Any, items: list[Compiled]) -> None:
        self.source = source
        self._items = items
        self.references = tuple(dict.fromkeys(r for item in items for r in item.references))

    def render(self, context: Mapping[str, Any], step: str) -> list[Any]:
        return [item.render(context, step) for item in self._items]


class _Dict:
    __slots__ = ("_items", "references", "source")
    is_literal = False
    whole_reference = None

    def __init__(self, source: Any, items: dict[Any, Compiled]) -> None:
        self.source = source
        self._items = items
        refs = (r for item in items.values() for r in item.references)
        self.references = tuple(dict.fromkeys(refs))

    def render(self, context: Mapping[str, Any], step: str) -> dict[Any, Any]:
        return {key: item.render(context, step) for key, item in self._items.items()}
