"""The error hierarchy of SPEC 10.1 (acceptance A10.6) and its re-export from ``nestflow``."""

from __future__ import annotations

import warnings

import pytest

import nestflow
from errors_to_come import NOT_RAISED_YET
from nestflow import errors

# Each class of SPEC 10.1 with its parent in the tree and the built-in it must also subclass.
HIERARCHY: dict[str, tuple[str, type[BaseException] | None]] = {
    "NestflowError": ("Exception", None),
    "DefinitionError": ("NestflowError", ValueError),
    "CycleError": ("DefinitionError", ValueError),
    "DependencyError": ("DefinitionError", ValueError),
    "InvalidNameError": ("DefinitionError", ValueError),
    "InvalidNodeError": ("DefinitionError", ValueError),
    "MappingError": ("DefinitionError", ValueError),
    "ChainError": ("DefinitionError", ValueError),
    "InputError": ("NestflowError", ValueError),
    "MissingInputError": ("InputError", ValueError),
    "UnknownInputError": ("InputError", ValueError),
    "UnknownOutputError": ("InputError", ValueError),
    "MapInputError": ("InputError", ValueError),
    "NodeOutputError": ("NestflowError", TypeError),
    "NodeTimeoutError": ("NestflowError", TimeoutError),
    "SerializationError": ("NestflowError", TypeError),
    "RemoteExecutionError": ("NestflowError", RuntimeError),
    "BackendError": ("NestflowError", RuntimeError),
    "CacheError": ("NestflowError", None),
    "UnhashableInputError": ("CacheError", TypeError),
    "CacheStoreError": ("CacheError", OSError),
    "SpecError": ("NestflowError", ValueError),
    "SpecValidationError": ("SpecError", ValueError),
    "TemplateError": ("SpecValidationError", ValueError),
    "ImportReferenceError": ("SpecValidationError", ValueError),
    "NotSerializableError": ("SpecError", ValueError),
    "CircularDependencyError": ("SpecValidationError", ValueError),
    "GuardError": ("NestflowError", RuntimeError),
    "RecursionDepthError": ("GuardError", RuntimeError),
    "StepLimitError": ("GuardError", RuntimeError),
    "MemoryLimitError": ("GuardError", RuntimeError),
    # Beyond the tree of 10.1: Limits(max_run_seconds), what the service's time budget stops
    # a run with (docs/design.md).
    "TimeLimitError": ("GuardError", RuntimeError),
    "ServiceError": ("NestflowError", None),
    "AuthenticationError": ("ServiceError", None),
    "AuthorizationError": ("ServiceError", None),
    "SignatureError": ("ServiceError", None),
    "ReplayError": ("ServiceError", None),
    "ContractError": ("ServiceError", ValueError),
    "CallDepthError": ("ServiceError", None),
    "CallCycleError": ("ServiceError", None),
}

# Classes under the tree of SPEC 10.1 for mistakes Python reports as TypeError: each keeps
# its parent's ValueError and adds TypeError, so either `except` catches it.
TYPE_ERROR_LEAVES: dict[str, str] = {
    "InvalidOptionError": "DefinitionError",
    "InvalidCallError": "InputError",
}

WARNINGS = ("CacheWarning", "CallbackWarning", "BackendWarning", "MemoryWarning")

ERROR_NAMES = sorted(HIERARCHY)


def _defined_in_errors(base: type) -> set[str]:
    return {
        name
        for name, value in vars(errors).items()
        if isinstance(value, type)
        and issubclass(value, base)
        and value.__module__ == errors.__name__
    }


def test_a10_6_every_exception_in_errors_is_one_of_spec_10_1() -> None:
    defined = _defined_in_errors(BaseException) - _defined_in_errors(Warning)
    assert defined == set(HIERARCHY) | set(TYPE_ERROR_LEAVES)


@pytest.mark.parametrize("name", sorted(TYPE_ERROR_LEAVES))
def test_type_error_leaves_are_their_parent_and_a_type_error(name: str) -> None:
    error_class = getattr(errors, name)
    assert issubclass(error_class, getattr(errors, TYPE_ERROR_LEAVES[name]))
    assert issubclass(error_class, ValueError)
    assert issubclass(error_class, TypeError)
    assert name in errors.__all__
    with pytest.raises(TypeError):
        raise error_class("boom")


