"""Triton's statistics extension: its shape, and exact agreement with the Prometheus counters.

Both come from one measurement per batch, so after a known number of requests the
counts must agree exactly (the nanoseconds to the rounding of Prometheus's float sums).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from tests.support import RunningServer, Scrape, scrape

VIEW = "alexnet_logits"
STAGES = ["success", "fail", "queue", "compute_input", "compute_infer", "compute_output"]
SIZES = [1, 2, 1, 3, 1, 1, 2, 1]  # images per request, sent at once: 12 images
MAX_BATCH = 32


@pytest.fixture(scope="module")
def client(server: RunningServer) -> Iterator[triton.InferenceServerClient]:
    client = triton.InferenceServerClient(
        server.url.removeprefix("http://"), concurrency=len(SIZES), network_timeout=120.0
    )
    yield client
    client.close()


def _stats(client: triton.InferenceServerClient, name: str = VIEW) -> dict[str, Any]:
    (entry,) = client.get_inference_statistics(name)["model_stats"]
    return entry


def _all_unsigned_ints(value: Any) -> bool:
    if isinstance(value, dict):
        return all(_all_unsigned_ints(v) for v in value.values())
    if isinstance(value, list):
        return all(_all_unsigned_ints(v) for v in value)
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def test_the_shape_triton_documents(client: triton.InferenceServerClient) -> None:
    every = client.get_inference_statistics()["model_stats"]
    assert [entry["name"] for entry in every] == ["alexnet", "alexnet_image", VIEW]
    for entry in every:
        assert set(entry) == {
            "name",
            "version",
            "last_inference",
            "inference_count",
            "execution_count",
            "inference_stats",
            "response_stats",
            "batch_stats",
            "memory_usage",
        }
        assert entry["version"] == "1"
        assert set(entry["inference_stats"]) == {*STAGES, "cache_hit", "cache_miss"}
        for stage in entry["inference_stats"].values():
            assert set(stage) == {"count", "ns"}
        numbers = {k: v for k, v in entry.items() if k not in ("name", "version")}
        assert _all_unsigned_ints(numbers), entry
    assert client.get_inference_statistics(VIEW, "1")["model_stats"] == [_stats(client)]


def _counts(entry: dict[str, Any]) -> dict[str, int]:
    """The entry's counters and sums, flattened, for differences."""
    flat = {
        "inference_count": entry["inference_count"],
        "execution_count": entry["execution_count"],
    }
    for stage, value in entry["inference_stats"].items():
        flat[f"{stage}.count"], flat[f"{stage}.ns"] = value["count"], value["ns"]
    for batch in entry["batch_stats"]:
        for stage in ("compute_input", "compute_infer", "compute_output"):
            flat[f"batch{batch['batch_size']}.{stage}.count"] = batch[stage]["count"]
            flat[f"batch{batch['batch_size']}.{stage}.ns"] = batch[stage]["ns"]
    return flat


def _difference(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    return {key: value - before.get(key, 0) for key, value in after.items()}


def _prometheus(before: Scrape, after: Scrape, metric: str) -> float:
    return after.value(metric) - before.value(metric)


def test_statistics_agree_with_prometheus_exactly(
    client: triton.InferenceServerClient, server: RunningServer
) -> None:
    stats_before, metrics_before = _counts(_stats(client)), scrape(server.url)
    pending = []
    for size in SIZES:  # all in flight together, so the batcher joins some of them
        given = triton.InferInput("input", [size, 3, 227, 227], "FP32")
        given.set_data_from_numpy(np.full((size, 3, 227, 227), 0.1 * size, np.float32))
        pending.append(client.async_infer(VIEW, [given]))
    assert [r.get_result().as_numpy("logits").shape[0] for r in pending] == SIZES
    entry = _stats(client)
    delta = _difference(_counts(entry), stats_before)
    metrics_after = scrape(server.url)

    def prometheus(metric: str) -> float:
        return _prometheus(metrics_before, metrics_after, metric)

    requests, images = len(SIZES), sum(SIZES)
    for stage in ("success", "queue", "compute_input", "compute_infer", "compute_output"):
        assert delta[f"{stage}.count"] == requests, stage
    assert delta["fail.count"] == delta["fail.ns"] == 0
    assert delta["cache_hit.count"] == delta["cache_miss.count"] == 0
    assert delta["inference_count"] == images == prometheus("alexnet_images_total")
    executions = delta["execution_count"]
    assert math.ceil(images / MAX_BATCH) <= executions <= requests
    assert executions == prometheus("alexnet_batch_size_count")
    assert executions == prometheus("alexnet_inference_seconds_count")
    by_size = {
        int(key.split(".")[0].removeprefix("batch")): value
        for key, value in delta.items()
        if key.startswith("batch") and key.endswith("compute_infer.count")
    }
    assert sum(by_size.values()) == executions
    assert sum(size * count for size, count in by_size.items()) == images
    assert images == prometheus("alexnet_batch_size_sum")
    batch_infer_ns = sum(
        v for k, v in delta.items() if k.endswith("compute_infer.ns") and "batch" in k
    )
    assert batch_infer_ns / 1e9 == pytest.approx(
        prometheus("alexnet_inference_seconds_sum"), abs=1e-6
    )
    # A request waits for each of its batches whole: its inference time is at least theirs.
    assert delta["compute_infer.ns"] >= batch_infer_ns > 0
    assert delta["success.ns"] >= delta["compute_infer.ns"]
    assert entry["last_inference"] > 1_600_000_000_000  # milliseconds since the epoch


def test_a_failed_request_counts_as_fail_only(
    client: triton.InferenceServerClient, server: RunningServer
) -> None:
    before, metrics_before = _counts(_stats(client)), scrape(server.url)
    response = httpx.post(
        f"{server.url}/v2/models/{VIEW}/infer",
        json={"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 2], "data": [1, 2]}]},
        timeout=60,
    )
    assert response.status_code == 400, response.text
    delta = _difference(_counts(_stats(client)), before)
    assert delta["fail.count"] == 1 and delta["fail.ns"] > 0
    assert delta["success.count"] == delta["inference_count"] == delta["execution_count"] == 0
    assert _prometheus(metrics_before, scrape(server.url), "alexnet_images_total") == 0


def test_other_views_and_routes_do_not_count_here(
    client: triton.InferenceServerClient, server: RunningServer, photos: dict[str, bytes]
) -> None:
    before = _counts(_stats(client))
    image_before = _counts(_stats(client, "alexnet_image"))
    given = triton.InferInput("input", [1], "BYTES")
    given.set_data_from_numpy(np.array([photos["camera"]], dtype=object))
    client.infer("alexnet_image", [given])
    predict = httpx.post(
        f"{server.url}/v1/predict", files={"image": ("c.jpg", photos["coffee"])}, timeout=60
    )
    assert predict.status_code == 200
    assert _difference(_counts(_stats(client)), before) == dict.fromkeys(before, 0)
    image = _difference(_counts(_stats(client, "alexnet_image")), image_before)
    assert image["success.count"] == image["inference_count"] == 1


def test_statistics_of_unknown_models_are_refused(client: triton.InferenceServerClient) -> None:
    with pytest.raises(InferenceServerException) as refused:
        client.get_inference_statistics("resnet")
    assert refused.value.status() == "404"
