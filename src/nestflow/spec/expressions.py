"""One template expression: parsed by Jinja, checked against SPEC 11.3, rewritten to evaluate.

``analyse(source)`` parses the text between ``{{`` and ``}}`` with Jinja's parser and walks
the tree: anything outside the grammar of SPEC 11.3 (calls, tests, ``**``, ``~``, tuples,
names starting with ``_``, unknown filters) is a problem. What the text reads is collected
as ``Reference`` values; whether those names exist depends on where the template is
written, which the caller checks. The result depends on the text alone, so it is cached.

The checked tree is rewritten before Jinja compiles it (nothing is evaluated here):
``null`` becomes ``None``; ``steps.<s>.<field>`` reads a step state through
``sandbox.step_field``; and every reference not read under ``| default`` is wrapped so that
it fails where it leads nowhere, naming the reason, rather than hiding a missing value in a
list or a comparison.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Final

from jinja2 import nodes
from jinja2.exceptions import TemplateSyntaxError
from jinja2.parser import Parser

from nestflow.spec.sandbox import DEFINED, ENV, FILTERS, STEP_FIELD
from nestflow.spec.schema import closest
from nestflow.spec.source import Key

MAX_DEPTH: Final = 32
"""How deeply an expression may nest; deeper ones are refused rather than recursed into."""


@dataclass(frozen=True, slots=True)
class Reference:
    """A name a template reads: its root and the path written out after it."""

    root: str
    path: tuple[Key, ...]
    """The segments written as names or constants, up to the first computed one."""
    guarded: bool = False
    """Read under ``| default(...)``: a missing value does not fail the template."""

    @property
    def step(self) -> str | None:
        """The step read, for references under ``steps``."""
        return str(self.path[0]) if self.root == "steps" and self.path else None

    @property
    def skips_with_step(self) -> bool:
        """Whether the referencing step is skipped when the step read did not succeed.

        True for ``result`` and published names; false for ``.status``, ``.error`` and
        references under ``| default`` (SPEC 11.4).
        """
        reads_state = self.path[1:2] in (("status",), ("error",))
        return self.step is not None and not self.guarded and not reads_state


@dataclass(frozen=True, slots=True)
class Analysis:
    """What one expression's text says, wherever it is written."""

    references: tuple[Reference, ...] = ()
    problems: tuple[str, ...] = ()
    plain: Reference | None = None
    """Set when the expression is this reference alone, every segment written out."""
    template: Any = None
    """The compiled Jinja template, unless the expression is plain or has problems."""


class _TooDeep(Exception):
    pass


@lru_cache(maxsize=4096)
def analyse(source: str) -> Analysis:
    """The references, problems and evaluator of the expression ``source``."""
    try:
        tree = _parse(source)
        plain = _plain_reference(tree)
        walker = _Walker()
        tree = walker.visit(tree)
    except TemplateSyntaxError as exc:
        return Analysis(problems=(f"not a valid expression: {exc.message}",))
    except (RecursionError, _TooDeep):
        return Analysis(problems=(f"the expression nests more than {MAX_DEPTH} levels deep",))
    except ValueError as exc:  # Jinja's lexer on a number Python refuses (4300+ digits)
        return Analysis(problems=(f"not a valid expression: {exc}",))
    references = tuple(dict.fromkeys(walker.references))
    if walker.problems or plain is not None:
        return Analysis(references, tuple(walker.problems), plain)
    return Analysis(references, (), None, _jinja_template(tree))


def _parse(source: str) -> nodes.Expr:
    parser = Parser(ENV, source, state="variable")
    tree = parser.parse_expression()
    if not parser.stream.eos:
        token = parser.stream.current
        parser.fail(f"unexpected `{token.value or token.type}` after the expression")
    return tree


def _plain_reference(tree: nodes.Expr) -> Reference | None:
    base, ops = _unwind(tree)
    if not isinstance(base, nodes.Name) or base.name == "null":
        return None
    path = _static_path(ops)
    return Reference(base.name, path) if len(path) == len(ops) else None