def test_a10_6_every_warning_in_errors_is_one_of_spec_10_1() -> None:
    assert _defined_in_errors(Warning) == {"NestflowWarning", *WARNINGS}


@pytest.mark.parametrize("name", ERROR_NAMES)
def test_a10_6_error_subclasses_nestflow_error(name: str) -> None:
    assert issubclass(getattr(errors, name), errors.NestflowError)


@pytest.mark.parametrize("name", ERROR_NAMES)
def test_a10_6_error_subclasses_its_parent_in_the_tree(name: str) -> None:
    parent, _ = HIERARCHY[name]
    parent_class = Exception if parent == "Exception" else getattr(errors, parent)
    assert issubclass(getattr(errors, name), parent_class)


@pytest.mark.parametrize("name", [n for n in ERROR_NAMES if HIERARCHY[n][1] is not None])
def test_a10_6_error_subclasses_the_builtin_shown_in_spec(name: str) -> None:
    _, builtin = HIERARCHY[name]
    assert builtin is not None
    error_class = getattr(errors, name)
    assert issubclass(error_class, builtin)
    with pytest.raises(builtin):
        raise error_class("boom")


@pytest.mark.parametrize("name", ERROR_NAMES)
def test_errors_are_exceptions_not_warnings(name: str) -> None:
    assert not issubclass(getattr(errors, name), Warning)


def test_a10_6_nestflow_error_is_a_plain_exception() -> None:
    assert errors.NestflowError.__bases__ == (Exception,)


def test_a10_6_definition_errors_are_not_input_errors() -> None:
    assert not issubclass(errors.DefinitionError, errors.InputError)
    assert not issubclass(errors.InputError, errors.DefinitionError)


def test_nestflow_warning_is_a_user_warning() -> None:
    assert issubclass(errors.NestflowWarning, UserWarning)
    assert not issubclass(errors.NestflowWarning, errors.NestflowError)


@pytest.mark.parametrize("name", WARNINGS)
def test_warning_subclasses_nestflow_warning(name: str) -> None:
    warning = getattr(errors, name)
    assert issubclass(warning, errors.NestflowWarning)
    assert issubclass(warning, UserWarning)
    with pytest.warns(errors.NestflowWarning, match="careful"):
        warnings.warn(warning("careful"), stacklevel=1)


@pytest.mark.parametrize(
    "name",
    [
        n
        for n in [*ERROR_NAMES, *TYPE_ERROR_LEAVES, "NestflowWarning", *WARNINGS]
        if n not in NOT_RAISED_YET
    ],
)
def test_error_is_re_exported_from_nestflow(name: str) -> None:
    assert getattr(nestflow, name) is getattr(errors, name)
    assert name in nestflow.__all__


# --- attributes named in SPEC 10.1 --------------------------------------------------------------


def test_cycle_error_carries_the_cycle_tuple() -> None:
    error = errors.CycleError("cycle: a -> b -> a", cycle=["a", "b", "a"])
    assert error.cycle == ("a", "b", "a")
    assert "a -> b -> a" in str(error)


def test_missing_input_error_carries_missing_names_with_paths() -> None:
    error = errors.MissingInputError("missing", missing={"x": ["outer > fa"]})
    assert error.missing == {"x": ["outer > fa"]}


def test_spec_validation_error_carries_problems() -> None:
    problem = ("flow.yaml", 3, 5, "unknown step type")
    error = errors.SpecValidationError("invalid", problems=[problem])
    assert error.problems == [problem]


def test_circular_dependency_error_carries_the_chain() -> None:
    error = errors.CircularDependencyError("loop", chain=["a.yaml", "b.yaml", "a.yaml"])
    assert error.chain == ("a.yaml", "b.yaml", "a.yaml")


def test_errors_module_docstring_draws_the_tree() -> None:
    assert errors.__doc__ is not None
    for name in [*ERROR_NAMES, *TYPE_ERROR_LEAVES]:
        assert name in errors.__doc__
