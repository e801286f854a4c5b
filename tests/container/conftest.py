"""The `container` marker, registered here so that this folder works before pyproject lists it."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "container: builds and runs the serving image with podman (needs root)"
    )
