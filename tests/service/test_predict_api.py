"""/v1/predict and /v1/model against the real server."""

from __future__ import annotations

import asyncio
import re

import httpx
import numpy as np
import onnxruntime as ort

from core.cpu import INT8_ISAS
from core.preprocess import preprocess_bytes
from service.artifacts import load_artifacts
from service.classify import softmax
from tests.support import DESIGN_LAYERS, RunningServer


def _reference_probabilities(artifacts_dir, photo: bytes) -> np.ndarray:  # type: ignore[no-untyped-def]
    artifacts = load_artifacts(artifacts_dir)
    session = ort.InferenceSession(str(artifacts.model_path), providers=["CPUExecutionProvider"])
    # The server decodes large JPEGs in draft mode by default; so does the reference.
    tensor = preprocess_bytes(photo, artifacts.preprocess, fast_jpeg=True)[None]
    return softmax(session.run(["logits"], {"input": tensor})[0][0])


def test_model_describes_itself(server: RunningServer) -> None:
    response = httpx.get(f"{server.url}/v1/model")
    assert response.status_code == 200
    body = response.json()
    assert body["provider"] == "CPUExecutionProvider"
    assert [layer["name"] for layer in body["layers"]] == DESIGN_LAYERS
    assert body["input"]["shape"] == [3, 227, 227]
    assert body["preprocess"]["crop"] == 227
    assert body["preprocess"]["resample_region"] == "crop"
    assert len(body["labels"]) == 10
    assert body["cpu"]["int8_isa"] in INT8_ISAS
    assert body["cpu"]["session_config"] == {}  # fp32 needs nothing of the CPU


def test_predict_ranks_labels_like_onnxruntime(
    server: RunningServer, photos, exported_artifacts
) -> None:  # type: ignore[no-untyped-def]
    files = [("image", (f"{name}.jpg", blob, "image/jpeg")) for name, blob in photos.items()]
    response = httpx.post(f"{server.url}/v1/predict", files=files, data={"top_k": "3"}, timeout=60)
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["filename"] for r in results] == [f"{name}.jpg" for name in photos]
    for result, blob in zip(results, photos.values(), strict=True):
        predictions = result["predictions"]
        assert len(predictions) == 3
        probabilities = [p["probability"] for p in predictions]
        assert probabilities == sorted(probabilities, reverse=True)
        reference = _reference_probabilities(exported_artifacts, blob)
        assert predictions[0]["index"] == int(np.argmax(reference))
        for p in predictions:
            assert abs(p["probability"] - reference[p["index"]]) < 1e-5
            assert p["label"] == f"class_{p['index']}"


def test_concurrent_requests_are_batched(server: RunningServer, photos) -> None:  # type: ignore[no-untyped-def]
    names = list(photos)

    async def one(client: httpx.AsyncClient, i: int) -> tuple[int, dict]:  # type: ignore[type-arg]
        name = names[i % len(names)]
        response = await client.post(
            "/v1/predict", timeout=120, files={"image": (f"{i}-{name}.jpg", photos[name])}
        )
        return i, response.json()

    async def all_of_them() -> list[tuple[int, dict]]:  # type: ignore[type-arg]
        async with httpx.AsyncClient(base_url=server.url) as client:
            return await asyncio.gather(*(one(client, i) for i in range(32)))

    before = _batches_over_one(server)
    answers = asyncio.run(all_of_them())
    for i, body in answers:  # each caller got the answer to its own image
        assert body["results"][0]["filename"].startswith(f"{i}-")
    by_photo: dict[str, int] = {}
    for i, body in answers:
        top = body["results"][0]["predictions"][0]["index"]
        assert by_photo.setdefault(names[i % len(names)], top) == top
    assert _batches_over_one(server) > before


def _batches_over_one(server: RunningServer) -> float:
    """Batches of more than one image so far, from the server's own histogram."""
    text = httpx.get(f"{server.url}/metrics").text
    count = float(re.search(r"^alexnet_batch_size_count (\S+)$", text, re.M).group(1))  # type: ignore[union-attr]
    ones = float(
        re.search(
            r'^alexnet_batch_size_bucket\{le="1.0"\} (\S+)$',
            text,  # type: ignore[union-attr]
            re.M,
        ).group(1)
    )
    return count - ones
