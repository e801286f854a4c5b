"""perf_analyzer itself (Triton's load generator, `make perf-analyzer`) against the real server.

It calls metadata, /config and the server's extensions before it sends a request, and
reads /stats before and after its window; a fixed --request-count makes the number of
requests it sends exact, so the server's statistics must move by exactly that much.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from benchmarks.perf_analyzer import BINARY, WRAPPER, command, input_data, read_csv, run
from tests.support import RunningServer

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def perf_analyzer() -> None:
    if not BINARY.exists():
        pytest.skip(f"perf_analyzer is not installed ({BINARY}): `make perf-analyzer` installs it")
    version = run([str(WRAPPER), "--version"], 60)
    assert version.returncode == 0, version.stdout + version.stderr
    assert "Perf Analyzer Version 2.51.0" in version.stdout + version.stderr


def _stats(server: RunningServer, model: str) -> dict[str, Any]:
    response = httpx.get(f"{server.url}/v2/models/{model}/stats", timeout=30)
    assert response.status_code == 200
    return dict(response.json()["model_stats"][0])


def _run(server: RunningServer, model: str, csv_path: Path, *options: str) -> dict[str, int]:
    """Run perf_analyzer; the server's statistics moved by (requests, images) meanwhile."""
    before = _stats(server, model)
    arguments = command(model, server.url, *options, "-f", str(csv_path))
    done = run(arguments, 600)
    assert done.returncode == 0, done.stdout + done.stderr
    after = _stats(server, model)
    (row,) = read_csv(csv_path)
    assert row["Concurrency"] == "2" and float(row["Inferences/Second"]) > 0
    success = after["inference_stats"]["success"]["count"]
    return {
        "requests": success - before["inference_stats"]["success"]["count"],
        "images": after["inference_count"] - before["inference_count"],
        "failures": after["inference_stats"]["fail"]["count"]
        - before["inference_stats"]["fail"]["count"],
        "reported": int(done.stdout.split("Successful request count: ")[1].split()[0]),
    }


@pytest.mark.usefixtures("perf_analyzer")
def test_jpegs_through_the_image_view(
    server: RunningServer, photos: dict[str, bytes], tmp_path: Path
) -> None:
    data = tmp_path / "jpegs.json"
    data.write_text(json.dumps(input_data(list(photos.values()))))
    moved = _run(
        server,
        "alexnet_image",
        tmp_path / "image.csv",
        "--input-data",
        str(data),
        "--concurrency-range",
        "2",
        "--request-count",
        "20",
    )
    assert moved == {"requests": 20, "images": 20, "failures": 0, "reported": 20}


@pytest.mark.usefixtures("perf_analyzer")
def test_fp32_batches_through_the_logits_view(server: RunningServer, tmp_path: Path) -> None:
    moved = _run(
        server,
        "alexnet_logits",
        tmp_path / "logits.csv",
        "-b",
        "2",
        "--concurrency-range",
        "2",
        "--request-count",
        "10",
    )
    assert moved == {"requests": 10, "images": 20, "failures": 0, "reported": 10}
