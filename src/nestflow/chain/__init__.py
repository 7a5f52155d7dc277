"""The chain builder: linear fan-out / fan-in flows written as ``Chain(...) << step(...)``.

Sugar over the core: ``Chain.build`` produces an ordinary ``Pipeline`` (segments become
nested pipelines mapped with ``as_node(map_over=...)``), so caching, backends, callbacks,
reports and pictures work unchanged. See ``docs/chain.md``.
"""

from __future__ import annotations

from nestflow.chain.builder import Chain
from nestflow.chain.steps import Step, step

__all__ = ["Chain", "Step", "step"]
