"""The public API of ``nestflow``: a sorted ``__all__`` (A0.1) that loads no extra (A0.3)."""

from __future__ import annotations

import json
import subprocess
import sys
import types

import pytest

import nestflow
from errors_to_come import NOT_RAISED_YET

# The core names of the API, as the README and docs/ import them: `from nestflow import ...`.
DOCUMENTED = (
    "node",
    "Node",
    "Pipeline",
    "PipelineNode",
    "UNSET",
    "LocalBackend",
    "EffectiveConfig",
    "PipelineCallback",
    "CallbackContext",
    "Outputs",
    "RunReport",
    "capture",
    "format_error",
)

DOCUMENTED_ERRORS = (
    "NestflowError",
    "DefinitionError",
    "CycleError",
    "DependencyError",
    "InvalidNameError",
    "InvalidNodeError",
    "InvalidOptionError",
    "InvalidCallError",
    "MappingError",
    "ChainError",
    "InputError",
    "MissingInputError",
    "UnknownInputError",
    "UnknownOutputError",
    "MapInputError",
    "NodeOutputError",
    "NodeTimeoutError",
    "SerializationError",
    "RemoteExecutionError",
    "BackendError",
    "CacheError",
    "UnhashableInputError",
    "CacheStoreError",
    "SpecError",
    "SpecValidationError",
    "TemplateError",
    "ImportReferenceError",
    "NotSerializableError",
    "CircularDependencyError",
    "GuardError",
    "RecursionDepthError",
    "StepLimitError",
    "MemoryLimitError",
    "ServiceError",
    "AuthenticationError",
    "AuthorizationError",
    "SignatureError",
    "ReplayError",
    "ContractError",
    "CallDepthError",
    "CallCycleError",
    "NestflowWarning",
    "CacheWarning",
    "CallbackWarning",
    "BackendWarning",
    "MemoryWarning",
)

# Top-level modules of the runtime extras (pyproject.toml) and of the notebook display.
OPTIONAL_EXTRAS = (
    "rich",
    "graphviz",
    "dask",
    "distributed",
    "redis",
    "hiredis",
    "opentelemetry",
    "ipywidgets",
)


def _isort_key(name: str) -> tuple[int, str]:
    """The order ruff's RUF022 keeps ``__all__`` in: CONSTANTS, then Classes, then functions."""
    if name.isupper():
        return (0, name)
    if name[:1].isupper():
        return (1, name)
    return (2, name)


def _exported_names() -> set[str]:
    """Public names bound in the package namespace, leaving out submodules and __future__."""
    return {
        name
        for name, value in vars(nestflow).items()
        if not name.startswith("_")
        and not isinstance(value, types.ModuleType)
        and type(value).__module__ != "__future__"
    }


def test_a0_1_all_is_sorted() -> None:
    assert nestflow.__all__ == sorted(nestflow.__all__, key=_isort_key)


def test_a0_1_all_has_no_duplicates() -> None:
    assert len(nestflow.__all__) == len(set(nestflow.__all__))


LAZY = set(nestflow._LAZY)
"""Names the package gives on first use (``__getattr__``), so importing it stays light."""


def test_a0_1_all_equals_the_public_names_exported() -> None:
    assert set(nestflow.__all__) == _exported_names() | LAZY
    for name in LAZY:
        assert callable(getattr(nestflow, name))
    assert {"load_yaml", "pipeline_call", "DiskCache", "DaskBackend", "Chain"} <= LAZY


@pytest.mark.parametrize(
    "name", DOCUMENTED + tuple(e for e in DOCUMENTED_ERRORS if e not in NOT_RAISED_YET)
)
def test_a0_1_documented_name_is_in_all_and_importable(name: str) -> None:
    assert name in nestflow.__all__
    assert getattr(nestflow, name) is not None


def test_a0_1_star_import_gives_exactly_all() -> None:
    namespace: dict[str, object] = {}
    exec("from nestflow import *", namespace)
    assert set(namespace) - {"__builtins__"} == set(nestflow.__all__)


def test_a0_1_unset_is_a_distinct_singleton_with_repr_unset() -> None:
    assert repr(nestflow.UNSET) == "UNSET"
    assert nestflow.UNSET is not None
    assert nestflow.UNSET != None  # noqa: E711 - the point is that UNSET is not None
    assert type(nestflow.UNSET)() is nestflow.UNSET


def test_a0_1_documented_callables_are_callable() -> None:
    for name in ("node", "capture", "format_error"):
        assert callable(getattr(nestflow, name))
    for name in ("Node", "Pipeline", "PipelineNode", "LocalBackend", "Outputs", "RunReport"):
        assert isinstance(getattr(nestflow, name), type)


def _modules_after_import(statement: str) -> set[str]:
    code = f"import json, sys\n{statement}\nprint(json.dumps(sorted(sys.modules)))"
    completed = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=60
    )
    assert completed.returncode == 0, completed.stderr
    return set(json.loads(completed.stdout))


def test_a0_3_importing_nestflow_imports_no_optional_extra() -> None:
    loaded = {name.split(".")[0] for name in _modules_after_import("import nestflow")}
    assert "nestflow" in loaded
    assert loaded.isdisjoint(OPTIONAL_EXTRAS), sorted(loaded & set(OPTIONAL_EXTRAS))


def test_a0_3_using_the_core_api_imports_no_optional_extra() -> None:
    statement = (
        "from nestflow import Pipeline, node\n"
        "double = node(lambda x: 2 * x, name='double', output_name='doubled')\n"
        "assert Pipeline([double]).run(x=2) == {'doubled': 4}"
    )
    loaded = {name.split(".")[0] for name in _modules_after_import(statement)}
    assert loaded.isdisjoint(OPTIONAL_EXTRAS), sorted(loaded & set(OPTIONAL_EXTRAS))
