"""``Unhashable``: what fingerprinting raises for a value it cannot fingerprint.

Its own module, so the runtime can catch it without importing the fingerprint rules (and
their dependencies) before a run first signs a value.
"""

from __future__ import annotations


class Unhashable(TypeError):
    """A value, or something inside it, has no deterministic fingerprint.

    ``type_name`` is the qualified type of the offending value; ``where`` is its access
    path inside the fingerprinted value (``"items[2].conn"``; ``""`` at the top level).
    """

    def __init__(self, type_name: str, reason: str) -> None:
        super().__init__(type_name, reason)
        self.type_name = type_name
        self.reason = reason
        self.where = ""
        self._path = ""

    def add_step(self, step: str) -> None:
        """Prepend one access step (``.name``, ``[2]``) while the error unwinds."""
        self._path = step + self._path
        self.where = self._path.removeprefix(".")

    def __str__(self) -> str:
        at = f" at {self.where}" if self.where else ""
        return (
            f"Cannot fingerprint {self.type_name}{at}: {self.reason}. Define __cache_key__() "
            "on its class, register a fingerprinter with nestflow.register_fingerprint(), or "
            "set cache=False on the node."
        )
