"""Test helpers: the real server in a subprocess (started and stopped as the benchmark does)."""

from __future__ import annotations

import functools
import importlib.util
import io
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image
from prometheus_client.parser import text_string_to_metric_families

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


@functools.cache
def triton_protos() -> Any:
    """tritonclient's compiled model_config.proto, loaded without grpcio (its __init__ wants it)."""
    spec = importlib.util.find_spec("tritonclient")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("tritonclient (a dev dependency) is not installed")
    source = Path(next(iter(spec.submodule_search_locations))) / "grpc" / "model_config_pb2.py"
    module_spec = importlib.util.spec_from_file_location("triton_model_config_pb2", source)
    assert module_spec is not None and module_spec.loader is not None
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


@dataclass
class Scrape:
    """One /metrics answer: family types and every sample by name and labels."""

    types: dict[str, str]
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float]

    def value(self, metric: str, /, **labels: str) -> float:
        return self.samples.get((metric, tuple(sorted(labels.items()))), 0.0)

    def label_sets(self, name: str) -> list[dict[str, str]]:
        return [dict(labels) for sample, labels in self.samples if sample == name]


def scrape(url: str) -> Scrape:
    response = httpx.get(f"{url}/metrics", timeout=30)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    types, samples = {}, {}
    for family in text_string_to_metric_families(response.text):
        types[family.name] = family.type
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return Scrape(types, samples)
