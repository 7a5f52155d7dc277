"""Every exception and warning nestflow raises, in one tree.

Each class also subclasses the built-in a caller would naturally catch, so
``except ValueError`` keeps working around pipeline construction and
``except TimeoutError`` around a run that hit a node timeout. The two classes marked
``(TypeError)`` below are mistakes Python itself reports as ``TypeError`` (a wrong
argument type, a keyword given twice or in the wrong place); they are also the
``ValueError`` of their parent, so either ``except`` catches them::

    NestflowError(Exception)
    ├─ DefinitionError(ValueError)        problems found when building pipelines
    │  ├─ CycleError                      .cycle: tuple of node ids
    │  ├─ DependencyError                 duplicate producers
    │  ├─ InvalidNameError
    │  ├─ InvalidNodeError                unsupported function signature
    │  ├─ InvalidOptionError(TypeError)   a keyword option of the wrong type, value or place
    │  ├─ MappingError                    as_node mapping / map_over problems
    │  └─ ChainError                      chain builder wiring
    ├─ InputError(ValueError)             problems with the values given to run/map
    │  ├─ MissingInputError               .missing: {name: [node paths]}
    │  ├─ UnknownInputError
    │  ├─ UnknownOutputError
    │  ├─ MapInputError                   zip length mismatch, non-collection, bad map_over
    │  └─ InvalidCallError(TypeError)     run/map called with arguments of the wrong shape
    ├─ NodeOutputError(TypeError)         tuple-output arity mismatch
    ├─ NodeTimeoutError(TimeoutError)
    ├─ SerializationError(TypeError)      value cannot travel to a worker
    ├─ RemoteExecutionError(RuntimeError) remote failure that cannot be rebuilt locally
    ├─ BackendError(RuntimeError)         cluster unreachable, worker lost, pool broken
    ├─ CacheError
    │  ├─ UnhashableInputError(TypeError)
    │  └─ CacheStoreError(OSError)        store unreachable
    ├─ SpecError(ValueError)              YAML workflows
    │  ├─ SpecValidationError             .problems: list of (file, line, column, message)
    │  │  ├─ TemplateError
    │  │  ├─ ImportReferenceError
    │  │  └─ CircularDependencyError      .chain
    │  └─ NotSerializableError
    ├─ GuardError(RuntimeError)
    │  ├─ RecursionDepthError
    │  ├─ StepLimitError
    │  ├─ MemoryLimitError
    │  └─ TimeLimitError
    └─ ServiceError                       HTTP service
       ├─ AuthenticationError, AuthorizationError, SignatureError, ReplayError
       └─ ContractError(ValueError), CallDepthError, CallCycleError
    NestflowWarning(UserWarning): CacheWarning, CallbackWarning, BackendWarning, MemoryWarning

When user code fails, the user's own exception propagates with PEP 678 notes;
nestflow never wraps it in an error of its own.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

# Errors of features still to come (declarative YAML pipelines, the chain builder, the HTTP
# service, run guards) are defined below with the rest of the hierarchy, but nothing raises
# them yet, so neither this module nor ``nestflow`` exports them until their feature lands.
__all__ = [
    "BackendError",
    "BackendWarning",
    "CacheError",
    "CacheStoreError",
    "CacheWarning",
    "CallbackWarning",
    "CircularDependencyError",
    "CycleError",
    "DefinitionError",
    "DependencyError",
    "GuardError",
    "ImportReferenceError",
    "InputError",
    "InvalidCallError",
    "InvalidNameError",
    "InvalidNodeError",
    "InvalidOptionError",
    "MapInputError",
    "MappingError",
    "MissingInputError",
    "NestflowError",
    "NestflowWarning",
    "NodeOutputError",
    "NodeTimeoutError",
    "NotSerializableError",
    "RecursionDepthError",
    "RemoteExecutionError",
    "SerializationError",
    "SpecError",
    "SpecValidationError",
    "TemplateError",
    "UnhashableInputError",
    "UnknownInputError",
    "UnknownOutputError",
]


class NestflowError(Exception):
    """Base class of every error nestflow raises itself."""


# --- definitions -----------------------------------------------------------------------------


class DefinitionError(NestflowError, ValueError):
    """A node or pipeline cannot be built as written."""


class CycleError(DefinitionError):
    """The names of a pipeline's nodes form a cycle; ``.cycle`` holds its node ids."""

    def __init__(self, message: str, cycle: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.cycle = tuple(cycle)


class DependencyError(DefinitionError):
    """Two nodes publish the same output name."""


class InvalidNameError(DefinitionError):
    """A node, input or output name is not a usable identifier, or is duplicated."""


class InvalidNodeError(DefinitionError):
    """A function's signature cannot be used as a node (``*args``, ``**kwargs``)."""


class InvalidOptionError(DefinitionError, TypeError):
    """A keyword option of ``@node``, ``Pipeline``, ``as_node`` or a backend is unusable.

    Its type or value is wrong (``timeout=-1``, ``cache="path"``), or it belongs somewhere
    else (``Pipeline(on_error=...)``: failure handling is set per node).
    """


class MappingError(DefinitionError):
    """An ``as_node`` mapping or ``map_over`` names something that does not exist."""


class ChainError(DefinitionError):
    """A chain builder step cannot be wired to its neighbours."""


# --- inputs ----------------------------------------------------------------------------------


class InputError(NestflowError, ValueError):
    """The values given to ``run`` or ``map`` do not fit the pipeline."""


class MissingInputError(InputError):
    """Required inputs were not given; ``.missing`` maps each name to the node paths needing it."""

    def __init__(self, message: str, missing: Mapping[str, Sequence[str]] | None = None) -> None:
        super().__init__(message)
        self.missing = {name: list(paths) for name, paths in (missing or {}).items()}


class UnknownInputError(InputError):
    """An input was given that no node at any level consumes."""


class UnknownOutputError(InputError):
    """A requested output is not published by the pipeline."""


class MapInputError(InputError):
    """A mapped input is not a collection, or zipped collections differ in length."""


class InvalidCallError(InputError, TypeError):
    """``run`` or ``map`` was called with arguments of the wrong shape.

    A positional argument that is not a mapping, a name given twice, or a keyword that is
    set elsewhere (``run(on_error=...)``).
    """


# --- execution -------------------------------------------------------------------------------


class NodeOutputError(NestflowError, TypeError):
    """A tuple-output node returned something other than that many values."""


class NodeTimeoutError(NestflowError, TimeoutError):
    """One attempt of a node ran longer than its effective timeout."""


class SerializationError(NestflowError, TypeError):
    """A function or value cannot be sent to a worker process."""


class RemoteExecutionError(NestflowError, RuntimeError):
    """A remote failure whose exception cannot be rebuilt in the coordinating process."""

    def __init__(self, message: str, remote_type: str = "", remote_traceback: str = "") -> None:
        super().__init__(message)
        self.remote_type = remote_type
        self.remote_traceback = remote_traceback


class BackendError(NestflowError, RuntimeError):
    """The execution backend cannot run work: cluster unreachable, worker lost, pool broken."""


# --- cache -----------------------------------------------------------------------------------


class CacheError(NestflowError):
    """Base class of cache failures."""


class UnhashableInputError(CacheError, TypeError):
    """A value given to a cached node cannot be fingerprinted."""


class CacheStoreError(CacheError, OSError):
    """A cache store cannot be reached."""


# --- declarative pipelines -------------------------------------------------------------------


class SpecError(NestflowError, ValueError):
    """A YAML pipeline file cannot be loaded."""


class SpecValidationError(SpecError):
    """A YAML pipeline fails validation; ``.problems`` lists (file, line, column, message).

    Loading collects every problem before raising one exception; ``str()`` shows them all.
    """

    def __init__(self, message: str, problems: Sequence[tuple[str, int, int, str]] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.problems = list(problems)

    def __str__(self) -> str:
        lines = [self.message]
        lines += [f"  {file}:{line}:{column}: {text}" for file, line, column, text in self.problems]
        return "\n".join(lines)


class TemplateError(SpecValidationError):
    """A template in a YAML pipeline is not allowed, or cannot be rendered."""


class ImportReferenceError(SpecValidationError):
    """A ``module:attribute`` reference in a YAML pipeline cannot be imported."""


class NotSerializableError(SpecError):
    """A pipeline holds nodes that cannot be written back to YAML."""


class CircularDependencyError(SpecValidationError):
    """YAML files reference each other in a cycle; ``.chain`` holds the files."""

    def __init__(
        self,
        message: str,
        chain: Sequence[str] = (),
        problems: Sequence[tuple[str, int, int, str]] = (),
    ) -> None:
        super().__init__(message, problems)
        self.chain = tuple(chain)


class GuardError(NestflowError, RuntimeError):
    """A safety limit of a declarative pipeline was exceeded."""


class RecursionDepthError(GuardError):
    """Nested pipelines went deeper than the allowed depth."""


class StepLimitError(GuardError):
    """More steps ran than the allowed total."""


class MemoryLimitError(GuardError):
    """The process used more memory than the allowed limit."""


class TimeLimitError(GuardError):
    """The run lasted longer than its allowed wall-clock time (``max_run_seconds``)."""


# --- service ---------------------------------------------------------------------------------


class ServiceError(NestflowError):
    """Base class of HTTP service failures."""


class AuthenticationError(ServiceError):
    """A request carried no valid credential."""


class AuthorizationError(ServiceError):
    """A valid credential is not allowed to do what was asked."""


class SignatureError(ServiceError):
    """An HMAC signature does not match the request."""


class ReplayError(ServiceError):
    """A signed request was seen before or is too old."""


class ContractError(ServiceError, ValueError):
    """A call does not fit the callable pipeline's typed contract."""


class CallDepthError(ServiceError):
    """A chain of pipeline calls went deeper than allowed."""


class CallCycleError(ServiceError):
    """A chain of pipeline calls came back to a pipeline already on the chain."""


# --- warnings --------------------------------------------------------------------------------


class NestflowWarning(UserWarning):
    """Base class of every warning nestflow emits."""


class CacheWarning(NestflowWarning):
    """A cache entry was unusable or a value could not be stored; the run went on."""


class CallbackWarning(NestflowWarning):
    """A callback raised; the run and the other callbacks went on."""


class BackendWarning(NestflowWarning):
    """A backend fell back to a simpler mode."""


class MemoryWarning(NestflowWarning):
    """The process is close to its memory limit."""