def _jinja_template(tree: nodes.Expr) -> Any:
    # The outer filter takes the context, so Jinja cannot fold the output into a constant
    # string at compile time: native output keeps each value's type, and nothing runs now.
    output = nodes.Output([_call(DEFINED, tree)], lineno=1)
    body = nodes.Template([output], lineno=1)
    body.set_environment(ENV)
    return ENV.from_string(body)


_Op = nodes.Getattr | nodes.Getitem
_CHAIN = (nodes.Name, nodes.Getattr, nodes.Getitem)


def _unwind(node: nodes.Expr) -> tuple[nodes.Expr, list[_Op]]:
    """The base of ``a.b[c].d`` (``a``, or any expression) and its lookups in order."""
    ops: list[_Op] = []
    while isinstance(node, nodes.Getattr | nodes.Getitem):
        ops.append(node)
        node = node.node
    ops.reverse()
    return node, ops


def _static_key(op: _Op) -> Key | None:
    """The key of a lookup written out (``.name``, ``.0``, ``['k']``, ``[-1]``), else None."""
    if isinstance(op, nodes.Getattr):
        return op.attr
    arg = op.arg
    if isinstance(arg, nodes.Neg) and isinstance(arg.node, nodes.Const):
        return -arg.node.value if type(arg.node.value) is int else None
    if isinstance(arg, nodes.Const) and type(arg.value) in (int, str):
        return arg.value  # type: ignore[no-any-return]
    return None


def _static_path(ops: list[_Op]) -> tuple[Key, ...]:
    path: list[Key] = []
    for op in ops:
        key = _static_key(op)
        if key is None:
            break
        path.append(key)
    return tuple(path)


def _call(name: str, node: nodes.Expr, *args: nodes.Expr) -> nodes.Filter:
    """A filter applied to ``node``; internal filters cannot be written in a workflow."""
    return nodes.Filter(node, name, list(args), [], None, None, lineno=node.lineno or 1)


class _Walker:
    """Checks a parsed expression node by node, rewriting it (see the module docstring)."""

    def __init__(self) -> None:
        self.problems: list[str] = []
        self.references: list[Reference] = []
        self.depth = 0

    def visit(self, node: nodes.Expr) -> nodes.Expr:
        handler = _HANDLERS.get(type(node))
        if handler is None:
            self.problems.append(_refusal(node))
            return node
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                raise _TooDeep
            return handler(self, node)
        finally:
            self.depth -= 1

    def const(self, node: nodes.Const) -> nodes.Expr:
        return node

    def binary(self, node: nodes.BinExpr | nodes.And | nodes.Or) -> nodes.Expr:
        node.left = self.visit(node.left)
        node.right = self.visit(node.right)
        return node

    def unary(self, node: nodes.UnaryExpr) -> nodes.Expr:
        node.node = self.visit(node.node)
        return node

    def sequence(self, node: nodes.List) -> nodes.Expr:
        node.items = [self.visit(item) for item in node.items]
        return node

    def mapping(self, node: nodes.Dict) -> nodes.Expr:
        for pair in node.items:
            pair.key = self.visit(pair.key)
            pair.value = self.visit(pair.value)
        return node

    def compare(self, node: nodes.Compare) -> nodes.Expr:
        node.expr = self.visit(node.expr)
        for operand in node.ops:
            operand.expr = self.visit(operand.expr)
        return node

    def conditional(self, node: nodes.CondExpr) -> nodes.Expr:
        if node.expr2 is None:
            self.problems.append("a conditional needs `else`: write `a if condition else b`")
        else:
            node.expr2 = self.visit(node.expr2)
        node.test = self.visit(node.test)
        node.expr1 = self.visit(node.expr1)
        return node

    def filter(self, node: nodes.Filter) -> nodes.Expr:
        problem = _filter_problem(node)
        if problem:
            self.problems.append(problem)
        node.args = [self.visit(arg) for arg in node.args]
        assert node.node is not None  # only {% filter %} blocks have none
        if node.name == "default" and isinstance(node.node, _CHAIN):
            node.node = self.chain(node.node, guarded=True)
        else:
            node.node = self.visit(node.node)
        return node

    def chain(self, node: nodes.Expr, guarded: bool = False) -> nodes.Expr:
        """A reference (``a.b[c]``) or lookups into any expression (``[1, 2][0]``)."""
        base, ops = _unwind(node)
        for op in ops:
            self.segment(op)
        if isinstance(base, nodes.Name):
            if base.name == "null" and not ops:
                return nodes.Const(None, lineno=base.lineno)
            base, ops = self.root(base, ops, guarded)
        else:
            base = self.visit(base)
        for op in ops:
            op.node, base = base, op
        return base if guarded else _call(DEFINED, base)

    def segment(self, op: _Op) -> None:
        if isinstance(op, nodes.Getattr):
            if op.attr.startswith("_"):
                self.problems.append(f"`{op.attr}` starts with `_`: such names are never read")
        elif isinstance(op.arg, nodes.Slice):
            for bound in ("start", "stop", "step"):
                if (part := getattr(op.arg, bound)) is not None:
                    setattr(op.arg, bound, self.visit(part))
        elif _static_key(op) is None:
            op.arg = self.visit(op.arg)

    def root(self, base: nodes.Name, ops: list[_Op], guarded: bool) -> tuple[nodes.Expr, list[_Op]]:
        if base.name.startswith("_"):
            self.problems.append(f"`{base.name}` starts with `_`: such names are never read")
            return base, ops
        path = _static_path(ops)
        self.references.append(Reference(base.name, path, guarded))
        if base.name == "steps" and len(path) >= 2:
            state = _call(STEP_FIELD, base, nodes.Const(path[0]), nodes.Const(path[1]))
            return state, ops[2:]
        return base, ops


