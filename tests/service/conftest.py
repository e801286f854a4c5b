"""Fixtures of the service tests that run the app in this process."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.engine import Engine
from tests.service.inprocess import open_engine


@pytest.fixture(scope="module")
def model_engine(exported_artifacts: Path) -> Engine:
    """The real engine on the exported test model, opened once per test module."""
    return open_engine(exported_artifacts)
