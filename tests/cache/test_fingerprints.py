"""Value and code fingerprints (SPEC 8.2, 8.3): type exactness, determinism, invalidation."""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import importlib
import inspect
import itertools
import json
import math
import os
import socket
import struct
import subprocess
import sys
import textwrap
import threading
import uuid
import warnings
from collections import OrderedDict, namedtuple
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from decimal import Decimal
from enum import Enum
from fractions import Fraction
from pathlib import Path, PurePosixPath
from types import FunctionType, ModuleType, SimpleNamespace
from typing import Any

import pytest

from nestflow.cache.fingerprint import (
    MAX_DEPTH,
    Unhashable,
    code_fingerprint,
    fingerprint,
    register_fingerprint,
)
from nestflow.core.node import Node
from nestflow.errors import CacheWarning

HERE = Path(__file__).parent


def fingerprints(*values: Any) -> list[bytes]:
    return [fingerprint(value) for value in values]


def assert_all_distinct(values: list[Any]) -> None:
    digests = fingerprints(*values)
    assert len(set(digests)) == len(values), [
        (a, b) for a, b in itertools.combinations(values, 2) if fingerprint(a) == fingerprint(b)
    ]


@pytest.fixture
def load_modules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Any]]:
    """Write module sources to a fresh folder and import them, as after an edit and a restart."""
    versions = itertools.count()
    loaded: set[str] = set()

    def load(**sources: str) -> SimpleNamespace:
        folder = tmp_path / f"version{next(versions)}"
        folder.mkdir()
        for name, source in sources.items():
            (folder / f"{name}.py").write_text(textwrap.dedent(source))
            sys.modules.pop(name, None)
        monkeypatch.syspath_prepend(str(folder))
        importlib.invalidate_caches()
        loaded.update(sources)
        return SimpleNamespace(**{name: importlib.import_module(name) for name in sources})

    yield load
    for name in loaded:
        sys.modules.pop(name, None)


