"""Single requests, one at a time, timed by the client: activations vs predict, convolve."""

from __future__ import annotations

import io
import json
import time
from dataclasses import dataclass

import httpx
import numpy as np

from benchmarks.corpus import Upload
from benchmarks.limit import KERNEL_3X3


def _post(http: httpx.Client, path: str, files: list[Upload], data: dict[str, str]) -> float:
    """Seconds for one POST, after checking it succeeded."""
    started = time.perf_counter()
    response = http.post(
        path, files=[("image", (u.name, u.data, "image/jpeg")) for u in files], data=data
    )
    elapsed = time.perf_counter() - started
    if response.status_code != 200:
        raise RuntimeError(f"{path} answered {response.status_code}: {response.text[:200]}")
    return elapsed


@dataclass
class ActivationsVsPredict:
    """Median latency at concurrency 1 of /v1/activations (all layers, npz) and /v1/predict."""

    predict_ms: float
    activations_ms: float
    npz_bytes: int

    @property
    def ratio(self) -> float:
        return self.activations_ms / self.predict_ms


def activations_vs_predict(url: str, image: Upload, rounds: int) -> ActivationsVsPredict:
    """Both routes alternately on the same image, so drift on the machine hits both alike."""
    with httpx.Client(base_url=url, timeout=120) as http:
        one = [image]
        npz = http.post(
            "/v1/activations",
            files=[("image", (image.name, image.data, "image/jpeg"))],
            data={"format": "npz"},
        )
        npz.raise_for_status()
        layers = np.load(io.BytesIO(npz.content))
        if len(layers.files) < 2:
            raise RuntimeError(f"/v1/activations npz holds only {layers.files}")
        _post(http, "/v1/predict", one, {})
        predict, activations = [], []
        for _ in range(rounds):
            predict.append(_post(http, "/v1/predict", one, {}))
            activations.append(_post(http, "/v1/activations", one, {"format": "npz"}))
    return ActivationsVsPredict(
        float(np.median(predict)) * 1000, float(np.median(activations)) * 1000, len(npz.content)
    )


def convolve_endpoint_ms(url: str, jpeg: bytes, rounds: int) -> tuple[float, tuple[int, ...]]:
    """Median latency of /v1/convolve (3x3 kernel, rgb, same padding, npy) and the result shape."""
    image = Upload("large.jpg", jpeg)
    data = {
        "kernel": json.dumps(KERNEL_3X3.tolist()),
        "mode": "convolution",
        "padding": "same",
        "color": "rgb",
        "format": "npy",
    }
    with httpx.Client(base_url=url, timeout=120) as http:
        first = http.post(
            "/v1/convolve", files=[("image", (image.name, jpeg, "image/jpeg"))], data=data
        )
        first.raise_for_status()
        shape = tuple(np.load(io.BytesIO(first.content)).shape)
        times = [_post(http, "/v1/convolve", [image], data) for _ in range(rounds)]
    return float(np.median(times)) * 1000, shape


def model_info(url: str) -> dict[str, object]:
    """GET /v1/model: the provider and precision in use, among others."""
    response = httpx.get(f"{url}/v1/model", timeout=30)
    response.raise_for_status()
    info: dict[str, object] = response.json()
    return info
