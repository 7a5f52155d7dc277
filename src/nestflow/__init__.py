"""nestflow: hierarchical, modular, cache-first pipelines for ML/AI work.

Functions are nodes, a pipeline is the DAG their names imply, and a pipeline is a
node too.
"""

from __future__ import annotations

import importlib
import typing as _typing

from nestflow.cache.store import Cache, CacheEntry
from nestflow.callbacks.events import CallbackContext, PipelineCallback
from nestflow.core.config import UNSET, EffectiveConfig
from nestflow.core.gates import Condition
from nestflow.core.limits import Limits
from nestflow.core.nesting import PipelineNode
from nestflow.core.node import Node, node
from nestflow.core.pipeline import Pipeline
from nestflow.core.retry import Retry
from nestflow.core.usage import record_usage
from nestflow.core.workspaces import Workspace
from nestflow.engines.backends import LocalBackend
from nestflow.errors import (
    BackendError,
    BackendWarning,
    CacheError,
    CacheStoreError,
    CacheWarning,
    CallbackWarning,
    CallCycleError,
    ChainError,
    CircularDependencyError,
    ContractError,
    CycleError,
    DefinitionError,
    DependencyError,
    GuardError,
    ImportReferenceError,
    InputError,
    InvalidCallError,
    InvalidNameError,
    InvalidNodeError,
    InvalidOptionError,
    MapInputError,
    MappingError,
    MemoryLimitError,
    MemoryWarning,
    MissingInputError,
    NestflowError,
    NestflowWarning,
    NodeOutputError,
    NodeTimeoutError,
    NotSerializableError,
    RecursionDepthError,
    RemoteExecutionError,
    SerializationError,
    SpecError,
    SpecValidationError,
    StepLimitError,
    TemplateError,
    TimeLimitError,
    UnhashableInputError,
    UnknownInputError,
    UnknownOutputError,
)
from nestflow.runtime.failure import ErrorContext, format_error
from nestflow.runtime.report import Capture, ErrorRecord, NodeRecord, Outputs, RunReport, capture
from nestflow.runtime.workspaces import workspace
from nestflow.version import __version__ as __version__

if _typing.TYPE_CHECKING:  # imported on first use (``_LAZY``); typed for checkers here
    from nestflow.cache.disk import DiskCache
    from nestflow.cache.fingerprint import register_fingerprint
    from nestflow.cache.redis import RedisCache
    from nestflow.callbacks.logs import LoggingCallback
    from nestflow.callbacks.progress import ProgressCallback
    from nestflow.callbacks.recorder import RunRecorder
    from nestflow.callbacks.telemetry import TelemetryCallback
    from nestflow.chain import Chain, step
    from nestflow.diagram.dot import GraphvizStyle
    from nestflow.engines.dask import DaskBackend
    from nestflow.service.call import pipeline_call
    from nestflow.spec.loader import load_yaml

_LAZY = {
    "register_fingerprint": "nestflow.cache.fingerprint",
    "DiskCache": "nestflow.cache.disk",
    "RedisCache": "nestflow.cache.redis",
    "LoggingCallback": "nestflow.callbacks.logs",
    "ProgressCallback": "nestflow.callbacks.progress",
    "RunRecorder": "nestflow.callbacks.recorder",
    "TelemetryCallback": "nestflow.callbacks.telemetry",
    "Chain": "nestflow.chain",
    "step": "nestflow.chain",
    "GraphvizStyle": "nestflow.diagram.dot",
    "DaskBackend": "nestflow.engines.dask",
    "load_yaml": "nestflow.spec.loader",
    "pipeline_call": "nestflow.service.call",
}
"""Names imported on first use, by the module that defines them: a script that runs a
pipeline imports no cache store, callback, diagram, chain, dask, workflow or HTTP code it
does not use (and none of their dependencies)."""

__all__ = [
    "UNSET",
    "BackendError",
    "BackendWarning",
    "Cache",
    "CacheEntry",
    "CacheError",
    "CacheStoreError",
    "CacheWarning",
    "CallCycleError",
    "CallbackContext",
    "CallbackWarning",
    "Capture",
    "Chain",
    "ChainError",
    "CircularDependencyError",
    "Condition",
    "ContractError",
    "CycleError",
    "DaskBackend",
    "DefinitionError",
    "DependencyError",
    "DiskCache",
    "EffectiveConfig",
    "ErrorContext",
    "ErrorRecord",
    "GraphvizStyle",
    "GuardError",
    "ImportReferenceError",
    "InputError",
    "InvalidCallError",
    "InvalidNameError",
    "InvalidNodeError",
    "InvalidOptionError",
    "Limits",
    "LocalBackend",
    "LoggingCallback",
    "MapInputError",
    "MappingError",
    "MemoryLimitError",
    "MemoryWarning",
    "MissingInputError",
    "NestflowError",
    "NestflowWarning",
    "Node",
    "NodeOutputError",
    "NodeRecord",
    "NodeTimeoutError",
    "NotSerializableError",
    "Outputs",
    "Pipeline",
    "PipelineCallback",
    "PipelineNode",
    "ProgressCallback",
    "RecursionDepthError",
    "RedisCache",
    "RemoteExecutionError",
    "Retry",
    "RunRecorder",
    "RunReport",
    "SerializationError",
    "SpecError",
    "SpecValidationError",
    "StepLimitError",
    "TelemetryCallback",
    "TemplateError",
    "TimeLimitError",
    "UnhashableInputError",
    "UnknownInputError",
    "UnknownOutputError",
    "Workspace",
    "capture",
    "format_error",
    "load_yaml",
    "node",
    "pipeline_call",
    "record_usage",
    "register_fingerprint",
    "step",
    "workspace",
]


def __getattr__(name: str) -> object:
    found = _LAZY.get(name)
    if found is None:
        raise AttributeError(f"module 'nestflow' has no attribute {name!r}")
    value = getattr(importlib.import_module(found), name)
    globals()[name] = value  # the next lookup is a plain attribute
    return value