@contextlib.contextmanager
def no_warnings() -> Iterator[None]:
    """A block in which any warning fails the test."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


# --- type exactness -------------------------------------------------------------------------


def test_values_of_different_types_never_share_a_fingerprint() -> None:
    assert_all_distinct([1, "1", True, "True", 1.0, [1, 2], (1, 2)])  # A8.4
    assert_all_distinct(
        [1, "1", True, 1.0, Decimal(1), Fraction(1), 1 + 0j, b"1", bytearray(b"1"), None]
    )
    assert_all_distinct([0, False, 0.0, -0.0, "", b"", (), [], {}, set(), frozenset(), None])
    assert_all_distinct([range(3), [0, 1, 2], (0, 1, 2)])


def test_equal_values_built_separately_share_a_fingerprint() -> None:
    assert fingerprint([1, {"a": (2.5, None)}]) == fingerprint([1, {"a": (2.5, None)}])
    assert fingerprint(10**40) == fingerprint(int("1" + "0" * 40))
    assert fingerprint("é") == fingerprint("e\u0301".replace("e\u0301", "é"))


def test_dicts_and_sets_do_not_depend_on_insertion_order() -> None:
    forward = {"a": 1, "b": [2, 3], 4: "x"}
    backward = dict(reversed(list(forward.items())))
    assert fingerprint(forward) == fingerprint(backward)
    one_first, nine_first = {1}, {9}
    one_first.add(9)
    nine_first.add(1)
    assert list(one_first) != list(nine_first)  # 1 and 9 collide in a small set table
    assert fingerprint(one_first) == fingerprint(nine_first)
    assert fingerprint(frozenset(one_first)) == fingerprint(frozenset(nine_first))
    assert fingerprint(frozenset(one_first)) != fingerprint(one_first)
    assert fingerprint({"a": 1, "b": 2}) != fingerprint({"a": 2, "b": 1})


def test_floats_are_keyed_by_exact_value_with_one_nan() -> None:
    quiet_nan = struct.unpack(">d", bytes.fromhex("7ff8000000000001"))[0]
    assert fingerprint(math.nan) == fingerprint(-math.nan) == fingerprint(quiet_nan)
    assert fingerprint(0.1 + 0.2) != fingerprint(0.3)
    assert fingerprint(complex(math.nan, 1)) == fingerprint(complex(-math.nan, 1))
    assert fingerprint([math.nan]) == fingerprint([float("nan")])


def test_a_change_deep_inside_nested_containers_changes_the_fingerprint() -> None:
    base = {"runs": [{"lr": 0.1, "layers": (64, 32)}, {"lr": 0.2, "layers": (64,)}]}
    edited = {"runs": [{"lr": 0.1, "layers": (64, 32)}, {"lr": 0.2, "layers": (65,)}]}
    assert fingerprint(base) != fingerprint(edited)
    assert fingerprint([[1], [2]]) != fingerprint([[1, 2]])
    assert fingerprint(["ab", "c"]) != fingerprint(["a", "bc"])


def test_standard_library_values_have_exact_rules() -> None:
    class Color(Enum):
        RED = 1
        BLUE = 2

    Pair = namedtuple("Pair", "left right")
    moment = dt.datetime(2024, 5, 1, 12, 0)
    utc = moment.replace(tzinfo=dt.UTC)
    assert_all_distinct([moment, utc, moment.date(), moment.time(), dt.timedelta(days=1)])
    assert_all_distinct([Color.RED, Color.BLUE, 1, Pair(1, 2), (1, 2), {"left": 1, "right": 2}])
    assert_all_distinct([Path("a/b"), PurePosixPath("a/b"), "a/b", uuid.UUID(int=1), b"\1"])
    assert fingerprint(OrderedDict(a=1)) != fingerprint({"a": 1})
    assert fingerprint(utc) == fingerprint(dt.datetime(2024, 5, 1, 12, tzinfo=dt.UTC))
    assert fingerprint(object()) == fingerprint(object())


# --- determinism across processes -----------------------------------------------------------

_SUBPROCESS = """
import json, sys
sys.path.insert(0, sys.argv[1])
from fingerprint_samples.samples import sample_values
from nestflow.cache.fingerprint import fingerprint
print(json.dumps({name: fingerprint(value).hex() for name, value in sample_values().items()}))
"""


def test_fingerprints_are_the_same_in_other_processes_and_hash_seeds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.syspath_prepend(str(HERE))
    samples = importlib.import_module("fingerprint_samples.samples")
    here = {name: fingerprint(value).hex() for name, value in samples.sample_values().items()}
    for seed in ("0", "4242"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        command = [sys.executable, "-c", _SUBPROCESS, str(HERE)]
        result = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
        assert json.loads(result.stdout) == here


# --- precedence: registered fingerprinter, __cache_key__, built-in rules ---------------------


def test_cache_key_decides_the_fingerprint_and_is_tagged_with_the_class() -> None:
    class Model:
        def __init__(self, name: str, weights: list[float]) -> None:
            self.name, self.weights = name, weights

        def __cache_key__(self) -> str:
            return self.name

    class Other:
        def __cache_key__(self) -> str:
            return "bert"

    assert fingerprint(Model("bert", [1.0])) == fingerprint(Model("bert", [2.0]))
    assert fingerprint(Model("bert", [1.0])) != fingerprint(Model("gpt", [1.0]))
    assert fingerprint(Model("bert", [])) not in fingerprints(Other(), "bert")


def test_a_registered_fingerprinter_wins_over_cache_key_and_covers_subclasses() -> None:
    class Base:
        def __init__(self, size: int) -> None:
            self.size = size

        def __cache_key__(self) -> int:
            return 0

    class Child(Base):
        pass

    before = fingerprint(Base(1))
    assert before == fingerprint(Base(2))
    register_fingerprint(Base, lambda value: value.size)
    assert fingerprint(Base(1)) != before
    assert fingerprint(Base(1)) != fingerprint(Base(2))
    assert fingerprint(Child(1)) != fingerprint(Child(2))
    assert fingerprint(Child(1)) != fingerprint(Base(1))


def test_register_fingerprint_rejects_non_classes() -> None:
    with pytest.raises(TypeError, match="needs a class"):
        register_fingerprint("int", str)  # type: ignore[arg-type]


# --- dataclasses and plain objects (A8.6) ----------------------------------------------------


@dataclass
class Leaf:
    value: int
    scratch: list[int] = field(default_factory=list, compare=False)


@dataclass
class Branch:
    leaf: Leaf
    label: str = "b"


@dataclass
class Tree:
    branch: Branch
    size: int = 3


def test_a_leaf_change_three_levels_down_a_dataclass_changes_the_fingerprint() -> None:
    tree = Tree(Branch(Leaf(1)))
    assert fingerprint(tree) == fingerprint(Tree(Branch(Leaf(1))))
    before = fingerprint(tree)
    tree.branch.leaf.value = 2
    assert fingerprint(tree) != before
    tree.branch.leaf.scratch.append(9)  # compare=False fields are left out, like in __eq__
    assert fingerprint(tree) == fingerprint(Tree(Branch(Leaf(2))))


def test_public_attributes_count_and_private_ones_do_not() -> None:
    class Config:
        def __init__(self, rate: float) -> None:
            self.rate = rate
            self._cache: dict[str, int] = {}

    config = Config(0.1)
    before = fingerprint(config)
    config._cache["hit"] = 1
    assert fingerprint(config) == before
    config.rate = 0.2
    assert fingerprint(config) != before


def test_slotted_objects_use_their_public_slots() -> None:
    class Slotted:
        __slots__ = ("_hidden", "shown")

        def __init__(self, shown: int, hidden: int) -> None:
            self.shown, self._hidden = shown, hidden

    assert fingerprint(Slotted(1, 1)) == fingerprint(Slotted(1, 2))
    assert fingerprint(Slotted(1, 1)) != fingerprint(Slotted(2, 1))


def test_objects_without_public_attributes_share_a_key_and_warn_once() -> None:
    class Opaque:
        def __init__(self, secret: int) -> None:
            self._secret = secret

    with pytest.warns(CacheWarning, match="Opaque has no public attributes"):
        first = fingerprint(Opaque(1))
    with no_warnings():
        assert fingerprint(Opaque(2)) == first


def test_duck_typed_attrs_and_pydantic_classes_are_keyed_by_their_fields() -> None:
    class AttrsLike:
        __attrs_attrs__ = (SimpleNamespace(name="x", eq=True), SimpleNamespace(name="y", eq=False))

        def __init__(self, x: int, y: int) -> None:
            self.x, self.y = x, y

    class PydanticLike:
        __pydantic_fields__: dict[str, Any] = {"x": None}

        def __init__(self, x: int) -> None:
            self._x = x

        def model_dump(self, mode: str) -> dict[str, Any]:
            return {"x": self._x}

    assert fingerprint(AttrsLike(1, 1)) == fingerprint(AttrsLike(1, 2))
    assert fingerprint(AttrsLike(1, 1)) != fingerprint(AttrsLike(2, 1))
    assert fingerprint(PydanticLike(1)) != fingerprint(PydanticLike(2))


# --- cycles, depth, unhashable values ---------------------------------------------------------


def test_reference_cycles_are_encoded_as_back_references() -> None:
    loop: list[Any] = [1]
    loop.append(loop)
    other: list[Any] = [1]
    other.append(other)
    assert fingerprint(loop) == fingerprint(other)
    assert fingerprint(loop) != fingerprint([1, [1]])
    node = SimpleNamespace(name="a")
    node.self = node
    table: dict[str, Any] = {}
    table["me"] = table
    assert len(set(fingerprints(node, table, loop))) == 3


def test_shared_references_are_encoded_like_copies() -> None:
    shared = [1, 2]
    assert fingerprint([shared, shared]) == fingerprint([[1, 2], [1, 2]])


def test_nesting_deeper_than_the_limit_raises_unhashable() -> None:
    def nested(depth: int) -> list[Any]:
        value: list[Any] = []
        for _ in range(depth - 1):
            value = [value]
        return value

    fingerprint(nested(MAX_DEPTH))
    with pytest.raises(Unhashable, match=f"more than {MAX_DEPTH}") as caught:
        fingerprint(nested(MAX_DEPTH + 1))
    assert caught.value.where == "[0]" * MAX_DEPTH


@pytest.mark.parametrize(
    ("make", "type_name"),
    [
        (threading.Lock, "_thread.lock"),
        (lambda: (n for n in range(3)), "builtins.generator"),
        (lambda: sys, "builtins.module"),
    ],
)
def test_values_without_a_stable_value_raise_unhashable(
    make: Callable[[], Any], type_name: str
) -> None:
    with pytest.raises(Unhashable) as caught:
        fingerprint(make())
    assert (caught.value.type_name, caught.value.where) == (type_name, "")
    assert isinstance(caught.value, TypeError)
    assert "__cache_key__" in str(caught.value)


def test_unhashable_reports_where_inside_the_value_it_is() -> None:
    with socket.socket() as sock:
        value = SimpleNamespace(config=SimpleNamespace(items=[1, 2, sock]))
        with pytest.raises(Unhashable) as caught:
            fingerprint(value)
        assert (caught.value.type_name, caught.value.where) == ("socket.socket", "config.items[2]")
        with pytest.raises(Unhashable) as caught:
            fingerprint({"inputs": (0, {"conn": sock})})
        assert caught.value.where == "['inputs'][1]['conn']"
        assert "at ['inputs'][1]['conn']" in str(caught.value)


# --- NumPy and pandas (installed by the dev extra) --------------------------------------------


def test_numpy_arrays_are_keyed_by_dtype_shape_and_contents() -> None:
    import numpy as np

    grid = np.arange(6, dtype=np.int64).reshape(2, 3)
    assert fingerprint(grid) == fingerprint(np.arange(6, dtype=np.int64).reshape(2, 3))
    assert fingerprint(grid.T) == fingerprint(np.ascontiguousarray(grid.T))
    assert_all_distinct([grid, grid.reshape(3, 2), grid.astype(np.int32), grid.tolist()])
    changed = grid.copy()
    changed[1, 2] = 7
    assert fingerprint(changed) != fingerprint(grid)
    assert fingerprint(np.array([np.nan, 1.0])) == fingerprint(np.array([-np.nan, 1.0]))
    assert fingerprint(np.array([{"a": 1}], dtype=object)) != fingerprint(np.array([{"a": 2}]))
    assert_all_distinct([np.float64(1.0), 1.0, np.float32(1.0), np.int64(1)])
    assert_all_distinct([np.dtype("int64"), np.dtype("int32"), "int64"])


def test_pandas_objects_are_keyed_by_labels_dtypes_and_contents() -> None:
    import pandas as pd

    def frame(**columns: Any) -> Any:
        return pd.DataFrame(columns, index=["r1", "r2"])

    base = frame(a=[1, 2], b=["x", "y"])
    assert fingerprint(base) == fingerprint(frame(a=[1, 2], b=["x", "y"]))
    changed = base.copy()
    changed.loc["r2", "a"] = 3
    assert_all_distinct(
        [
            base,
            changed,
            frame(b=["x", "y"], a=[1, 2]),  # column order
            frame(a=[1.0, 2.0], b=["x", "y"]),  # dtype
            base.set_axis(["r1", "r3"]),  # index labels
            base["a"],
            base["a"].rename("other"),
            base.index,
        ]
    )
    assert fingerprint(pd.Series([1, None], dtype="Int64")) != fingerprint(pd.Series([1, 2]))
    assert fingerprint(pd.Categorical(["a", "b"])) == fingerprint(pd.Categorical(["a", "b"]))
    assert fingerprint(pd.Categorical(["a", "b"])) != fingerprint(pd.Categorical(["b", "a"]))


# --- code fingerprints: normalised source ----------------------------------------------------

_NODE = '''
def clean(text):
    """Strip and lower."""
    words = text.split()  # split on whitespace
    return " ".join(w.lower() for w in words)
'''
_NODE_REFORMATTED = '''
import functools


@functools.lru_cache(maxsize=None)
def clean(text):
    """Lower-case words, joined by single spaces.

    A longer docstring.
    """
    # Comments and layout do not matter.
    words = text.split(
    )
    return " ".join(
        w.lower()  for w in words
    )
'''
_NODE_EDITED = '''
def clean(text):
    """Strip and lower."""
    words = text.split()  # split on whitespace
    return " ".join(w.upper() for w in words)
'''


def test_comment_layout_docstring_and_decorator_edits_keep_the_code_fingerprint(
    load_modules: Callable[..., SimpleNamespace],
) -> None:
    original = code_fingerprint(load_modules(nf_text=_NODE).nf_text.clean)
    assert code_fingerprint(load_modules(nf_text=_NODE_REFORMATTED).nf_text.clean) == original
    assert code_fingerprint(load_modules(nf_text=_NODE_EDITED).nf_text.clean) != original


_HELPERS = """
def shout(text):
    return text.upper() + "!"
