"""Shared fixtures for the whole suite."""

from __future__ import annotations

import pytest

from nestflow.testing import RecordingCallback


@pytest.fixture
def recorder() -> RecordingCallback:
    """A fresh recording callback."""
    return RecordingCallback()
