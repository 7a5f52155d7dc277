"""What counts as user code, and how library objects are named in fingerprints."""

from __future__ import annotations

import contextlib
import inspect
import os
import sys
import sysconfig
import types
from typing import Any

__all__ = ["LIBRARY_CALLABLES", "is_user_module", "qualified_name", "unwrap"]

#: Callables implemented in C: never user code, keyed by qualified name.
LIBRARY_CALLABLES: tuple[type, ...] = (
    types.BuiltinFunctionType,
    types.WrapperDescriptorType,
    types.MethodDescriptorType,
    types.MethodWrapperType,
    types.ClassMethodDescriptorType,
)


_PATHS = sysconfig.get_paths()
_KEYS = ("stdlib", "platstdlib", "purelib", "platlib")
_LIBRARY_DIRS = tuple({os.path.join(os.path.realpath(_PATHS[k]), "") for k in _KEYS})
_INSTALLED = (f"{os.sep}site-packages{os.sep}", f"{os.sep}dist-packages{os.sep}")
_USER_MODULES: dict[str, bool] = {}


def is_user_module(name: str | None) -> bool:
    """Whether module ``name`` is user code: not installed, not the stdlib, not nestflow."""
    if name is None:
        return True
    known = _USER_MODULES.get(name)
    if known is None:
        known = _USER_MODULES[name] = _classify_module(name)
    return known


def _classify_module(name: str) -> bool:
    if name == "__main__":
        return True
    if name.partition(".")[0] == "nestflow" or name in sys.builtin_module_names:
        return False
    module = sys.modules.get(name)
    file = getattr(module, "__file__", None)
    if module is None or not isinstance(file, str):
        origin = getattr(getattr(module, "__spec__", None), "origin", None)
        return origin not in ("built-in", "frozen")
    path = os.path.realpath(file)
    return not (path.startswith(_LIBRARY_DIRS) or any(mark in path for mark in _INSTALLED))


def qualified_name(obj: Any) -> str:
    """``module.qualname`` of a class, function or builtin, as fingerprints spell it."""
    module = getattr(obj, "__module__", None)
    if not isinstance(module, str):
        owner = getattr(obj, "__objclass__", None) or type(getattr(obj, "__self__", None))
        module = getattr(owner, "__module__", "builtins")
    name = getattr(obj, "__qualname__", None) or getattr(obj, "__name__", None)
    return f"{module}.{name if isinstance(name, str) else type(obj).__qualname__}"


def unwrap(obj: Any) -> Any:
    """The function behind a nestflow ``Node`` or a ``functools.wraps`` decorator."""
    kind = type(obj)
    if kind.__name__ == "Node" and kind.__module__.partition(".")[0] == "nestflow":
        obj = getattr(obj, "func", obj)
    if callable(obj) and hasattr(obj, "__wrapped__"):
        with contextlib.suppress(ValueError):
            obj = inspect.unwrap(obj)
    return obj
