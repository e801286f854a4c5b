"""`alexnet bench`: its parts against the real server, and a quick end-to-end run.

Timings are not asserted (they depend on the machine); what is asserted is that
every figure is measured, consistent with the others and written to the report.
"""

from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from benchmarks.corpus import build_corpus, multipart
from benchmarks.loadgen import run_load, wrk_available
from benchmarks.scrape import Histogram, batch_sizes, diff, scrape, settle
from tests.support import VENV_BIN, RunningServer


def test_histogram_diff_and_batch_sizes() -> None:
    before = Histogram(((1.0, 2.0), (4.0, 3.0), (16.0, 3.0), (math.inf, 3.0)), 6.0, 3.0)
    after = Histogram(((1.0, 2.0), (4.0, 7.0), (16.0, 9.0), (math.inf, 9.0)), 60.0, 9.0)
    between = after - before
    assert between.count == 6 and between.total == 54 and between.mean == 9
    assert batch_sizes(between) == "2-4: 4, 5-16: 2"
    assert between.quantile(0.5) == 4.0 and between.quantile(0.9) == 16.0


def test_corpus_is_realistic_jpegs() -> None:
    corpus = build_corpus(shapes=2)
    assert len(corpus) >= 4
    for upload in corpus:
        assert upload.data[:2] == b"\xff\xd8"  # JPEG start-of-image
        assert upload.name.endswith(".jpg")


@pytest.mark.parametrize("client", ["httpx", "wrk"])
def test_load_generator_counts_what_the_server_ran(server: RunningServer, client: str) -> None:
    """The client's completed requests are images the server's histograms saw run."""
    if client == "wrk" and not wrk_available():
        pytest.skip("wrk is not installed (make system-deps)")
    bodies = [multipart([u], boundary="testboundary") for u in build_corpus(shapes=1)[:3]]
    settle(server.url)
    before = scrape(server.url)
    result = run_load(client, f"{server.url}/v1/predict", bodies, concurrency=2, duration_s=1.0)
    ran = diff(scrape(server.url), before)["alexnet_batch_size"]
    assert result.client == client
    assert result.requests > 0 and result.errors == 0
    assert 0 < result.p50_ms <= result.p90_ms <= result.p99_ms
    # Each completed request ran first; at most `concurrency` more were in flight at the end.
    assert result.requests <= ran.total <= result.requests + 2
    assert result.client_cpu_s >= 0
    settle(server.url)


