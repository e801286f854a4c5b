"""Overload and faults: every request gets a correct answer or a clean refusal; the server lives.

- In this process (tests/service/inprocess.py), the real engine held or broken on cue:
  a client that leaves frees its queue slot and costs no inference, a client gone
  mid-upload costs nothing, an onnxruntime failure costs one request.
- The real `alexnet serve` with a deliberately small queue (8) and auth on: 64
  clients get correct answers or 503 with Retry-After, memory stays bounded, and
  the API key guards everything but probes, metrics and the page.

The issue asks for 60 s of load; on the shared 2-core CI machine the load test runs
ALEXNET_TEST_LOAD_S seconds (default 20), which already cycles the small queue
hundreds of times. Set it to 60 for the full run.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import select
import socket
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from service.engine import Engine
from tests.service.inprocess import in_thread, raw_predict, serve_in_thread, wait_for
from tests.support import RunningServer, running_server

LOAD_S = float(os.environ.get("ALEXNET_TEST_LOAD_S", "20"))
CLIENTS = 64
QUEUE = 8
API_KEY = "resilience-" + "k3y" * 8
AUTH = {"Authorization": f"Bearer {API_KEY}"}
# The server holds the model (~230 MB for 10 classes) and onnxruntime's buffers; under
# load it may add decode buffers, queued tensors and batch activations, never more than this.
RSS_GROWTH_LIMIT = 512 * 2**20
INFER_PATH = "/v2/models/alexnet/infer"


def test_a_departed_client_frees_its_queue_slot_and_costs_no_inference(
    model_engine: Engine, photos: dict[str, bytes]
) -> None:
    image = photos["coffee"]
    with serve_in_thread(model_engine, max_queue=4) as (url, state, model, _):
        batcher = state.require_batcher()
        model.gate.clear()
        first, first_box = in_thread(
            lambda: httpx.post(f"{url}/v1/predict", files={"image": ("a.jpg", image)}, timeout=60)
        )
        assert model.entered.wait(timeout=30)  # the first request holds the inference thread
        vanishing = [socket.create_connection(("127.0.0.1", int(url.rsplit(":", 1)[1])))]
        vanishing += [socket.create_connection(vanishing[0].getpeername()) for _ in range(3)]
        payload = raw_predict(url, image)
        for sock in vanishing:
            sock.sendall(payload)
        wait_for(lambda: batcher.depth == 4)  # the queue is full
        refused = httpx.post(f"{url}/v1/predict", files={"image": ("b.jpg", image)}, timeout=30)
        assert refused.status_code == 503 and refused.headers["retry-after"]
        assert refused.json()["error"]["code"] == "overloaded"
        for sock in vanishing:  # four clients give up while their images wait
            sock.close()

        def patient() -> httpx.Response:
            deadline = time.monotonic() + 10
            while True:
                answer = httpx.post(f"{url}/v1/predict", files={"image": ("c.jpg", image)})
                if answer.status_code != 503 or time.monotonic() > deadline:
                    return answer
                time.sleep(0.05)

        late, late_box = in_thread(patient)
        wait_for(lambda: batcher.depth == 1)  # the departed are gone; the late one waits
        model.gate.set()
        first.join(timeout=60)
        late.join(timeout=60)
    assert first_box["result"].status_code == 200
    assert late_box["result"].status_code == 200, late_box["result"].text
    assert model.batches == [1, 1]  # the first and the late request; the departed never ran


def _readable(sock: socket.socket) -> bool:
    return bool(select.select([sock], [], [], 0)[0])


def test_a_client_gone_mid_upload_costs_nothing_and_logs_no_traceback(
    model_engine: Engine, photos: dict[str, bytes], caplog: pytest.LogCaptureFixture
) -> None:
    with serve_in_thread(model_engine) as (url, state, model, _):
        address = ("127.0.0.1", int(url.rsplit(":", 1)[1]))
        for path, kind in [
            (INFER_PATH, "application/json"),
            ("/v1/predict", "multipart/form-data"),
        ]:
            with socket.create_connection(address) as sock:
                head = f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: {kind}; boundary=b\r\n"
                sock.sendall(head.encode() + b"Content-Length: 100000\r\n\r\n" + b"x" * 5000)
                # The client goes once the app holds the request (its body still arriving), or
                # has already answered it (the multipart parser may refuse the x's at once).
                wait_for(lambda: state.in_flight.count == 1 or _readable(sock))
            wait_for(lambda: state.in_flight.count == 0)
        files = {"image": ("a.jpg", photos["camera"])}
        assert httpx.post(f"{url}/v1/predict", files=files, timeout=60).status_code == 200
    assert model.batches == [1]
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"


def test_an_onnxruntime_failure_costs_one_request_not_the_server(
    model_engine: Engine, photos: dict[str, bytes], caplog: pytest.LogCaptureFixture
) -> None:
    files = {"image": ("a.jpg", photos["chelsea"])}
    with serve_in_thread(model_engine) as (url, _, model, _):
        model.fail_next = True
        failed = httpx.post(
            f"{url}/v1/predict", files=files, headers={"X-Request-ID": "fault-1"}, timeout=60
        )
        assert failed.status_code == 500
        error = failed.json()["error"]
        assert error["code"] == "inference_failed" and error["request_id"] == "fault-1"
        assert "inference failed" in error["message"]
        # The v2 route answers in its protocol's form, and the server still serves.
        model.fail_next = True
        v2 = httpx.post(
            f"{url}/v2/models/alexnet/infer",
            json={
                "inputs": [
                    {
                        "name": "input",
                        "datatype": "FP32",
                        "shape": [1, 3, 227, 227],
                        "data": [0.0] * (3 * 227 * 227),
                    }
                ]
            },
            timeout=60,
        )
        assert v2.status_code == 500 and isinstance(v2.json()["error"], str)
        healthy = httpx.post(f"{url}/v1/predict", files=files, timeout=60)
        assert healthy.status_code == 200 and len(healthy.json()["results"]) == 1
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"


# --- the real server under load -----------------------------------------------------------


@pytest.fixture(scope="module")
def loaded_server(exported_artifacts: Path, artefact_dir: Path) -> Iterator[RunningServer]:
    """A server with a deliberately small queue, and auth on."""
    with running_server(
        exported_artifacts,
        artefact_dir / "logs",
        max_queue=str(QUEUE),
        max_batch_wait_ms="10",
        api_key=API_KEY,
    ) as running:
        yield running


async def _client(
    url: str, files: list[tuple[str, tuple[str, bytes]]], until: float, reference: Any
) -> Counter[str]:
    """One client: post until `until`; count outcomes; anything unexpected is recorded."""
    outcomes: Counter[str] = Counter()
    async with httpx.AsyncClient(base_url=url, headers=AUTH, timeout=60) as client:
        while time.monotonic() < until:
            response = await client.post("/v1/predict", files=files)
            if response.status_code == 200:
                results = response.json()["results"]
                ok = len(results) == len(files) and all(
                    _same_predictions(r["predictions"], reference) for r in results
                )
                outcomes["ok" if ok else f"wrong answer: {response.text[:200]}"] += 1
            elif response.status_code == 503:
                retry = response.headers.get("retry-after", "")
                code = response.json()["error"]["code"]
                outcomes["503" if retry.isdigit() and code == "overloaded" else "bad 503"] += 1
                await asyncio.sleep(random.uniform(0, min(int(retry or 1), 1)))
            else:
                outcomes[f"{response.status_code}: {response.text[:200]}"] += 1
    return outcomes


def _same_predictions(got: list[dict[str, Any]], expected: list[dict[str, Any]]) -> bool:
    # Batch composition changes float summation order, so probabilities agree to ~1e-6.
    return [p["index"] for p in got] == [p["index"] for p in expected] and all(
        abs(a["probability"] - b["probability"]) < 1e-4 for a, b in zip(got, expected, strict=True)
    )


async def _load(url: str, image: bytes, reference: Any, pid: int) -> tuple[Counter[str], int]:
    until = time.monotonic() + LOAD_S
    process = psutil.Process(pid)
    peak = process.memory_info().rss
    # Most clients send one image; every fourth sends three, which count against the same queue.
    clients = [
        _client(url, [("image", (f"{i}.jpg", image))] * (3 if i % 4 == 3 else 1), until, reference)
        for i in range(CLIENTS)
    ]
    tasks = [asyncio.ensure_future(c) for c in clients]
    while not all(t.done() for t in tasks):
        peak = max(peak, process.memory_info().rss)
        await asyncio.sleep(0.25)
    total: Counter[str] = Counter()
    for task in tasks:
        total += task.result()
    return total, peak


@pytest.mark.slow
def test_64_clients_get_correct_answers_or_503_and_memory_stays_bounded(
    loaded_server: RunningServer, photos: dict[str, bytes], artefact_dir: Path
) -> None:
    url, image = loaded_server.url, photos["coffee"]
    first = httpx.post(f"{url}/v1/predict", files={"image": ("a.jpg", image)}, headers=AUTH)
    assert first.status_code == 200, first.text
    reference = first.json()["results"][0]["predictions"]
    too_many = httpx.post(
        f"{url}/v1/predict", files=[("image", ("a.jpg", image))] * (QUEUE + 1), headers=AUTH
    )
    assert too_many.status_code == 413, too_many.text  # could never fit: not a 503
    baseline = psutil.Process(loaded_server.process.pid).memory_info().rss

    outcomes, peak = asyncio.run(_load(url, image, reference, loaded_server.process.pid))

    _report(
        artefact_dir,
        "load",
        {
            "seconds": LOAD_S,
            "clients": CLIENTS,
            "queue": QUEUE,
            "outcomes": dict(outcomes),
            "rss_baseline_mib": baseline / 2**20,
            "rss_peak_mib": peak / 2**20,
        },
    )
    unexpected = {k: v for k, v in outcomes.items() if k not in ("ok", "503")}
    assert not unexpected, unexpected
    assert outcomes["ok"] > 0 and outcomes["503"] > 0, outcomes  # it really was overloaded
    assert peak - baseline < RSS_GROWTH_LIMIT, (baseline, peak)
    assert loaded_server.process.poll() is None
    assert httpx.get(f"{url}/health/ready").status_code == 200
    log = loaded_server.log()
    assert "Traceback" not in log and "Exception in ASGI" not in log
    lines = [json.loads(line) for line in log.splitlines() if line.strip()]  # all JSON
    # Whatever a request logs carries its id (uvicorn's own lines belong to no request).
    ours = [line for line in lines if line["logger"].startswith("service")]
    assert all(line["request_id"] != "-" for line in ours if line["level"] == "error")


def test_auth_guards_the_api_and_leaves_probes_open(
    loaded_server: RunningServer, photos: dict[str, bytes]
) -> None:
    url = loaded_server.url
    files = {"image": ("a.jpg", photos["camera"])}
    missing = httpx.post(f"{url}/v1/predict", files=files)
    wrong = httpx.post(f"{url}/v1/predict", files=files, headers={"Authorization": "Bearer nope"})
    for response in (missing, wrong):
        assert response.status_code == 401
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert response.json()["error"]["code"] == "unauthorized"
    assert 'error="invalid_token"' in wrong.headers["www-authenticate"]
    assert httpx.post(f"{url}/v1/predict", files=files, headers=AUTH).status_code == 200
    v2 = httpx.get(f"{url}/v2/models/alexnet")
    assert v2.status_code == 401 and isinstance(v2.json()["error"], str)
    for path in ("/health/live", "/health/ready", "/v2/health/live", "/v2/health/ready"):
        assert httpx.get(f"{url}{path}").status_code == 200, path
    assert "alexnet_http_requests" in httpx.get(f"{url}/metrics").text
    page = httpx.get(f"{url}/", headers={"Accept": "text/html"})
    assert page.status_code == 200  # the page loads; its API calls need the key
    assert httpx.get(f"{url}/v1/model").status_code == 401
    assert API_KEY not in loaded_server.log()


def _report(artefact_dir: Path, name: str, data: dict[str, Any]) -> None:
    """Leave the numbers of a load test for people to read."""
    counted = {k: Counter(v) if isinstance(v, list) else v for k, v in data.items()}
    path = artefact_dir / f"resilience-{name}.json"
    path.write_text(json.dumps(counted, indent=2, default=str) + "\n")
