"""docker-compose.yml as podman-compose reads it, and its serving service as `podman run` flags."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from typing import Any

import yaml

from container.images import ROOT

COMPOSE_FILES = ("docker-compose.yml",)
CPU_OVERRIDE = "docker-compose.cpu.yml"
# Keys of the serving service that change nothing in how the container runs, or that the
# checks set themselves (image, the published port, the artifacts volume).
NOT_RUN_FLAGS = {"build", "image", "profiles", "ports", "volumes", "healthcheck", "deploy"}


def podman_compose() -> str:
    """podman-compose from `make container-deps` (a venv of its own), else from PATH."""
    local = ROOT / "build" / "container-tools" / "bin" / "podman-compose"
    found = str(local) if local.is_file() else shutil.which("podman-compose")
    if found is None:
        raise FileNotFoundError("podman-compose is not installed (`make container-deps`)")
    return found


def compose_files(cpu: bool) -> list[str]:
    files = [*COMPOSE_FILES, CPU_OVERRIDE] if cpu else list(COMPOSE_FILES)
    return [arg for name in files for arg in ("-f", str(ROOT / name))]


@dataclass
class Project:
    """podman-compose for one project name, run from the repository root as a user runs it."""

    name: str
    env: dict[str, str]
    # Found up front, so that a missing podman-compose fails before a check creates anything.
    tool: str = field(default_factory=podman_compose)

    def run(
        self, *args: str, cpu: bool = True, timeout: float = 300
    ) -> subprocess.CompletedProcess[str]:
        """`podman-compose -p NAME -f ... ARGS` (with the CPU override when `cpu`); not checked."""
        return subprocess.run(
            [self.tool, "--project-name", self.name, *compose_files(cpu), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            cwd=ROOT,
        )


def merged_config(env: dict[str, str], cpu: bool) -> dict[str, Any]:
    """The compose files merged and interpolated by podman-compose itself (`config`)."""
    done = subprocess.run(
        [podman_compose(), *compose_files(cpu), "config"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        cwd=ROOT,
    )
    config: dict[str, Any] = yaml.safe_load(done.stdout)
    return config


def seconds(duration: str) -> int:
    """A compose duration such as `35s` or `1m30s`, in whole seconds."""
    total, number = 0, ""
    for char in str(duration):
        if char.isdigit():
            number += char
        else:
            total += int(number) * {"s": 1, "m": 60, "h": 3600}[char]
            number = ""
    return total + (int(number) if number else 0)


def run_flags(service: dict[str, Any]) -> list[str]:
    """`podman run` flags for what the compose service sets, as Docker Compose would pass them.

    A key this does not know fails, so that a new setting in docker-compose.yml cannot be
    silently left out of the check.
    """
    flags: list[str] = []
    for key, value in service.items():
        if key in NOT_RUN_FLAGS:
            continue
        if key == "environment":
            flags += [arg for name, val in value.items() for arg in ("-e", f"{name}={val}")]
        elif key == "read_only" and value:
            # podman's --read-only also mounts tmpfs on /run, /tmp and /var/tmp; Docker does
            # not, and the service must live with only the tmpfs compose asks for.
            flags += ["--read-only", "--read-only-tmpfs=false"]
        elif key == "tmpfs":
            flags += [
                arg
                for path in ([value] if isinstance(value, str) else value)
                for arg in ("--tmpfs", path)
            ]
        elif key == "cap_drop":
            flags += [arg for cap in value for arg in ("--cap-drop", cap)]
        elif key == "security_opt":
            flags += [arg for opt in value for arg in ("--security-opt", opt)]
        elif key == "init" and value:
            flags.append("--init")
        elif key == "restart":
            flags += ["--restart", str(value)]
        elif key == "stop_grace_period":
            flags += ["--stop-timeout", str(seconds(value))]
        else:
            raise ValueError(f"docker-compose.yml sets {key}, which the check does not translate")
    return flags


def serving_service(cpu: bool = True) -> dict[str, Any]:
    """The `alexnet` service, merged with the CPU override where asked."""
    service: dict[str, Any] = merged_config(dict(os.environ), cpu)["services"]["alexnet"]
    return service


def gpu_devices(service: dict[str, Any]) -> list[Any]:
    reservations = service.get("deploy", {}).get("resources", {}).get("reservations", {})
    devices: list[Any] = reservations.get("devices", [])
    return devices


if __name__ == "__main__":  # print the flags, for a person comparing them with the YAML
    print(" ".join(run_flags(serving_service(cpu="--gpu" not in sys.argv))))