@pytest.mark.slow
def test_quick_bench_writes_every_figure(exported_artifacts: Path, tmp_path: Path) -> None:
    command = [
        str(VENV_BIN / "alexnet"),
        "bench",
        "--quick",
        "--artifacts",
        str(exported_artifacts),
        "--results",
        str(tmp_path),
        "--name",
        "quick",
        "--concurrency",
        "1,4",
        "--compare-at",
        "4",
        "--duration",
        "1",
        "--set",
        "provider=cpu",
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "service / limit at concurrency 4:" in done.stdout

    report = (tmp_path / "quick.md").read_text()
    for figure in (
        "predict throughput at concurrency 4 / in-process limit",
        "predict throughput at concurrency 4 / in-process pipeline with as many images",
        "dynamic batching / batching off",
        "p99 latency at concurrency 1 / p99 of decode + onnxruntime batch 1 in process",
        "paired with the in-process reference, 1",
        "one image at a time, decode + preprocess + onnxruntime batch 1",
        "int8 dot-product instructions:",
        "At concurrency 1 (mean per request): the client waited",
        "logits-only export",
        "/v1/activations (all layers, npz) / /v1/predict",
        "ConvolutionEngine / scipy",
        "POST /v1/convolve",
        "int8 / fp32 throughput through the service",
        "int8 / fp32, the model alone",
        "int8 predict throughput at concurrency 4 / int8 in-process pipeline",
        "paired with the in-process limit, 4",
        "int8 against fp32: where the model's ratio goes",
        "Decode share of the server's CPU per image",
        "of which decode",
        "bf16: bf16 Conv",
        "int8 top-1 agreement",
        "Grad-CAM (conv5) / occlusion (48 px every 24 px) / predict, concurrency 1",
        "beside one client asking for occlusions / alone",
        "queue wait",
        "inference (ms/batch",
        "batch sizes ran",
        "server CPU",
        "client CPU",
        "peak server RSS",
        "onnxruntime:",
        "provider: CPUExecutionProvider",
        "CPU:",
    ):
        assert figure in report, figure
    targets = [line for line in report.splitlines() if line.endswith(("| yes |", "| **no** |"))]
    assert len(targets) == 14, targets
    assert "n/a" not in report.split("## Load levels")[1].split("## The limit")[0]

    with Image.open(tmp_path / "quick.png") as plot:
        assert plot.format == "PNG" and plot.width > 300

    raw = json.loads((tmp_path / "quick.json").read_text())
    assert raw["limit"]["throughput"] > 0 and raw["limit"]["decode_ms"] > 0
    assert 0 < raw["serial"]["p50_ms"] <= raw["serial"]["p99_ms"] and raw["serial"]["images"] > 0
    assert [level["load"]["concurrency"] for level in raw["levels"]] == [1, 4]
    paired = [
        "one_paired",
        "limit_service",
        "batching_on",
        "batching_off",
        "variant_baseline",
        "variant_level",
    ]
    for level in [*raw["levels"], *(raw[name] for name in paired)]:
        load = level["load"]
        assert load["requests"] > 0 and load["errors"] == 0
        assert 0 < load["p50_ms"] <= load["p90_ms"] <= load["p99_ms"]
        assert level["usage"]["cpu_s"] > 0 and level["usage"]["peak_rss"] > 0
        batches = level["histograms"]["alexnet_batch_size"]
        # Each burst may leave up to `concurrency` requests in flight that still ran.
        in_flight = load["concurrency"] * level["bursts"]
        assert load["requests"] <= batches["total"] <= load["requests"] + in_flight
    unbatched = raw["batching_off"]["histograms"]["alexnet_batch_size"]
    assert unbatched["total"] == unbatched["count"]  # max batch 1: as many batches as images
    assert raw["convolution"]["max_abs_diff"] < 1e-2
    assert raw["activations"]["npz_bytes"] > 1_000_000  # every layer's float32 arrays
    assert 0 < raw["variant_agreement"] <= 1
    assert raw["limit"]["paired_bursts"] >= 2 and raw["limit"]["decode_cpu_ms"] > 0
    assert set(raw["variant_inprocess"]) == {"fp32", "int8"}
    assert [m["batch_size"] for m in raw["model_alone"]] == [1, 2]
    assert all(m["cpu_ms"]["fp32"] > 0 and m["cpu_ms"]["int8"] > 0 for m in raw["model_alone"])
    assert raw["limit_service"]["histograms"]["alexnet_decode_cpu_seconds"]["count"] > 0


def test_the_gpu_checks_v2_request_is_what_the_service_parses() -> None:
    from benchmarks.gpu_bench import v2_body
    from service.v2.codec import parse_infer_request

    batch = np.random.default_rng(0).standard_normal((2, 3, 227, 227), dtype=np.float32)
    body, headers = v2_body(batch)
    length = int(headers["Inference-Header-Content-Length"])
    parsed = parse_infer_request(body, length, max_elements=batch.size)
    (tensor,) = parsed.inputs
    assert (tensor.name, tensor.datatype) == ("input", "FP32")
    np.testing.assert_array_equal(tensor.data, batch)
    assert parsed.outputs is not None
    assert [(o.name, o.binary) for o in parsed.outputs] == [("logits", True)]


def test_the_bf16_probe_asks_onnxruntime_for_every_op_and_type() -> None:
    from benchmarks.bf16_probe import OPS, OPSETS, probe, summary

    found = probe()
    assert len(found) == len(OPS) * len(OPSETS) * 2 and all(found.values())
    # fp16 CPU kernels exist for all three (onnxruntime >= 1.16); bf16 is what the probe asks.
    assert all(found[f"{op} float16 opset 17"] == "runs" for op in OPS)
    assert summary(found).startswith("bf16 Conv opset 17: ")
