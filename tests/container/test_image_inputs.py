"""The container build's inputs, checked without podman: what is copied, how compose is run."""

from __future__ import annotations

import pytest
import tomllib

from container import compose
from tests.test_packaging import ROOT, dockerignore_excludes, image_config


def test_the_build_copies_every_top_level_package() -> None:
    """A package pyproject ships (core/, cli/, ...) is COPY'd and let through .dockerignore."""
    found = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    patterns = found["packages"]["find"]["include"]
    packages = sorted(
        pattern.rstrip("*")
        for pattern in patterns
        if (ROOT / pattern.rstrip("*") / "__init__.py").is_file()
    )
    assert "service" in packages and "model" in packages
    copied = {args.split()[0].rstrip("/") for args in image_config("builder")["copy"]}
    for package in packages:
        assert package in copied, f"Dockerfile: add `COPY {package}/ {package}/` to the builder"
        assert not dockerignore_excludes(f"{package}/__init__.py"), f".dockerignore: !{package}/"


def test_compose_settings_become_run_flags() -> None:
    service = {
        "read_only": True,
        "tmpfs": ["/tmp"],
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges:true"],
        "init": True,
        "restart": "on-failure:3",
        "stop_grace_period": "1m5s",
        "environment": {"ALEXNET_PROVIDER": "cpu"},
    }
    assert compose.run_flags(service) == [
        "--read-only",
        "--read-only-tmpfs=false",
        "--tmpfs",
        "/tmp",
        "--cap-drop",
        "ALL",
        "--security-opt",
        "no-new-privileges:true",
        "--init",
        "--restart",
        "on-failure:3",
        "--stop-timeout",
        "65",
        "-e",
        "ALEXNET_PROVIDER=cpu",
    ]
    with pytest.raises(ValueError, match="privileged"):
        compose.run_flags({"privileged": True})  # a new compose key must not go unchecked