_BINARY = (
    nodes.Add, nodes.Sub, nodes.Mul, nodes.Div, nodes.FloorDiv, nodes.Mod, nodes.And, nodes.Or,
)  # fmt: skip
_HANDLERS: dict[type[nodes.Node], Callable[[_Walker, Any], nodes.Expr]] = {
    nodes.Const: _Walker.const,
    **dict.fromkeys(_BINARY, _Walker.binary),
    nodes.Neg: _Walker.unary,
    nodes.Not: _Walker.unary,
    nodes.List: _Walker.sequence,
    nodes.Dict: _Walker.mapping,
    nodes.Compare: _Walker.compare,
    nodes.CondExpr: _Walker.conditional,
    nodes.Filter: _Walker.filter,
    **dict.fromkeys(_CHAIN, _Walker.chain),
}

_REFUSALS: dict[type[nodes.Node], str] = {
    nodes.Test: "tests (`x is defined`) are not supported: `x | default(v)` covers a value "
    "that may be missing",
    nodes.Concat: "`~` is not supported: join strings with `+`, or write templates in text",
    nodes.Pow: "`**` is not supported",
    nodes.Tuple: "tuples are not supported: write a list, `[a, b]`",
    nodes.Pos: "unary `+` is not supported",
}


def _refusal(node: nodes.Node) -> str:
    if isinstance(node, nodes.Call):
        callee = node.node
        name = callee.name if isinstance(callee, nodes.Name) else getattr(callee, "attr", "")
        return (
            f"function calls (`{name or '...'}(...)`) are not allowed: templates compute with "
            f"operators and the filters {_filter_list()} (`x | length`, not `len(x)`)"
        )
    return _REFUSALS.get(type(node), f"{type(node).__name__} expressions are not supported")


def _filter_problem(node: nodes.Filter) -> str | None:
    arity = FILTERS.get(node.name)
    if arity is None:
        return (
            f"there is no filter `{node.name}`{closest(node.name, list(FILTERS))}; "
            f"the filters are {_filter_list()}"
        )
    if node.kwargs or node.dyn_args or node.dyn_kwargs:
        return f"the filter `{node.name}` takes positional arguments only"
    low, high = arity
    if not low <= len(node.args) <= high:
        wanted = f"{low} or {high}" if low != high else str(low)
        return f"the filter `{node.name}` takes {wanted} argument(s), not {len(node.args)}"
    return None


def _filter_list() -> str:
    return ", ".join(f"`{name}`" for name in FILTERS)