"""
_HELPERS_COMMENTED = """
def shout(text):
    # Louder.
    return text.upper() + "!"
"""
_HELPERS_EDITED = """
def shout(text):
    return text.upper() + "!!"
"""
_CALL_BY_NAME = """
from nf_helpers import shout

def greet(name):
    return shout("hello " + name)
"""
_CALL_BY_MODULE = """
import nf_helpers

def greet(name):
    return nf_helpers.shout("hello " + name)
"""


@pytest.mark.parametrize("caller", [_CALL_BY_NAME, _CALL_BY_MODULE])
def test_editing_a_helper_in_a_user_module_changes_the_callers_fingerprint(
    load_modules: Callable[..., SimpleNamespace], caller: str
) -> None:
    def greet_fingerprint(helpers: str) -> bytes:
        return code_fingerprint(load_modules(nf_helpers=helpers, nf_nodes=caller).nf_nodes.greet)

    original = greet_fingerprint(_HELPERS)
    assert greet_fingerprint(_HELPERS_COMMENTED) == original  # A8.7
    assert greet_fingerprint(_HELPERS_EDITED) != original


def test_rebinding_a_helper_or_a_module_constant_changes_the_same_functions_fingerprint(
    load_modules: Callable[..., SimpleNamespace],
) -> None:
    source = """
    FACTOR = 2

    def double(x):
        return x * FACTOR

    def triple(x):
        return x * 3

    def apply(x):
        return double(x) + 1
    """
    module = load_modules(nf_consts=source).nf_consts
    original = code_fingerprint(module.apply)
    assert code_fingerprint(module.apply) == original
    module.FACTOR = 3
    assert code_fingerprint(module.apply) != original
    module.FACTOR = 2
    assert code_fingerprint(module.apply) == original
    module.double = module.triple
    assert code_fingerprint(module.apply) != original


def test_in_place_changes_and_shadowed_builtins_change_the_fingerprint(
    load_modules: Callable[..., SimpleNamespace],
) -> None:
    source = """
    WEIGHTS = [1, 2]

    def total(items):
        return len(items) * sum(WEIGHTS)
    """
    module = load_modules(nf_weights=source).nf_weights
    original = code_fingerprint(module.total)
    module.WEIGHTS[0] = 5
    assert code_fingerprint(module.total) != original
    module.WEIGHTS[0] = 1
    assert code_fingerprint(module.total) == original
    module.len = lambda items: 0
    assert code_fingerprint(module.total) != original
    del module.len
    assert code_fingerprint(module.total) == original


def test_changing_a_closure_variable_changes_the_fingerprint() -> None:
    def make(scale: int) -> Callable[[int], int]:
        def scaled(x: int) -> int:
            return x * scale

        return scaled

    by_two = make(2)
    original = code_fingerprint(by_two)
    assert code_fingerprint(make(2)) == original
    assert code_fingerprint(make(3)) != original
    assert by_two.__closure__ is not None
    by_two.__closure__[0].cell_contents = 5
    assert code_fingerprint(by_two) == code_fingerprint(make(5)) != original


def test_state_the_function_writes_to_does_not_invalidate_it() -> None:
    calls: list[int] = []
    totals = {"sum": 0}
    count = 0
    lock = threading.Lock()

    def logged(x: int) -> int:
        nonlocal count
        with lock:
            count += 1
            calls.append(x)
            totals["sum"] += x
        return x

    with no_warnings():
        original = code_fingerprint(logged)
        logged(1)
        logged(2)
        assert code_fingerprint(logged) == original


def test_a_reference_that_cannot_be_fingerprinted_warns_once_naming_it() -> None:
    guard = threading.Lock()

    def locked(x: int) -> int:
        return x if guard.locked() else -x

    with pytest.warns(CacheWarning, match="'guard', a _thread.lock"):
        first = code_fingerprint(locked)
    with no_warnings():
        assert code_fingerprint(locked) == first


def test_functions_without_source_fall_back_to_bytecode() -> None:
    def compiled(source: str) -> Callable[..., Any]:
        namespace: dict[str, Any] = {}
        exec(source, namespace)
        function: Callable[..., Any] = namespace["f"]
        return function

    plus_one = compiled("f = lambda x: x + 1")
    with pytest.raises(OSError):
        inspect.getsource(plus_one)
    assert code_fingerprint(plus_one) == code_fingerprint(compiled("f = lambda x : x+1"))
    assert code_fingerprint(plus_one) != code_fingerprint(compiled("f = lambda x: x + 2"))
    double = compiled("def f(x):\n    return x * 2\n")
    assert code_fingerprint(double) != code_fingerprint(compiled("def f(x):\n    return x * 3\n"))


def test_lambdas_with_source_are_keyed_by_their_own_expression() -> None:
    first = lambda x: x + 1  # noqa: E731
    same = lambda x: x + 1  # noqa: E731
    other = lambda x: x + 2  # noqa: E731
    assert code_fingerprint(first) == code_fingerprint(same) != code_fingerprint(other)


def test_bound_methods_include_the_instance() -> None:
    @dataclass
    class Scaler:
        factor: int

        def apply(self, x: int) -> int:
            return x * self.factor

    assert code_fingerprint(Scaler(2).apply) == code_fingerprint(Scaler(2).apply)
    assert code_fingerprint(Scaler(2).apply) != code_fingerprint(Scaler(3).apply)
    assert fingerprint(Scaler(2).apply) != fingerprint(Scaler(3).apply)


def test_mutually_recursive_helpers_terminate_and_are_deterministic(
    load_modules: Callable[..., SimpleNamespace],
) -> None:
    source = """
    def is_even(n):
        return True if n == 0 else is_odd(n - 1)

    def is_odd(n):
        return False if n == 0 else is_even(n - 1)
    """
    module = load_modules(nf_parity=source).nf_parity
    first = code_fingerprint(module.is_even)
    assert code_fingerprint(module.is_odd) != first
    assert code_fingerprint(module.is_even) == first
    again = load_modules(nf_parity=source).nf_parity
    assert code_fingerprint(again.is_odd) == code_fingerprint(module.is_odd)
    assert code_fingerprint(again.is_even) == first


def test_threads_computing_the_same_fingerprints_at_once_agree(
    load_modules: Callable[..., SimpleNamespace],
) -> None:
    source = """
    def ping(n):
        return n if n <= 0 else pong(n - 1)

    def pong(n):
        return ping(n - 1)
    """
    ping = load_modules(nf_pingpong=source).nf_pingpong.ping

    def fresh_copy(_: int) -> bytes:  # a new function object has no memo yet
        return code_fingerprint(FunctionType(ping.__code__, ping.__globals__))

    expected = fresh_copy(0)
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible
    try:
        with ThreadPoolExecutor(max_workers=8) as pool:
            assert set(pool.map(fresh_copy, range(400))) == {expected}
    finally:
        sys.setswitchinterval(interval)


def test_editing_a_method_of_a_referenced_class_changes_the_fingerprint(
    load_modules: Callable[..., SimpleNamespace],
) -> None:
    source = """
    from dataclasses import dataclass

    @dataclass
    class Box:
        size: int

        def volume(self):
            return self.size ** {power}

    def make(size):
        return Box(size).volume()
    """
    cube = code_fingerprint(load_modules(nf_box=source.format(power=3)).nf_box.make)
    module = load_modules(nf_box=source.format(power=3)).nf_box
    assert code_fingerprint(module.make) == cube
    assert code_fingerprint(load_modules(nf_box=source.format(power=2)).nf_box.make) != cube
    module.Box.volume = lambda self: 0
    assert code_fingerprint(module.make) != cube


def test_nodes_and_wrapped_functions_are_keyed_by_the_innermost_function() -> None:
    def inner(x: int) -> int:
        return x + 1

    @functools.wraps(inner)
    def wrapper(x: int) -> int:
        return inner(x)

    assert code_fingerprint(Node(inner)) == code_fingerprint(inner)
    assert code_fingerprint(wrapper) == code_fingerprint(inner)


def test_library_helpers_are_keyed_by_name() -> None:
    def distance(x: float, y: float) -> float:
        return math.hypot(x, y) + len(os.path.join("a", "b"))

    assert code_fingerprint(distance) == code_fingerprint(distance)
    assert code_fingerprint(math.hypot) == code_fingerprint(math.hypot)
    assert code_fingerprint(math.hypot) != code_fingerprint(math.sqrt)


def test_functions_as_values_are_keyed_by_their_code() -> None:
    def first(x: int) -> int:
        return x + 1

    def second(x: int) -> int:
        return x + 2

    assert fingerprint(first) != fingerprint(second)
    assert fingerprint([first]) == fingerprint([first])
    assert fingerprint(functools.partial(first, 1)) != fingerprint(functools.partial(first, 2))
    assert isinstance(ModuleType, type)
    assert fingerprint(Leaf) != fingerprint(Branch)


def test_code_fingerprint_rejects_non_callables() -> None:
    with pytest.raises(TypeError, match="needs a callable"):
        code_fingerprint(42)  # type: ignore[arg-type]


def test_other_callables_have_code_fingerprints() -> None:
    class Doubler:
        def __init__(self, factor: int) -> None:
            self.factor = factor

        def __call__(self, x: int) -> int:
            return x * self.factor

        @property
        def half(self) -> float:
            return self.factor / 2

        @staticmethod
        def name() -> str:
            return "doubler"

    def add(x: int, y: int) -> int:
        return x + y

    assert code_fingerprint(Doubler) == code_fingerprint(Doubler)
    assert code_fingerprint(Doubler(2)) != code_fingerprint(Doubler(3))
    assert code_fingerprint(Doubler(2)) != code_fingerprint(Doubler)
    assert code_fingerprint(staticmethod(add)) == code_fingerprint(add)
    assert code_fingerprint(functools.partial(add, 1)) != code_fingerprint(
        functools.partial(add, 2)
    )
    assert code_fingerprint([].append) != code_fingerprint([].extend)
    assert code_fingerprint(dict) != code_fingerprint(list)


def test_attribute_writes_to_a_global_object_are_state(
    load_modules: Callable[..., SimpleNamespace],
) -> None:
    source = """
    from types import SimpleNamespace

    STATS = SimpleNamespace(count=0, last=None)

    def record(x):
        STATS.count += 1
        STATS.last = x
        return x
    """
    module = load_modules(nf_stats=source).nf_stats
    original = code_fingerprint(module.record)
    module.record(5)
    assert code_fingerprint(module.record) == original


def test_names_bound_later_and_empty_cells_are_seen_when_they_appear(
    load_modules: Callable[..., SimpleNamespace],
) -> None:
    module = load_modules(nf_later="def use(x):\n    return helper(x)\n").nf_later
    missing = code_fingerprint(module.use)
    module.helper = lambda x: x
    assert code_fingerprint(module.use) != missing

    def outer() -> Callable[[], int]:
        def inner() -> int:
            return late

        empty = code_fingerprint(inner)
        late = 1
        assert code_fingerprint(inner) != empty
        return inner

    outer()


def test_library_objects_and_library_bases_are_keyed_by_name(
    load_modules: Callable[..., SimpleNamespace],
) -> None:
    source = """
    from math import sqrt
    from os.path import join

    class Table(dict):
        def total(self):
            return sum(self.values())

    def area(side):
        return join("a", "b"), sqrt(side), Table(a=side).total()
    """
    module = load_modules(nf_library=source).nf_library
    original = code_fingerprint(module.area)
    module.sqrt = math.cbrt
    assert code_fingerprint(module.area) != original
    module.sqrt = math.sqrt
    assert code_fingerprint(module.area) == original


def test_user_code_is_told_apart_from_the_standard_library_and_nestflow() -> None:
    from nestflow.cache.code import is_user_module, qualified_name

    sys.modules["nf_fileless"] = ModuleType("nf_fileless")
    try:
        assert is_user_module("nf_fileless")
    finally:
        del sys.modules["nf_fileless"]
    assert is_user_module("__main__")
    assert is_user_module(__name__)
    assert not any(map(is_user_module, ["sys", "json", "os", "nestflow.core.node", "pytest"]))
    assert qualified_name([].append) == "builtins.list.append"
    assert qualified_name(str.upper) == "builtins.str.upper"


def test_more_standard_library_values_have_rules() -> None:
    import array
    import ipaddress
    import re
    from collections import deque

    class Name(str):
        pass

    assert_all_distinct([Name("a"), "a", deque([1]), [1], slice(1, 2), (1, 2, None), ...])
    assert_all_distinct([re.compile("a+"), re.compile("a+", re.I), array.array("i", [1])])
    assert_all_distinct([ipaddress.ip_address("10.0.0.1"), ipaddress.ip_network("10.0.0.0/8")])
    assert_all_distinct([memoryview(b"ab"), b"ab", [].append, [1].append, str.upper])
    assert fingerprint(memoryview(b"ab")) == fingerprint(memoryview(bytearray(b"ab")))
    assert fingerprint(staticmethod(len)) != fingerprint(classmethod(len))  # type: ignore[arg-type]
    zone = dt.timezone(dt.timedelta(hours=1), "CET")
    assert fingerprint(dt.time(1, tzinfo=zone)) != fingerprint(dt.time(1, tzinfo=dt.UTC))


def test_unhashable_keys_arguments_and_bound_instances_report_their_path() -> None:
    lock = threading.Lock()
    with pytest.raises(Unhashable) as caught:
        fingerprint({1: "a", frozenset({(lock,)}): "b"})
    assert caught.value.where == "<key 1>{0}[0]"
    with pytest.raises(Unhashable) as caught:
        fingerprint(functools.partial(print, SimpleNamespace(lock=lock)))
    assert caught.value.where == "args[0].lock"
    with pytest.raises(Unhashable) as caught:
        fingerprint(SimpleNamespace(lock=lock).__eq__)
    assert caught.value.where == "__self__.lock"
