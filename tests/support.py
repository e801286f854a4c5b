"""Test helpers: the real server in a subprocess (started and stopped as the benchmark does)."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from benchmarks.serverproc import free_port, stop, wait_ready

VENV_BIN = Path(sys.executable).parent
# The inspectable layers in DESIGN.md's order, written out here rather than taken from
# model.architecture, so the tests check the code against the design and not against itself.
DESIGN_LAYERS = [
    "conv1",
    "pool1",
    "norm1",
    "conv2",
    "pool2",
    "norm2",
    "conv3",
    "conv4",
    "conv5",
    "pool3",
    "fc6",
    "fc7",
    "fc8",
]


@dataclass
class RunningServer:
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@contextmanager
def running_server(artifacts: Path, log_dir: Path, **settings: str) -> Iterator[RunningServer]:
    """`alexnet serve` on a loopback port; settings become ALEXNET_* variables."""
    port = free_port()
    env = {
        **os.environ,
        "ALEXNET_ARTIFACTS": str(artifacts),
        "ALEXNET_HOST": "127.0.0.1",
        "ALEXNET_PORT": str(port),
        "ALEXNET_PROVIDER": "cpu",
    }
    env.update({f"ALEXNET_{key.upper()}": value for key, value in settings.items()})
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"server-{port}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [str(VENV_BIN / "alexnet"), "serve"], env=env, stdout=log, stderr=subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, process)
        yield RunningServer(url, process, log_path)
    finally:
        stop(process)


def encode(array: np.ndarray, fmt: str = "JPEG", **options: object) -> bytes:
    """An image array (H, W[, C]) encoded as bytes."""
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format=fmt, **options)
    return buffer.getvalue()
