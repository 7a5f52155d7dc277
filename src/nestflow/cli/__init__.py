"""The ``nestflow`` command line (also ``python -m nestflow``)."""

from __future__ import annotations

from nestflow.cli.app import main

__all__ = ["main"]
