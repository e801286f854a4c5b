"""The CPU-only serving image, built by podman from the Dockerfile and run as compose runs it.

The image is the Dockerfile's `serve` target with `--build-arg ONNXRUNTIME=onnxruntime==...`
(the plain onnxruntime wheel: 0.4 GB instead of the GPU image's 2.8 GB, see README "Container
check"), on a stand-in for python:3.11-slim-bookworm made from Debian's packages. It is run
with the flags docker-compose.yml and docker-compose.cpu.yml give it and asked the same
questions as `alexnet serve` from this venv. `make image-check` does the same for the GPU
image. The images stay in podman's storage under /var/tmp/alexnet-image-check between runs,
so only the first run on a machine builds from nothing.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from container import checks, compose, images
from container.podman import Podman, PodmanError
from tests.test_packaging import ROOT

LOG_DIR = ROOT / "test-artifacts" / "container"
pytestmark = [pytest.mark.container, pytest.mark.slow]


def _log(name: str, lines: list[str]) -> None:
    """Leave what a check saw for people to read (test-artifacts/container/)."""
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    (LOG_DIR / f"{name}.log").write_text("\n".join(lines) + "\n")


@pytest.fixture(scope="module")
def podman() -> Podman:
    """podman with this host's settings, or a skip saying why containers cannot run here."""
    if shutil.which("podman") is None:
        pytest.skip("podman is not installed (`make container-deps` installs it)")
    if os.geteuid() != 0:
        pytest.skip("the stand-in base is made by debootstrap, which needs root")
    runner = Podman()
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    images.build_base(runner, LOG_DIR / "image-build.log")
    try:
        checks.ensure_container_runs(runner, images.BASE_TAG)
    except PodmanError as exc:
        pytest.skip(str(exc))
    return runner


@pytest.fixture(scope="module")
def cpu_image(podman: Podman) -> str:
    built = images.build(podman, "serve", "cpu", LOG_DIR / "image-build.log")
    _log("build", [f"{built.tag}: {built.seconds:.0f} s, {built.size / 1e6:.0f} MB"])
    assert built.size <= images.SIZE_BUDGET["serve-cpu"], built
    return built.tag


@pytest.fixture(scope="module")
def served_artifacts(podman: Podman, exported_artifacts: Path) -> Iterator[Path]:
    """The session's export, readable by the container's uid 10001."""
    folder = checks.readable_copy(exported_artifacts, podman.state / f"test-{os.getpid()}")
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def cpu_service() -> dict[str, Any]:
    return compose.serving_service(cpu=True)


def test_image_holds_the_service_and_nothing_else(podman: Podman, cpu_image: str) -> None:
    _log("inside", checks.inside_image(podman, cpu_image, "cpu"))


def test_image_answers_like_the_venv_server(
    podman: Podman,
    cpu_image: str,
    cpu_service: dict[str, Any],
    served_artifacts: Path,
    photos: dict[str, bytes],
    tmp_path: Path,
) -> None:
    lines = checks.parity(podman, cpu_image, cpu_service, served_artifacts, photos, tmp_path)
    _log("parity", lines)


@pytest.mark.parametrize("case", ["no volume", "bad sha256"])
def test_bad_artifacts_stop_the_container_with_one_line(
    podman: Podman,
    cpu_image: str,
    cpu_service: dict[str, Any],
    served_artifacts: Path,
    case: str,
) -> None:
    if case == "no volume":
        lines = checks.refusal(podman, cpu_image, cpu_service, None, case, "is missing")
    else:
        corrupt = checks.corrupt_checksum_copy(
            served_artifacts, served_artifacts.with_name(served_artifacts.name + "-corrupt")
        )
        try:
            lines = checks.refusal(podman, cpu_image, cpu_service, corrupt, case, "sha256")
        finally:
            shutil.rmtree(corrupt, ignore_errors=True)
    _log(f"refusal-{case.replace(' ', '-')}", lines)


def test_sigterm_under_load_loses_no_accepted_request(
    podman: Podman,
    cpu_image: str,
    cpu_service: dict[str, Any],
    served_artifacts: Path,
    photos: dict[str, bytes],
) -> None:
    lines = checks.sigterm_under_load(
        podman, cpu_image, cpu_service, served_artifacts, photos["astronaut"]
    )
    _log("sigterm", lines)


def test_compose_with_the_cpu_override_serves(
    podman: Podman,
    cpu_image: str,
    served_artifacts: Path,
    photos: dict[str, bytes],
    server: Any,
) -> None:
    import httpx

    files = {"image": ("a.jpg", photos["coffee"])}
    want = httpx.post(f"{server.url}/v1/predict", files=files, timeout=60).json()
    label = want["results"][0]["predictions"][0]["label"]
    _log("compose", checks.compose_up(podman, cpu_image, served_artifacts, photos["coffee"], label))
