"""Shared fixtures for the whole suite."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable

import pytest

from nestflow.testing import RecordingCallback


@pytest.fixture
def recorder() -> RecordingCallback:
    """A fresh recording callback."""
    return RecordingCallback()


def import_error_without(module: str, call: str) -> str:
    """The ImportError message of ``call`` in a fresh interpreter where ``module`` is missing."""
    code = (
        f"import sys; sys.modules[{module!r}] = None\n"
        "import nestflow\n"
        f"try:\n    {call}\nexcept ImportError as exc:\n    print(exc)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture
def without() -> Callable[[str, str], str]:
    """``without(module, call)``: what ``call`` says when ``module`` (an extra) is absent."""
    return import_error_without
