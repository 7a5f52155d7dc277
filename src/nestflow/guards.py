"""What the run guards read from outside the run: the memory probe.

``memory_probe`` is a zero-argument callable returning the resident memory of this process
in bytes; ``Limits(memory_limit_mb=...)`` samples it. The default reads
``psutil.Process().memory_info().rss`` (extra ``monitor``). Replace the attribute to measure
something else (tests inject a probe returning chosen figures):

>>> import nestflow.guards
>>> nestflow.guards.memory_probe = lambda: 512 * 2**20   # doctest: +SKIP

Worker processes are not measured: the probe runs in the coordinating process.
"""

from __future__ import annotations

from collections.abc import Callable


def resident_bytes() -> int:
    """The resident memory of this process, in bytes (psutil)."""
    try:
        import psutil  # type: ignore[import-untyped]
    except ImportError:
        raise ImportError(
            "A memory limit needs psutil to measure memory: pip install 'nestflow[monitor]'."
        ) from None
    rss: int = psutil.Process().memory_info().rss
    return rss


memory_probe: Callable[[], int] = resident_bytes
"""The probe memory limits sample; replace it to measure something else."""
