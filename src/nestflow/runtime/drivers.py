"""Which driver runs a level: the synchronous loop or the asynchronous scheduler.

A run picks its driver when its plan is compiled. ``forced`` lets a test (through
``nestflow.testing.forced_driver``) run a scenario on the asynchronous driver even where
the synchronous one would take it, so one contract suite can compare both.
"""

from __future__ import annotations

import contextvars
from typing import Literal

Driver = Literal["sync", "async"]
DRIVERS: tuple[Driver, ...] = ("sync", "async")

forced: contextvars.ContextVar[Driver | None] = contextvars.ContextVar(
    "nestflow_forced_driver", default=None
)
