"""The checks `make image-check` and tests/container/ run against a built image.

Each check takes podman and the image, returns lines for the log, and raises CheckFailed
with the evidence when the image does not do what the project promises:

- image_content: what the image holds (user, HEALTHCHECK, no torch/pip/compiler, providers)
- parity: its answers against the venv's own server's, run as docker-compose.yml runs it
- lifecycle: refusing to start on bad artifacts; SIGTERM under load loses no request
- compose_runs: podman-compose itself, with the CPU override and the `train` profile
- harness and artifacts: what the checks stand on (the run container, readable artifacts)
"""

from container.checks.artifacts import corrupt_checksum_copy, readable_copy
from container.checks.compose_runs import compose_train, compose_up
from container.checks.harness import CheckFailed, ensure_container_runs
from container.checks.image_content import inside_image
from container.checks.lifecycle import refusal, sigterm_under_load
from container.checks.parity import compare, parity
from container.podman import PodmanError

__all__ = [
    "CheckFailed",
    "PodmanError",
    "compare",
    "compose_train",
    "compose_up",
    "corrupt_checksum_copy",
    "ensure_container_runs",
    "inside_image",
    "parity",
    "readable_copy",
    "refusal",
    "sigterm_under_load",
]
