"""What the rest of nestflow knows of worker processes, without importing them.

``engines.processes`` (multiprocessing and cloudpickle) is imported only by a run that
starts worker processes; the flag and the timeout it shares live here, so a sequential run
never loads it.
"""

from __future__ import annotations

IN_WORKER = False
"""True inside a nestflow worker process (daemonic: it cannot start processes of its own)."""


class WorkerTimeout(Exception):
    """A call ran past its deadline; its worker was terminated."""
