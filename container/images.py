"""The images: a stand-in base from Debian's packages, then the Dockerfile's targets on it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from container.podman import Podman, PodmanError, ca_bundle_mount

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"
BASE_TAG = "localhost/python:3.11-slim-bookworm"
# Serving images: the Dockerfile's default (onnxruntime-gpu with CUDA and cuDNN) and the CPU-only
# one its ONNXRUNTIME argument makes, at the same onnxruntime release.
VARIANTS = ("gpu", "cpu")
# Budgets for the uncompressed size (what `podman images` shows), measured plus ~5-10 % (README,
# "Container check"): a dependency that grows the image past them has to be looked at.
SIZE_BUDGET = {"serve-gpu": 3_000_000_000, "serve-cpu": 420_000_000, "train": 6_000_000_000}


def onnxruntime_release() -> str:
    """The onnxruntime release the Dockerfile pins (ARG ONNXRUNTIME_GPU)."""
    found = re.search(r"^ARG ONNXRUNTIME_GPU=(\S+)$", DOCKERFILE.read_text(), re.M)
    if found is None:
        raise ValueError("Dockerfile: no ARG ONNXRUNTIME_GPU=...")
    return found.group(1)


def tag(target: str, variant: str = "gpu") -> str:
    if target == "train":
        return "localhost/alexnet-train:check"
    return f"localhost/alexnet-serving:check-{target}-{variant}"


@dataclass
class Built:
    target: str
    variant: str
    tag: str
    seconds: float
    size: int

    @property
    def budget_key(self) -> str:
        return "train" if self.target == "train" else f"{self.target}-{self.variant}"


def build_base(podman: Podman, log: Path, rebuild: bool = False) -> float:
    """The stand-in python:3.11-slim-bookworm (container/base-image.sh); seconds taken."""
    if podman.exists(BASE_TAG) and not rebuild:
        return 0.0
    started = time.monotonic()
    env = {**podman.env, "PIP": f"{sys.executable} -m pip"}
    with log.open("a") as out:
        done = subprocess.run(
            [str(ROOT / "container" / "base-image.sh"), BASE_TAG],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=1800,
            check=False,
        )
    if done.returncode != 0:
        raise PodmanError(f"the stand-in base failed to build; see {log}")
    return time.monotonic() - started


def build_args(target: str, variant: str) -> list[str]:
    """`podman build` arguments for a target; the Dockerfile is used as users have it."""
    args = [
        "build",
        # Docker's image format: the OCI format has no HEALTHCHECK, podman would drop it.
        "--format",
        "docker",
        "--pull=never",
        "--build-arg",
        f"PYTHON_IMAGE={BASE_TAG}",
        "--target",
        target,
        "--tag",
        tag(target, variant),
        *ca_bundle_mount(),
    ]
    if variant == "cpu":
        args += ["--build-arg", f"ONNXRUNTIME=onnxruntime=={onnxruntime_release()}"]
    if os.environ.get("BUILDAH_ISOLATION"):
        args += ["--isolation", os.environ["BUILDAH_ISOLATION"]]
    return [*args, str(ROOT)]


def build(podman: Podman, target: str, variant: str, log: Path) -> Built:
    started = time.monotonic()
    status = podman.stream(build_args(target, variant), log, timeout=3600)
    seconds = time.monotonic() - started
    if status != 0:
        tail = "\n".join(log.read_text().splitlines()[-30:])
        raise PodmanError(f"podman build --target {target} ({variant}) failed:\n{tail}")
    # The image this tag had before is now dangling: without this the state folder grows by an
    # image per rebuild (the layers the current images share are kept).
    podman("image", "prune", "--force", check=False)
    return Built(
        target, variant, tag(target, variant), seconds, podman.image_size(tag(target, variant))
    )
