"""The static part of a code fingerprint: what a code object is and which names it reads.

A function's source as a syntax tree without decorators, docstrings, comments or layout,
and the global names and ``module.attr`` chains its bytecode loads, or writes to (state,
which :mod:`nestflow.cache.code` keys by type only).
"""

from __future__ import annotations

import ast
import dis
import inspect
import linecache
import textwrap
from collections.abc import Iterator, Sequence
from hashlib import sha256
from types import CodeType
from typing import Any

__all__ = ["Chain", "parse", "source_digest", "tree_digest", "uses"]

Chain = tuple[str, ...]
"""A global name and the attributes read after it: ``("np", "linalg", "norm")``."""

_HEADS = frozenset({"LOAD_GLOBAL", "LOAD_NAME", "LOAD_DEREF", "LOAD_CLASSDEREF"})
_LINKS = frozenset({"LOAD_ATTR", "LOAD_METHOD"})
_REBINDS = frozenset({"STORE_GLOBAL", "DELETE_GLOBAL", "STORE_DEREF", "DELETE_DEREF"})
_SIMPLE_LOADS = frozenset({"LOAD_CONST", "LOAD_FAST", "LOAD_GLOBAL", "LOAD_DEREF", "LOAD_NAME"})
# After ``table`` and a simple key: an item store, delete, or the COPY of ``table[k] += x``.
_ITEM_WRITES = frozenset({"STORE_SUBSCR", "DELETE_SUBSCR", "COPY"})
_MUTATOR_NAMES = """append appendleft add clear discard extend extendleft insert pop popitem popleft
    remove reverse rotate setdefault sort update put put_nowait set acquire release write
    writelines send sendall flush close __setitem__ __delitem__ __iadd__"""
_MUTATORS = frozenset(_MUTATOR_NAMES.split())


def code_tree(code: CodeType) -> Iterator[CodeType]:
    yield code
    for const in code.co_consts:
        if isinstance(const, CodeType):
            yield from code_tree(const)


def uses(code: CodeType) -> tuple[set[Chain], set[Chain]]:
    """The global chains the code reads, and the chains (globals or cells) it writes to."""
    chains: set[Chain] = set()
    mutated: set[Chain] = set()
    for part in code_tree(code):
        ops = [op for op in dis.get_instructions(part) if op.opname != "EXTENDED_ARG"]
        for index, op in enumerate(ops):
            if op.opname in _REBINDS:
                mutated.add((op.argval,))
            elif op.opname in _HEADS:
                end = index + 1
                while end < len(ops) and ops[end].opname in _LINKS:
                    end += 1
                chain = (op.argval, *(link.argval for link in ops[index + 1 : end]))
                if op.opname in ("LOAD_GLOBAL", "LOAD_NAME"):
                    chains.add(chain)
                mutated.update(written(chain, ops[end : end + 3]))
    return chains, mutated


def written(chain: Chain, after: Sequence[dis.Instruction]) -> list[Chain]:
    """What a load of ``chain`` followed by ``after`` writes: method, attribute, item stores."""
    found = [chain[:-1]] if len(chain) > 1 and chain[-1] in _MUTATORS else []
    names = [op.opname for op in after]
    if names[:1] in (["BEFORE_WITH"], ["BEFORE_ASYNC_WITH"]):  # a lock or another resource
        found.append(chain)
    elif names[:1] in (["STORE_ATTR"], ["DELETE_ATTR"]):
        found += [chain, (*chain, after[0].argval)]
    elif names[:2] == ["COPY", "LOAD_ATTR"]:
        found += [chain, (*chain, after[1].argval)]
    elif len(names) > 1 and names[0] in _SIMPLE_LOADS and names[1] in _ITEM_WRITES:
        found.append(chain)
    return found


def parse(obj: Any) -> ast.Module | None:
    filename = getattr(obj, "co_filename", None)
    if filename is not None and filename[:1] == "<" and filename not in linecache.cache:
        return None  # exec'd code with no source anywhere (notebook cells are in linecache)
    try:
        return ast.parse(textwrap.dedent(inspect.getsource(obj)))
    except (OSError, TypeError, ValueError, IndexError, SyntaxError):
        return None


def source_digest(code: CodeType) -> bytes | None:
    tree = parse(code)
    if tree is None:
        return None
    if code.co_name == "<lambda>":
        lambdas = [node for node in ast.walk(tree) if isinstance(node, ast.Lambda)]
        return tree_digest(b"lambda", lambdas[0]) if len(lambdas) == 1 else None
    first = tree.body[0] if tree.body else None
    if not isinstance(first, ast.FunctionDef | ast.AsyncFunctionDef) or first.name != code.co_name:
        return None
    first.decorator_list = []
    return tree_digest(b"source", first)


def tree_digest(kind: bytes, root: ast.AST) -> bytes:
    """Digest of a syntax tree without docstrings; comments and layout never reach the tree."""
    for node in ast.walk(root):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                node.body = node.body[isinstance(first.value.value, str) :]
    dump = ast.dump(root, annotate_fields=False, include_attributes=False)
    return sha256(kind + b"\0" + dump.encode("utf-8", "surrogatepass")).digest()
