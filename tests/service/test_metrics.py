"""GET /metrics after real traffic, parsed with Prometheus's own text parser."""

from __future__ import annotations

import httpx
import numpy as np
import tritonclient.http as triton

from tests.support import RunningServer, scrape

INFER = "/v2/models/{name}/infer"


def _traffic(server: RunningServer, photos: dict[str, bytes]) -> None:
    """Four inference requests (five images), one 404, one 400 and one unmatched path."""
    client = triton.InferenceServerClient(server.url.removeprefix("http://"), network_timeout=120.0)
    try:
        tensor = np.zeros((2, 3, 227, 227), np.float32)
        for images in (tensor, tensor[:1]):
            given = triton.InferInput("input", list(images.shape), "FP32")
            client.infer("alexnet", [given.set_data_from_numpy(images)])
        blob = np.array([photos["coffee"]], dtype=object)
        client.infer(
            "alexnet", [triton.InferInput("input", [1], "BYTES").set_data_from_numpy(blob)]
        )
        assert client.is_server_ready()
    finally:
        client.close()
    predict = httpx.post(
        f"{server.url}/v1/predict", files={"image": ("c.jpg", photos["camera"])}, timeout=60
    )
    assert predict.status_code == 200
    assert httpx.post(f"{server.url}/v2/models/vgg/infer", content=b"{}").status_code == 404
    assert httpx.post(f"{server.url}/v2/models/alexnet/infer", content=b"{").status_code == 400
    assert httpx.get(f"{server.url}/v2/no/such/path/42").status_code == 404


def test_metrics_count_what_happened(server: RunningServer, photos: dict[str, bytes]) -> None:
    before = scrape(server.url)
    _traffic(server, photos)
    after = scrape(server.url)

    def delta(metric: str, /, **labels: str) -> float:
        return after.value(metric, **labels) - before.value(metric, **labels)

    assert after.types["alexnet_http_requests"] == "counter"
    requests = "alexnet_http_requests_total"
    assert delta(requests, method="POST", route=INFER, status="200") == 3
    assert delta(requests, method="POST", route=INFER, status="404") == 1
    assert delta(requests, method="POST", route=INFER, status="400") == 1
    assert delta(requests, method="GET", route="/v2/health/ready", status="200") == 1
    assert delta(requests, method="POST", route="/v1/predict", status="200") == 1
    assert delta(requests, method="GET", route="unmatched", status="404") == 1
    routes = {labels["route"] for labels in after.label_sets(requests)}
    assert not any("alexnet" in route or "42" in route for route in routes), routes

    latency = "alexnet_http_request_duration_seconds"
    assert after.types[latency] == "histogram"
    labels = {"method": "POST", "route": INFER, "status": "200"}
    assert delta(f"{latency}_count", **labels) == 3
    assert delta(f"{latency}_sum", **labels) > 0
    buckets = sorted(
        (float(dict(key)["le"]), value)
        for (name, key), value in after.samples.items()
        if name == f"{latency}_bucket" and {k: v for k, v in key if k != "le"} == labels
    )
    counts = [value for _, value in buckets]
    assert counts == sorted(counts) and buckets[-1] == (
        float("inf"),
        after.value(f"{latency}_count", **labels),
    )

    # Sequential requests: each is a batch of its own (2, 1, 1 and 1 images).
    assert after.types["alexnet_batch_size"] == "histogram"
    assert delta("alexnet_batch_size_count") == 4
    assert delta("alexnet_batch_size_sum") == 5
    assert delta("alexnet_batch_size_bucket", le="1.0") == 3
    assert delta("alexnet_images_total") == 5
    assert delta("alexnet_queue_wait_seconds_count") == 4
    # Each request was alone in the server, so none waited for the batching window
    # to close (tests/service/test_batching_window.py pins that down with a long one).
    assert 0 <= delta("alexnet_queue_wait_seconds_sum") < 4 * 5.0
    assert delta("alexnet_inference_seconds_count") == 4
    # Two encoded images were decoded (the v2 BYTES one and the /v1/predict one).
    assert after.types["alexnet_decode_cpu_seconds"] == "histogram"
    assert delta("alexnet_decode_cpu_seconds_count") == 2
    assert 0 < delta("alexnet_decode_cpu_seconds_sum") < 2 * 5.0
    assert 0 < delta("alexnet_inference_seconds_sum") < 4 * 30.0

    assert after.types["alexnet_queue_depth"] == "gauge"
    assert after.value("alexnet_queue_depth") == 0  # idle now
    (info,) = after.label_sets("alexnet_model_info")
    assert info == {
        "name": "alexnet",
        "version": "1",
        "provider": "CPUExecutionProvider",
        "precision": "fp32",
    }
    assert after.value("alexnet_model_info", **info) == 1
