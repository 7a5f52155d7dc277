"""``package.module:qualname`` references: what a function step (or a CLI target) names."""

from __future__ import annotations

import importlib
from typing import Any


class ReferenceProblem(Exception):
    """A reference that cannot be imported; the message says what was found and what to do."""


def import_reference(reference: str) -> Any:
    """The object ``reference`` (``"package.module:attribute.path"``) names.

    The module is imported as Python would (from ``sys.path``); the part after ``:`` is
    followed attribute by attribute. Names starting with ``_`` are refused: a workflow file
    reaches public callables only.
    """
    module_name, colon, qualname = reference.partition(":")
    if not colon or not module_name or not qualname:
        raise ReferenceProblem(
            f"`{reference}` is not a reference of the form `package.module:name` (a module "
            "path, a colon, then the attribute)"
        )
    parts = qualname.split(".")
    if any(not p.isidentifier() or p.startswith("_") for p in parts):
        raise ReferenceProblem(
            f"`{reference}` names `{qualname}`: each part after the colon must be a public "
            "identifier (no leading `_`)"
        )
    try:
        found: Any = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise ReferenceProblem(
            f"cannot import module `{module_name}` of `{reference}`: {exc}. Check the name, and "
            "that the module is on the Python path of the process loading the file"
        ) from None
    except Exception as exc:  # the module itself failed while importing
        raise ReferenceProblem(
            f"importing module `{module_name}` of `{reference}` failed: {type(exc).__name__}: {exc}"
        ) from None
    for depth, part in enumerate(parts):
        try:
            found = getattr(found, part)
        except AttributeError:
            where = ".".join([module_name, *parts[:depth]])
            raise ReferenceProblem(
                f"`{where}` has no attribute `{part}` (from `{reference}`)"
            ) from None
    return found
