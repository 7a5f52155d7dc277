"""Backends: how and where the work of a pipeline level runs.

``Backend`` and ``Session`` are the protocol a custom backend implements; ``NodeCall``
is the task a session receives.
"""

from __future__ import annotations

from nestflow.engines.backends import LocalBackend
from nestflow.engines.dask import DaskBackend, DaskSession
from nestflow.engines.local import LocalSession
from nestflow.engines.protocol import Backend, NodeCall, Session

__all__ = [
    "Backend",
    "DaskBackend",
    "DaskSession",
    "LocalBackend",
    "LocalSession",
    "NodeCall",
    "Session",
]
