"""What every check of a running image stands on.

The failure a check raises (CheckFailed, with the evidence), the image run as
docker-compose.yml runs it on a loopback port and removed after, the HTTP call that
must answer 200, and the one question asked before any check: can this host run a
container at all?
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from benchmarks.serverproc import free_port
from container import compose
from container.podman import Podman, PodmanError

MODEL_PORT = 8000  # the image's ALEXNET_PORT and EXPOSE


class CheckFailed(AssertionError):
    """The image broke a promise; the message says which and shows the evidence."""


def expect(condition: bool, message: str) -> None:
    if not condition:
        raise CheckFailed(message)


@dataclass
class Container:
    podman: Podman
    name: str
    url: str

    def logs(self) -> str:
        return self.podman.logs(self.name)


@contextmanager
def serving(
    podman: Podman,
    image: str,
    service: dict[str, Any],
    artifacts: Path | None,
    name: str,
    wait: bool = True,
) -> Iterator[Container]:
    """The image run with the compose service's flags, on a loopback port; removed after."""
    port = free_port()
    args = ["run", "--detach", "--name", name, "--publish", f"127.0.0.1:{port}:{MODEL_PORT}"]
    args += compose.run_flags(service)
    if artifacts is not None:
        args += ["--volume", f"{artifacts}:/models:ro"]
    podman.remove(name)
    podman(*args, image)
    try:
        container = Container(podman, name, f"http://127.0.0.1:{port}")
        if wait:
            podman.wait_healthy(name)
        yield container
    finally:
        podman.remove(name)


def post(url: str, path: str, files: Any, data: dict[str, str] | None = None) -> httpx.Response:
    """POST to a server that must answer 200; CheckFailed with its answer otherwise."""
    response = httpx.post(url + path, files=files, data=data, timeout=120)
    if response.status_code != 200:
        raise CheckFailed(f"POST {path} at {url}: {response.status_code} {response.text[:300]}")
    return response


def ensure_container_runs(podman: Podman, image: str) -> None:
    """PodmanError with podman's words when this host cannot run a container at all."""
    done = podman.run_once(image, "true", check=False)
    if done.returncode != 0:
        raise PodmanError(f"podman cannot run a container here: {done.stderr.strip()[-500:]}")
