"""Fixtures shared by the workflow tests."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

StepModule = Callable[[str, str], str]
"""Write step functions as an importable module: ``(prefix, source) -> module name``."""


@pytest.fixture
def step_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[StepModule]:
    """Writes ``<prefix>_<test folder>.py`` into ``tmp_path``, importable for the test (the
    name is unique per test, so workflows name functions as ``"<module>:<function>"``)."""
    made: list[str] = []

    def write(prefix: str, source: str) -> str:
        name = f"{prefix}_{tmp_path.name.replace('-', '_')}"
        (tmp_path / f"{name}.py").write_text(source)
        monkeypatch.syspath_prepend(str(tmp_path))
        made.append(name)
        return name

    yield write
    for name in made:
        sys.modules.pop(name, None)
